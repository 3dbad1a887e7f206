//! Small talk: a message that is only a greeting, thanks or a goodbye gets a
//! fixed reply instead of a search.
//!
//! Key design decision: small talk is recognised only when it is the whole
//! message. The message is read as a sequence of known phrases (the longest
//! first); one unknown word and it is something else ("Hi, how long does
//! shipping take?" is a question), so a greeting never swallows a request.

use serde::Deserialize;

use super::clause::words_only;
use super::rules::{Compiler, RulesError};
use super::Intent;
use crate::language::is_cjk;

/// A language's `[small_talk]` section as written: phrases, not patterns.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SmallTalkFile {
    greeting: Vec<String>,
    thanks: Vec<String>,
    ack: Vec<String>,
    goodbye: Vec<String>,
    filler: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Talk {
    Greeting,
    Thanks,
    /// "ok", "great": thanks when alone, otherwise it takes the other's kind.
    Ack,
    Goodbye,
    /// Words that go with any of the others ("so much", "again").
    Filler,
}

/// The small-talk phrases of every language.
#[derive(Debug, Default)]
pub(super) struct SmallTalk {
    phrases: Vec<(String, Talk)>,
}

impl SmallTalk {
    /// Adds one language's phrases. A phrase must already be in the form
    /// messages are read in (lower case, bare words), or it could never match.
    pub fn add(&mut self, file: SmallTalkFile, c: &Compiler) -> Result<(), RulesError> {
        let kinds = [
            ("greeting", file.greeting, Talk::Greeting),
            ("thanks", file.thanks, Talk::Thanks),
            ("ack", file.ack, Talk::Ack),
            ("goodbye", file.goodbye, Talk::Goodbye),
            ("filler", file.filler, Talk::Filler),
        ];
        for (name, phrases, talk) in kinds {
            let rule = format!("small_talk.{name}");
            for phrase in c.phrases(&rule, &phrases)? {
                if words_only(&phrase) != phrase {
                    return Err(c.invalid(&rule, &format!("{phrase:?} is not bare words")));
                }
                self.phrases.push((phrase, talk));
            }
        }
        Ok(())
    }

    /// The kind of small talk, when the whole message is nothing else.
    pub fn read(&self, plain: &str) -> Option<Intent> {
        let words = words_only(plain);
        let mut rest = words.as_str();
        let mut kinds = Vec::new();
        while !rest.is_empty() {
            // The longest phrase that ends at a word boundary (CJK phrases
            // need none, since Chinese is written without spaces).
            let (phrase, kind) = self
                .phrases
                .iter()
                .filter(|(phrase, _)| {
                    rest.starts_with(phrase.as_str()) && {
                        let next = rest[phrase.len()..].chars().next();
                        let last = phrase.chars().next_back();
                        next.is_none_or(|c| c == ' ' || is_cjk(c) || last.is_some_and(is_cjk))
                    }
                })
                .max_by_key(|(phrase, _)| phrase.len())?;
            kinds.push(*kind);
            rest = rest[phrase.len()..].trim_start();
        }
        let has = |kind: Talk| kinds.contains(&kind);
        if has(Talk::Goodbye) {
            Some(Intent::Goodbye)
        } else if has(Talk::Thanks) {
            Some(Intent::Thanks)
        } else if has(Talk::Greeting) {
            Some(Intent::Greeting)
        } else if has(Talk::Ack) {
            Some(Intent::Thanks)
        } else {
            None
        }
    }
}
