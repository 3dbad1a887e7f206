//! The intent rules as data: one TOML file per language, compiled once.
//!
//! Every word list and pattern the intent rules use lives in
//! `rules/intent.<lang>.toml`; the Rust modules next to this one hold only
//! the decisions, written once for every language. Key design decision: a
//! file gives each concern the same kinds of rule (what a request looks like,
//! what makes it a question instead, what negates it), so a new language is a
//! new file and a rule that fits one shop's wording shows up in review as
//! data, not buried in code.
//!
//! A file is compiled into regular expressions when the rules are first used
//! ([`built_in`]); a file that does not parse, an invalid pattern or a name
//! that refers to no list is a [`RulesError`], never a panic, and the tests
//! below parse the built-in files so that such a mistake fails the build's
//! tests rather than a shop's start.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::{Match, Regex};
use serde::Deserialize;

use super::clause::{Negation, NegationFile};
use super::human::{HumanFile, HumanRules};
use super::returns::{ReturnFile, ReturnRules};
use super::small_talk::{SmallTalk, SmallTalkFile};
use super::status::{StatusFile, StatusRules};
use crate::scan::regex;

/// The built-in rule files, by language code. Every language's rules run on
/// every message: shoppers mix languages ("NW-100231 发货了吗"), and a rule
/// only matches its own language's words, so running them all is safe.
const BUILT_IN: &[(&str, &str)] = &[
    ("en", include_str!("../../rules/intent.en.toml")),
    ("zh", include_str!("../../rules/intent.zh.toml")),
];

static RULES: LazyLock<Result<Rules, RulesError>> = LazyLock::new(|| Rules::parse(BUILT_IN));

/// The built-in rules, parsed on first use.
pub(super) fn built_in() -> Result<&'static Rules, RulesError> {
    RULES.as_ref().map_err(Clone::clone)
}

/// A rule file that cannot be used. The built-in files are part of the
/// source, so each of these is a bug there, caught by this module's tests.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RulesError {
    #[error("intent rules for {lang}: {source}")]
    Toml { lang: String, source: toml::de::Error },
    #[error("intent rules for {lang}: {rule}: pattern {pattern:?}: {source}")]
    Pattern { lang: String, rule: String, pattern: String, source: regex::Error },
    #[error("intent rules for {lang}: {rule}: pattern {pattern:?} matches an empty message")]
    MatchesEmpty { lang: String, rule: String, pattern: String },
    #[error("intent rules for {lang}: {rule}: no list named `{name}` under [lists]")]
    UnknownList { lang: String, rule: String, name: String },
    #[error("intent rules for {lang}: {rule}: {reason}")]
    Invalid { lang: String, rule: String, reason: String },
}

/// One rule file as written. Every section may be left out: a language need
/// not have every kind of rule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// Named alternatives, written `{name}` inside patterns.
    #[serde(default)]
    lists: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    negation: NegationFile,
    #[serde(default)]
    human: HumanFile,
    #[serde(default)]
    returns: ReturnFile,
    #[serde(default)]
    status: StatusFile,
    #[serde(default)]
    small_talk: SmallTalkFile,
}

/// The compiled rules of every language.
#[derive(Debug)]
pub(super) struct Rules {
    pub languages: Vec<LanguageRules>,
    /// Small-talk phrases of all languages together: "好的, thanks" is small
    /// talk too.
    pub small_talk: SmallTalk,
}

/// The compiled rules of one language.
#[derive(Debug)]
pub(super) struct LanguageRules {
    pub negation: Negation,
    pub human: HumanRules,
    pub returns: ReturnRules,
    pub status: StatusRules,
}

