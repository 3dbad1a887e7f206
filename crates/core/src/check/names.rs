//! Proper names in an answer: capitalized words that do not start a
//! sentence and are not common words ("Monday", "FAQ").
//!
//! A small model invents people ("Ethan") and carriers; a name the passages
//! do not hold fails the answer. Which capitalized words are not names is
//! English data (`common_capitalized` in `rules/answer.en.toml`).

use std::sync::LazyLock;

use regex::Regex;

use super::facts::{Fact, Found};
use super::{FactKind, UnsupportedFact};
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

/// Names in Chinese script that neither the passages nor the question hold:
/// Chinese has no capitals, so a name is read from the words around it (the
/// language's `name_patterns`: "由…配送", "…物流", "客服小…"). A name counts
/// as held when its first two characters (a brand's or a person's own part,
/// before "快递" or "国际") appear in the passages or the question.
pub fn invented_chinese_names(
    answer: &str,
    lang: Language,
    passages: &[&str],
    question: &str,
) -> Vec<UnsupportedFact> {
    let rules = AnswerRules::of(lang);
    let mut invented = Vec::new();
    for pattern in &rules.name_patterns {
        for caps in pattern.captures_iter(answer) {
            let Some(name) = caps.name("name") else { continue };
            let core: String = name.as_str().chars().take(2).collect();
            // "其他物流", "我们提供": words of the language, not names.
            let common = core.chars().any(|c| rules.stop_words.contains(&c.to_string()));
            let held = passages.iter().chain(std::iter::once(&question)).any(|t| t.contains(&core));
            let fact = UnsupportedFact { kind: FactKind::Name, text: name.as_str().to_owned() };
            let again = invented.iter().any(|f: &UnsupportedFact| f.text.starts_with(&core));
            if !common && !held && !again {
                invented.push(fact);
            }
        }
    }
    invented
}
