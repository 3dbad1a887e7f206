//! Names that stand for each other in a shop's texts ("Germany (DE)"), so
//! that a question may name a country where a passage lists its code.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::answer_rules::{normalize, words, AnswerRules};
use crate::scan::regex;
use crate::Language;

/// Names that stand for each other: a country and its code as the shop's
/// own texts define them ("Germany (DE)", "德国（DE）"), and the common
/// abbreviations in the language's rules file ("UK", "United Kingdom").
#[derive(Debug, Clone, PartialEq)]
pub struct Aliases {
    /// Groups of equal names, lower-cased.
    groups: Vec<Vec<String>>,
    /// Term → the other terms it stands for (each name's last term).
    equal: HashMap<String, Vec<String>>,
}

impl Default for Aliases {
    fn default() -> Self {
        let mut aliases = Aliases { groups: Vec::new(), equal: HashMap::new() };
        for lang in Language::ALL {
            for group in &AnswerRules::of(lang).aliases {
                aliases.add_group(group.clone());
            }
        }
        aliases
    }
}

static ALIAS_EN: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b([A-Z][a-z]+(?: [A-Z][a-z]+){0,2}) \(([A-Z]{2,3})\)"));
/// "EU zone 1: Austria (AT), Belgium (BE), Germany (DE)": a label and its
/// members, one line of a list.
static MEMBERS: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?m)^\s*(?:[-*+]\s*)?(?:\*\*)?([^:：*\n]{2,40}?)(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.+)$")
});
static ALIAS_ZH: LazyLock<Regex> = LazyLock::new(|| regex(r"(\p{Han}{2,6})[（(]([A-Z]{2,3})[）)]"));

impl Aliases {
    /// The built-in abbreviations and every "Name (CODE)" in `texts`.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut aliases = Aliases::default();
        for text in texts {
            for pattern in [&*ALIAS_EN, &*ALIAS_ZH] {
                for caps in pattern.captures_iter(text) {
                    aliases.add_group(vec![normalize(&caps[1]), normalize(&caps[2])]);
                }
            }
            // A member of a listed group is asked about as the group too: a
            // question about Germany is about "EU zone 1" where the list
            // says Germany is in it.
            for line in MEMBERS.captures_iter(text) {
                let label = normalize(line[1].trim());
                for pattern in [&*ALIAS_EN, &*ALIAS_ZH] {
                    for caps in pattern.captures_iter(&line[2]) {
                        aliases.add_group(vec![
                            normalize(&caps[1]),
                            normalize(&caps[2]),
                            label.clone(),
                        ]);
                    }
                }
            }
        }
        aliases
    }

    fn add_group(&mut self, group: Vec<String>) {
        let group: Vec<String> = group.iter().map(|name| normalize(name.trim())).collect();
        if self.groups.contains(&group) {
            return;
        }
        // A name's last word stands for it in word matching; a number
        // ("EU zone 1") would match every figure, so such names match only
        // as whole phrases.
        let lasts: Vec<String> = group
            .iter()
            .filter_map(|name| words(name).pop())
            .filter(|t| !t.chars().all(|c| c.is_ascii_digit()))
            .collect();
        for a in &lasts {
            for b in lasts.iter().filter(|b| *b != a) {
                let list = self.equal.entry(a.clone()).or_default();
                if !list.contains(b) {
                    list.push(b.clone());
                }
            }
        }
        self.groups.push(group);
    }

    pub(super) fn expand(&self, term: &str) -> Vec<String> {
        let mut all = vec![term.to_owned()];
        if let Some(others) = self.equal.get(term) {
            all.extend(others.iter().cloned());
        }
        all
    }

    /// Whether `name` stands for another name that `texts` mention: the
    /// answer may write "Germany" where the passage lists "DE".
    pub fn known_by_another_name(&self, name: &str, texts: &[&str]) -> bool {
        let name = normalize(name);
        self.groups.iter().filter(|group| group.contains(&name)).any(|group| {
            group.iter().any(|other| *other != name && texts.iter().any(|t| mentions(t, other)))
        })
    }

    /// The groups `text` names (by any of their names).
    pub(crate) fn named_in(&self, text: &str) -> Vec<&[String]> {
        self.groups
            .iter()
            .filter(|group| group.iter().any(|name| mentions(text, name)))
            .map(Vec::as_slice)
            .collect()
    }
}

/// Whether `text` mentions `name` as a whole word (Latin) or anywhere
/// (Chinese). A code of three letters or fewer counts only in capitals
/// ("DE", "IT", "MY"), so that the words "it", "my" and "no" name no
/// country; the rules file lists the few codes shoppers type in any case.
pub(super) fn mentions(text: &str, name: &str) -> bool {
    if name.chars().any(crate::language::is_cjk) {
        return text.contains(name);
    }
    let is_code = name.len() <= 3 && name.chars().all(|c| c.is_ascii_alphabetic());
    let any_case = AnswerRules::of(Language::En).any_case_codes.iter().any(|c| c == name);
    let (haystack, needle) = if is_code && !any_case {
        (text.to_owned(), name.to_uppercase())
    } else {
        (normalize(text), name.to_owned())
    };
    haystack.match_indices(needle.as_str()).any(|(i, _)| {
        let before = haystack[..i].chars().last();
        let after = haystack[i + needle.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric()) && after.is_none_or(|c| !c.is_alphanumeric())
    })
}
