//! `shopchat eval from-transcript`: a reviewed conversation becomes a test
//! case, with the assertions staff wrote in its note.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use shopchat_store::{ConversationId, Role, SqliteStore, Store};

use crate::suite_spec::{Case, Expect, Identity, OneOrMany, Outcome, TurnSpec};

#[derive(Args)]
pub struct FromTranscriptArgs {
    conversation_id: String,
    #[arg(long, env = "SHOPCHAT_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
}

/// Turns a reviewed conversation into a test case. Staff mark what a good
/// answer must (not) contain in the conversation's note, one line each:
/// `turn 2 contains: 5 business days`, `turn 2 not_contains: 10 days`,
/// `turn 1 outcome: refused`, `turn 3 cites: faq/returns@en`. An answer
/// rated up keeps its outcome as an assertion.
pub fn from_transcript(args: FromTranscriptArgs) -> Result<()> {
    let database = args.data_dir.join("shopchat.db");
    if !database.is_file() {
        bail!("no database at {}", database.display());
    }
    let store = SqliteStore::open(&database)?;
    let transcript = store
        .transcript(&ConversationId(args.conversation_id.clone()))?
        .with_context(|| format!("no conversation {}", args.conversation_id))?;
    let marks = note_marks(transcript.conversation.note.as_deref().unwrap_or(""))?;

    let messages = &transcript.messages;
    let mut turns = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if message.role != Role::Shopper {
            continue;
        }
        let number = turns.len() + 1;
        let answer = messages[i + 1..]
            .iter()
            .take_while(|m| m.role != Role::Shopper)
            .find(|m| m.role == Role::Assistant);
        let mut expect = Expect::default();
        if let Some(answer) = answer {
            let rated_up =
                answer.feedback.as_ref().is_some_and(|f| f.rating == shopchat_store::Rating::Up);
            if rated_up {
                expect.outcome = answer.answer.as_ref().and_then(|a| match a.outcome {
                    shopchat_store::Outcome::Answered => Some(OneOrMany::One(Outcome::Answered)),
                    shopchat_store::Outcome::Refused => Some(OneOrMany::One(Outcome::Refused)),
                    shopchat_store::Outcome::Replaced => Some(OneOrMany::One(Outcome::Replaced)),
                    shopchat_store::Outcome::Handoff => Some(OneOrMany::One(Outcome::Handoff)),
                    shopchat_store::Outcome::Error | shopchat_store::Outcome::Stopped => None,
                });
            }
        }
        for (key, value) in marks.get(&number).into_iter().flatten() {
            let one = |v: &str| Some(OneOrMany::One(v.to_owned()));
            match key.as_str() {
                "contains" => expect.contains = one(value),
                "not_contains" => expect.not_contains = one(value),
                "cites" => expect.cites = Some(OneOrMany::One(value.clone())),
                "outcome" => {
                    let outcome: Outcome = serde_norway::from_str(value).with_context(|| {
                        format!("note: turn {number}: unknown outcome `{value}`")
                    })?;
                    expect.outcome = Some(OneOrMany::One(outcome));
                }
                _ => unreachable!("note_marks returns known keys only"),
            }
        }
        turns.push(TurnSpec { say: message.text.clone(), expect });
    }
    if turns.is_empty() {
        bail!("conversation {} has no shopper messages", args.conversation_id);
    }
    let case = Case {
        name: format!("from conversation {}", args.conversation_id),
        verified: transcript.conversation.customer_id.map(|customer| Identity {
            customer: Some(customer),
            order: None,
            email: None,
        }),
        turns,
    };
    // One item of a `cases:` list, so that `>> suite.yaml` appends it.
    println!("  # from conversation {}, reviewed by staff", args.conversation_id);
    for line in serde_norway::to_string(&vec![case])?.lines() {
        println!("  {line}");
    }
    Ok(())
}

/// `turn N KEY: VALUE` lines of a staff note; other lines are ignored.
fn note_marks(note: &str) -> Result<BTreeMap<usize, Vec<(String, String)>>> {
    let mut marks: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    for line in note.lines() {
        let Some(rest) = line.trim().strip_prefix("turn ") else { continue };
        let Some((head, value)) = rest.split_once(':') else { continue };
        let mut words = head.split_whitespace();
        let (Some(number), Some(key), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else { continue };
        if !["contains", "not_contains", "cites", "outcome"].contains(&key) {
            bail!("note: `{}`: use contains, not_contains, cites or outcome", line.trim());
        }
        marks.entry(number).or_default().push((key.to_owned(), value.trim().to_owned()));
    }
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_marks_read_turn_lines_and_reject_unknown_keys() {
        let marks =
            note_marks("checked by Sam\nturn 2 contains: 5 business days\nturn 1 outcome: refused")
                .unwrap();
        assert_eq!(marks[&2], vec![("contains".to_owned(), "5 business days".to_owned())]);
        assert_eq!(marks[&1], vec![("outcome".to_owned(), "refused".to_owned())]);
        assert!(note_marks("turn 1 mentions: x").is_err());
    }
}
