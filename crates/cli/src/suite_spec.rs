//! The suite file format of `shopchat eval run` (docs/prompt-testing.md):
//! cases of shopper turns, each with assertions on its answer. Everything a
//! suite can get wrong is checked while it is read, inside deserialization,
//! so that every error (an unknown key, a bad regex, an unknown outcome)
//! carries its line.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use shopchat_core::protocol::AnswerOutcome;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The shop folder the suite is written for, relative to the suite
    /// file; without it, the run's `--shop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<PathBuf>,
    /// Floors for the suite as a whole (see [`Floors`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Floors>,
    pub cases: Vec<Case>,
}

/// What a suite as a whole must reach, besides every case passing. Shares
/// rather than single cases, so that one answer worded differently on
/// another CPU does not fail a run, while a prompt that makes the model
/// useless still does.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Floors {
    /// Of the knowledge questions (turns that expect a citation), the share
    /// resolved: answered or replaced, citing the expected passage, with a
    /// `contains` met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<f64>,
    /// Of the turns marked `by_model`, the share the model's own answer
    /// passed the check for (outcome `answered` from a model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_model: Option<f64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// Who the shopper is verified as before the first turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Identity>,
    pub turns: Vec<TurnSpec>,
}

/// An order number with its e-mail address, or a customer id as a shop's
/// signed identity would give it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSpec {
    pub say: String,
    #[serde(default, skip_serializing_if = "Expect::is_empty")]
    pub expect: Expect,
}

/// Assertions on one answer. Text matches ignore case.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The answer contains at least one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<OneOrMany<String>>,
    /// The answer contains none of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_contains: Option<OneOrMany<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<Pattern>,
    /// A passage id among the answer's sources; with several, any of them
    /// (for a fact two passages state, such as an FAQ and its policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cites: Option<OneOrMany<String>>,
    /// One of these outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OneOrMany<Outcome>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Lang>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Counts toward the suite's `require.by_model` share: the model's own
    /// answer is expected to stand here with a good prompt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_model: bool,
}

impl Expect {
    fn is_empty(&self) -> bool {
        self.contains.is_none()
            && self.not_contains.is_none()
            && self.regex.is_none()
            && self.cites.is_none()
            && self.outcome.is_none()
            && self.language.is_none()
            && self.max_ttft_ms.is_none()
            && self.max_tokens.is_none()
            && !self.by_model
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn items(&self) -> &[T] {
        match self {
            OneOrMany::One(item) => std::slice::from_ref(item),
            OneOrMany::Many(items) => items,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    Refused,
    Replaced,
    Handoff,
}

impl Outcome {
    pub fn matches(self, outcome: AnswerOutcome) -> bool {
        matches!(
            (self, outcome),
            (Outcome::Answered, AnswerOutcome::Answered)
                | (Outcome::Refused, AnswerOutcome::Refused)
                | (Outcome::Replaced, AnswerOutcome::Replaced)
                | (Outcome::Handoff, AnswerOutcome::Handoff)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Lang {
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh")]
    Zh,
}

/// A regular expression, compiled while the suite is read.
#[derive(Debug, Clone)]
pub struct Pattern(pub(crate) Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        regex::RegexBuilder::new(&text)
            .case_insensitive(true)
            .build()
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex: {e}")))
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

/// Reads and checks a suite file.
pub fn read_suite(path: &Path) -> Result<Suite> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_suite(path, &text)
}

/// Deepest `[`/`{` nesting a suite may have. Suites never nest flow
/// collections more than a level or two; the YAML scanner takes time
/// quadratic in the depth (20,000 levels took 4 s, 100,000 took 108 s), so
/// deeper text is refused before it is scanned. 128 is serde's own limit.
const MAX_NESTING: usize = 128;

/// Checks the text of the suite file at `path`.
pub fn parse_suite(path: &Path, text: &str) -> Result<Suite> {
    // Counted over the raw text, brackets in quotes and comments included:
    // no suite comes near the limit with those.
    let mut depth = 0usize;
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            bail!("{}: nested deeper than {MAX_NESTING} levels", path.display());
        }
    }
    let suite: Suite =
        serde_norway::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if suite.cases.is_empty() {
        bail!("{}: the suite has no cases", path.display());
    }
    for case in &suite.cases {
        if case.turns.is_empty() {
            bail!("{}: case `{}` has no turns", path.display(), case.name);
        }
    }
    Ok(suite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_an_error_with_its_line() {
        let yaml = "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          contain: x\n";
        let error = serde_norway::from_str::<Suite>(yaml).unwrap_err().to_string();
        assert!(error.contains("unknown field `contain`"), "{error}");
        assert!(error.contains("line 6"), "{error}");
    }

    #[test]
    fn a_bad_regex_and_an_unknown_outcome_are_errors_with_their_line() {
        let yaml = "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          regex: '(['\n";
        let error = serde_norway::from_str::<Suite>(yaml).unwrap_err().to_string();
        assert!(error.contains("invalid regex") && error.contains("line 6"), "{error}");
        let yaml = "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          outcome: great\n";
        let error = serde_norway::from_str::<Suite>(yaml).unwrap_err().to_string();
        assert!(error.contains("line 6"), "{error}");
    }
}
