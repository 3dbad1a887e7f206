//! Proper names in an answer: capitalized words that do not start a
//! sentence and are not common words ("Monday", "FAQ").
//!
//! A small model invents people ("Ethan") and carriers; a name the passages
//! do not hold fails the answer. Which capitalized words are not names is
//! English data (`common_capitalized` in `rules/answer.en.toml`).

use std::sync::LazyLock;

use regex::Regex;

use super::facts::{Fact, Found};
use crate::answer_rules::AnswerRules;
use crate::scan::regex;
use crate::Language;

static CAPITALIZED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b[A-Z][A-Za-z]*(?:['-][A-Za-z]+)*\b"));

/// The names in `text` (already blanked of the facts read before).
pub(super) fn find_names(text: &str) -> Vec<Found> {
    let common = &AnswerRules::of(Language::En).common_capitalized;
    let mut found = Vec::new();
    for m in CAPITALIZED.find_iter(text) {
        let (start, word) = (m.start(), m.as_str().to_owned());
        if word.chars().count() < 2 || starts_sentence(&text[..start]) {
            continue;
        }
        let lower = word.to_lowercase();
        let lower = lower.strip_suffix("'s").unwrap_or(&lower).to_owned();
        if common.contains(&lower) {
            continue;
        }
        // In "UK-based" only "UK" is a name.
        let name: Vec<&str> = word
            .split('-')
            .zip(lower.split('-'))
            .filter(|(original, _)| original.starts_with(|c: char| c.is_uppercase()))
            .map(|(_, lower)| lower)
            .collect();
        found.push(Found { fact: Fact::Name(name.join("-")), text: word });
    }
    found
}

/// Whether a word preceded by `before` starts a sentence, a line, a list item
/// or a quotation.
fn starts_sentence(before: &str) -> bool {
    let trimmed = before.trim_end_matches([' ', '\t', '"', '\'', '(', '[', '-', '•', '–']);
    if trimmed.len() < before.len() && before[trimmed.len()..].contains('\n') {
        return true;
    }
    let trimmed = trimmed.trim_end();
    if before[trimmed.len()..].contains('\n') {
        return true;
    }
    match trimmed.chars().next_back() {
        None => true,
        Some(c) => {
            matches!(c, '.' | '!' | '?' | ':' | ';' | '\n' | '。' | '！' | '？' | '：' | '；')
        }
    }
}
