//! Reading a message around a match: whether the shopper negates it, and the
//! message as bare words.
//!
//! Negation is decided per language from its `[negation]` rules, by the
//! same code for all: languages written with spaces look for negating words
//! among the last few words before the match ("I don't want a human"),
//! languages written without them for negating characters among the last few
//! characters ("不用转人工"). Only the words of the match's own clause count.

use serde::Deserialize;

use super::rules::{Compiler, Patterns, RulesError};

/// Where a clause ends: in "No, I want a human" the "no" answers something
/// else. Punctuation, not words, so it is the same for every language (the
/// message is folded first, so "，" and "？" arrive as "," and "?").
const CLAUSE_ENDS: [char; 7] = [',', '.', '!', '?', ';', ':', '。'];

/// A language's `[negation]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct NegationFile {
    /// Negating words or phrases ("not", "no need").
    words: Vec<String>,
    /// How many words before a match a negating word may stand.
    word_window: usize,
    /// Verbs that, right after a negating word, leave the match alone: "I
    /// don't know how to return my order" still asks to return it.
    not_before: Vec<String>,
    /// Negating characters, for languages written without spaces.
    chars: String,
    /// How many characters before a match a negating character may stand.
    char_window: usize,
    /// Negating words that count only at the very end of the clause.
    ends: Vec<String>,
    /// Question forms that contain a negating character but ask, not
    /// refuse ("能不能", can or cannot): removed before looking.
    questions: Vec<String>,
}

/// The compiled negation rules of one language.
#[derive(Debug, Default)]
pub(super) struct Negation {
    words: Vec<Vec<String>>,
    word_window: usize,
    not_before: Vec<String>,
    chars: Vec<char>,
    char_window: usize,
    ends: Vec<String>,
    questions: Vec<String>,
}

impl Negation {
    pub fn compile(file: NegationFile, compiler: &Compiler) -> Result<Self, RulesError> {
        if !file.words.is_empty() && file.word_window == 0 {
            return Err(compiler.invalid("negation.word_window", "negating words need a window"));
        }
        if !file.chars.is_empty() && file.char_window == 0 {
            return Err(compiler.invalid("negation.char_window", "negating chars need a window"));
        }
        let words = compiler.phrases("negation.words", &file.words)?;
        Ok(Self {
            words: words
                .iter()
                .map(|phrase| phrase.split_whitespace().map(str::to_owned).collect())
                .collect(),
            word_window: file.word_window,
            not_before: compiler.phrases("negation.not_before", &file.not_before)?,
            chars: file.chars.chars().filter(|c| !c.is_whitespace()).collect(),
            char_window: file.char_window,
            ends: compiler.phrases("negation.ends", &file.ends)?,
            questions: compiler.phrases("negation.questions", &file.questions)?,
        })
    }

    /// Whether the match starting at byte `start` of `plain` is negated by
    /// the few words just before it, in its own clause.
    pub fn negates(&self, plain: &str, start: usize) -> bool {
        let clause = plain[..start].rsplit(CLAUSE_ENDS).next().unwrap_or("");
        self.by_chars(clause) || self.by_words(clause)
    }

    fn by_chars(&self, clause: &str) -> bool {
        if self.chars.is_empty() && self.ends.is_empty() {
            return false;
        }
        let mut clause = clause.to_owned();
        for question in &self.questions {
            clause = clause.replace(question.as_str(), "");
        }
        let clause = clause.trim_end();
        clause.chars().rev().take(self.char_window).any(|c| self.chars.contains(&c))
            || self.ends.iter().any(|end| clause.ends_with(end.as_str()))
    }

    fn by_words(&self, clause: &str) -> bool {
        let words: Vec<&str> = clause
            .split(|c: char| !(c.is_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty())
            .collect();
        let window = &words[words.len().saturating_sub(self.word_window)..];
        (0..window.len()).any(|i| {
            self.words.iter().any(|negator| {
                let here = &window[i..];
                let matches = here.len() >= negator.len()
                    && negator.iter().zip(here).all(|(word, seen)| word == seen);
                let next = window.get(i + negator.len()).copied().unwrap_or("");
                matches && !self.not_before.iter().any(|verb| verb == next)
            })
        })
    }
}

/// Whether some match of `patterns` in `text` is not negated.
pub(super) fn affirmed(patterns: &Patterns, text: &str, negation: &Negation) -> bool {
    patterns.find_iter(text).any(|m| !negation.negates(text, m.start()))
}

/// `text` with each of `phrases` blanked out: words that share letters with a
/// rule but mean something else ("人工智能" is not a person).
pub(super) fn without(text: &str, phrases: &[String]) -> String {
    let mut text = text.to_owned();
    for phrase in phrases {
        text = text.replace(phrase.as_str(), " ");
    }
    text
}

/// The message reduced to lower-case words separated by single spaces:
/// punctuation, emoji and markup gone, apostrophes kept ("that's").
pub(super) fn words_only(plain: &str) -> String {
    let spaced: String =
        plain.chars().map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}