impl Rules {
    /// Parses rule files given as (language code, file text).
    pub fn parse(files: &[(&str, &str)]) -> Result<Self, RulesError> {
        let mut languages = Vec::new();
        let mut small_talk = SmallTalk::default();
        for (lang, text) in files {
            let file: RulesFile = toml::from_str(text)
                .map_err(|source| RulesError::Toml { lang: (*lang).to_owned(), source })?;
            let compiler = Compiler::new(lang, &file.lists)?;
            languages.push(LanguageRules {
                negation: Negation::compile(file.negation, &compiler)?,
                human: HumanRules::compile(file.human, &compiler)?,
                returns: ReturnRules::compile(file.returns, &compiler)?,
                status: StatusRules::compile(file.status, &compiler)?,
            });
            small_talk.add(file.small_talk, &compiler)?;
        }
        Ok(Self { languages, small_talk })
    }
}

/// Several patterns, each tried on its own, so that one pattern's match can
/// never hide another's (as it could inside one alternation).
#[derive(Debug, Default)]
pub(super) struct Patterns(Vec<Regex>);

impl Patterns {
    pub fn is_match(&self, text: &str) -> bool {
        self.0.iter().any(|pattern| pattern.is_match(text))
    }

    /// Every match of every pattern, pattern by pattern.
    pub fn find_iter<'a>(&'a self, text: &'a str) -> impl Iterator<Item = Match<'a>> + 'a {
        self.0.iter().flat_map(move |pattern| pattern.find_iter(text))
    }
}

/// Compiles the patterns of one file, expanding its `{name}` lists.
pub(super) struct Compiler {
    lang: String,
    /// Each list as the alternation it stands for: `(?:one|two)`.
    lists: BTreeMap<String, String>,
}

/// `{name}` in a pattern: lower-case letters and underscores only, so regex
/// repetitions (`{2}`, `{0,3}`) and classes (`\p{Han}`) are left alone.
static LIST_NAME: LazyLock<Regex> = LazyLock::new(|| regex(r"\{([a-z_]+)\}"));

impl Compiler {
    fn new(lang: &str, lists: &BTreeMap<String, Vec<String>>) -> Result<Self, RulesError> {
        let mut compiled = BTreeMap::new();
        for (name, items) in lists {
            if items.is_empty() || items.iter().any(|item| item.trim().is_empty()) {
                return Err(RulesError::Invalid {
                    lang: lang.to_owned(),
                    rule: format!("lists.{name}"),
                    reason: "a list needs entries, and no entry may be empty".into(),
                });
            }
            compiled.insert(name.clone(), format!("(?:{})", items.join("|")));
        }
        Ok(Self { lang: lang.to_owned(), lists: compiled })
    }

    /// Compiles the patterns of the rule `rule` (named in errors).
    pub fn patterns(&self, rule: &str, sources: &[String]) -> Result<Patterns, RulesError> {
        sources
            .iter()
            .enumerate()
            .map(|(i, source)| self.pattern(&format!("{rule}[{i}]"), source))
            .collect::<Result<_, _>>()
            .map(Patterns)
    }

    fn pattern(&self, rule: &str, source: &str) -> Result<Regex, RulesError> {
        let mut unknown = None;
        let expanded = LIST_NAME.replace_all(source, |caps: &regex::Captures<'_>| {
            let name = &caps[1];
            self.lists.get(name).cloned().unwrap_or_else(|| {
                unknown.get_or_insert_with(|| name.to_owned());
                String::new()
            })
        });
        if let Some(name) = unknown {
            return Err(RulesError::UnknownList {
                lang: self.lang.clone(),
                rule: rule.into(),
                name,
            });
        }
        let pattern = Regex::new(&expanded).map_err(|source_error| RulesError::Pattern {
            lang: self.lang.clone(),
            rule: rule.into(),
            pattern: source.into(),
            source: source_error,
        })?;
        // A pattern that matches nothing at all would fire on every message.
        if pattern.is_match("") {
            return Err(RulesError::MatchesEmpty {
                lang: self.lang.clone(),
                rule: rule.into(),
                pattern: source.into(),
            });
        }
        Ok(pattern)
    }

    /// Plain phrases (not patterns), lower-cased; none may be empty.
    pub fn phrases(&self, rule: &str, phrases: &[String]) -> Result<Vec<String>, RulesError> {
        phrases
            .iter()
            .map(|phrase| {
                let phrase = phrase.trim().to_lowercase();
                if phrase.is_empty() {
                    return Err(self.invalid(rule, "an empty phrase"));
                }
                Ok(phrase)
            })
            .collect()
    }

    pub fn invalid(&self, rule: &str, reason: &str) -> RulesError {
        RulesError::Invalid { lang: self.lang.clone(), rule: rule.into(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_files_parse() {
        let rules = Rules::parse(BUILT_IN).unwrap();
        assert_eq!(rules.languages.len(), BUILT_IN.len());
        assert!(built_in().is_ok());
    }

    /// The rules serve every shop: none may name the demo shop's products
    /// (it sells clothes), as an earlier Chinese return rule did.
    #[test]
    fn no_rule_names_a_product() {
        let words = regex(
            r"(?i)\b(?:dress|dresses|jeans|shoes?|shirts?|chinos|swimsuit|trousers|jacket)\b|衣服|鞋|裙|裤|外套",
        );
        for (lang, text) in BUILT_IN {
            let found: Vec<&str> = words.find_iter(text).map(|m| m.as_str()).collect();
            assert!(found.is_empty(), "intent.{lang}.toml names products: {found:?}");
        }
    }

    #[test]
    fn a_malformed_file_is_a_typed_error() {
        let parse = |text: &str| Rules::parse(&[("xx", text)]).unwrap_err();
        assert!(matches!(parse("[human\nrequests = 1"), RulesError::Toml { .. }));
        assert!(matches!(parse("[human]\nrequests = 'not a list'"), RulesError::Toml { .. }));
        // A misspelt section or key is an error, not a silently empty rule.
        assert!(matches!(parse("[humans]\nrequests = ['agent']"), RulesError::Toml { .. }));
        assert!(matches!(parse("[human]\nrequest = ['agent']"), RulesError::Toml { .. }));
        match parse("[status]\nasks = ['where', 'where (is']") {
            RulesError::Pattern { rule, pattern, .. } => {
                assert_eq!((rule.as_str(), pattern.as_str()), ("status.asks[1]", "where (is"));
            }
            other => panic!("{other}"),
        }
        match parse("[lists]\nperson = ['agent']\n[human]\nrequests = ['talk to {persons}']") {
            RulesError::UnknownList { name, .. } => assert_eq!(name, "persons"),
            other => panic!("{other}"),
        }
        assert!(matches!(
            parse("[returns]\nverbs = ['(?:return)?']"),
            RulesError::MatchesEmpty { .. }
        ));
        assert!(matches!(parse("[lists]\nperson = []"), RulesError::Invalid { .. }));
        assert!(matches!(parse("[small_talk]\nthanks = ['']"), RulesError::Invalid { .. }));
        assert!(matches!(
            parse("[negation]\nwords = ['not']\nword_window = 0"),
            RulesError::Invalid { .. }
        ));
        // The message names the file's language and the rule.
        let message = parse("[status]\nasks = ['(']").to_string();
        assert!(message.contains("xx") && message.contains("status.asks[0]"), "{message}");
    }

    #[test]
    fn lists_expand_and_repetitions_stay() {
        let compiler = Compiler::new(
            "xx",
            &BTreeMap::from([("noun".to_owned(), vec!["order".to_owned(), "parcel".to_owned()])]),
        )
        .unwrap();
        let patterns =
            compiler.patterns("t", &[r"\bmy\s+{noun}\b".into(), r"\d{3}".into()]).unwrap();
        assert!(patterns.is_match("where is my parcel"));
        assert!(patterns.is_match("123"));
        assert!(!patterns.is_match("my cart"));
    }
}
