//! The records the store keeps, as the server sees them.
//!
//! Every type serializes to JSON so that the server can return it as is.
//! Timestamps are UTC with millisecond precision (the precision stored) and
//! appear in JSON as RFC 3339 text. Enums appear as lowercase words, the same
//! words the database and the exports use.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Identifies a conversation. The server generates it, so that it can tell
/// the shopper before anything is written; the store only requires it to be
/// unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationId(pub String);

impl ConversationId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ConversationId {
    fn from(id: &str) -> Self {
        ConversationId(id.to_owned())
    }
}

impl From<String> for ConversationId {
    fn from(id: String) -> Self {
        ConversationId(id)
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies a message across all conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifies a staff account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StaffId(pub i64);

impl fmt::Display for StaffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Gives an enum the lowercase names used in the database and the exports;
/// serde's `rename_all = "lowercase"` gives JSON the same names (a unit test
/// checks that they agree).
macro_rules! labels {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Shopper,
    Assistant,
    /// A person from the shop replying in the conversation.
    Staff,
    /// A notice from the server itself (for example, "handed over to a person").
    System,
}
labels!(Role { Shopper = "shopper", Assistant = "assistant", Staff = "staff", System = "system" });

/// Where a message is in its life. Only assistant answers are ever anything
/// but `Complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// The answer is being generated; its text is what was last saved with
    /// [`Store::save_answer_progress`](crate::Store::save_answer_progress)
    /// (empty until then).
    Streaming,
    Complete,
    /// The answer was cut off: the shopper stopped it, left, or the server died.
    Partial,
    Failed,
}
labels!(MessageState {
    Streaming = "streaming",
    Complete = "complete",
    Partial = "partial",
    Failed = "failed",
});

/// How an answer ended: the states a finished answer can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerState {
    Complete,
    Partial,
    Failed,
}

impl From<AnswerState> for MessageState {
    fn from(state: AnswerState) -> Self {
        match state {
            AnswerState::Complete => MessageState::Complete,
            AnswerState::Partial => MessageState::Partial,
            AnswerState::Failed => MessageState::Failed,
        }
    }
}

/// What an answer did for the shopper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Answered from the knowledge base or the shop's data.
    Answered,
    /// Declined: the question was outside what the shop's data covers.
    Refused,
    /// The model's answer failed the answer check and was replaced.
    Replaced,
    /// Handed over to a person.
    Handoff,
    /// Something broke, including the server dying mid-answer.
    Error,
    /// Stopped before a word was written: an empty answer.
    Stopped,
}
labels!(Outcome {
    Answered = "answered",
    Refused = "refused",
    Replaced = "replaced",
    Handoff = "handoff",
    Error = "error",
    Stopped = "stopped",
});

/// A shopper's thumbs up or down on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}
labels!(Rating { Up = "up", Down = "down" });

/// A conversation to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewConversation {
    pub id: ConversationId,
    /// The language tag the conversation is held in, such as `en` or `zh`.
    pub lang: String,
    /// The secret that lets the shopper's browser reconnect. Stored only as
    /// its SHA-256; must be at least 16 characters.
    pub resume_token: String,
    pub customer_id: Option<String>,
    /// Where the shopper came from, such as `web` or `widget`.
    pub channel: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub lang: String,
    pub channel: String,
    pub customer_id: Option<String>,
    /// Why a person should take over, while one should.
    pub needs_human: Option<String>,
    /// Staff tags, sorted.
    pub tags: Vec<String>,
    /// The staff note.
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last message, answer, rating or needs-human change. Staff
    /// bookkeeping (tags, notes) does not count.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A complete message to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub role: Role,
    pub text: String,
    /// The staff member's name; required for [`Role::Staff`].
    pub author: Option<String>,
}

impl NewMessage {
    pub fn shopper(text: impl Into<String>) -> Self {
        NewMessage { role: Role::Shopper, text: text.into(), author: None }
    }

    pub fn staff(author: impl Into<String>, text: impl Into<String>) -> Self {
        NewMessage { role: Role::Staff, text: text.into(), author: Some(author.into()) }
    }

    pub fn system(text: impl Into<String>) -> Self {
        NewMessage { role: Role::System, text: text.into(), author: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    /// 1, 2, 3... within the conversation, in the order the messages were stored.
    pub seq: u32,
    pub role: Role,
    pub text: String,
    pub author: Option<String>,
    pub state: MessageState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When [`Store::finish_answer`](crate::Store::finish_answer) recorded the
    /// answer; `None` otherwise, including for answers the server died in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Everything about the answer, once it has ended (assistant messages only).
    pub answer: Option<AnswerDetails>,
    pub feedback: Option<Feedback>,
    /// The id the shopper's browser gave the message, for messages stored by
    /// [`Store::add_shopper_message`](crate::Store::add_shopper_message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// A shopper's message as stored by
/// [`Store::add_shopper_message`](crate::Store::add_shopper_message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    pub message: StoredMessage,
    /// True if the message had been stored before (the browser resent it,
    /// say after a dropped connection): `message` is that earlier one, and
    /// nothing new was stored.
    pub duplicate: bool,
}

/// How an answer ended, as the server reports it to
/// [`Store::finish_answer`](crate::Store::finish_answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// The text the shopper saw: all of it, or as much as was sent.
    pub text: String,
    pub state: AnswerState,
    #[serde(flatten)]
    pub details: AnswerDetails,
}

/// What staff need to judge an answer. An answer the server died in reads
/// back with outcome [`Outcome::Error`] and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerDetails {
    pub outcome: Outcome,
    /// The passages the answer was grounded on, in citation order.
    pub sources: Vec<SourceRef>,
    pub model: Option<String>,
    pub prompt_version: Option<String>,
    pub timings: Timings,
    /// The relevance gate's verdict on the retrieved passages, if it ran.
    pub gate: Option<GateRecord>,
    /// The answer check's verdict, if it ran.
    pub check: Option<CheckRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub id: String,
    pub title: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Time to the first token; `None` when no token was generated (an
    /// answer from the shop's data, or a failure before the first token).
    pub ttft_ms: Option<u32>,
    pub total_ms: u32,
    pub tokens: u32,
    pub tokens_per_s: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// Whether the passages were judged to cover the question.
    pub covered: bool,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub passed: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub rating: Rating,
    pub comment: Option<String>,
}

/// Which conversations staff want to see. Every condition that is set must
/// hold; `Default` is "all conversations".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConversationFilter {
    /// Started at or after this time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    /// Started before this time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
    /// Has an answer with this outcome.
    pub outcome: Option<Outcome>,
    /// Has an answer rated this way.
    pub feedback: Option<Rating>,
    /// Carries this tag.
    pub tag: Option<String>,
    /// Is (or is not) waiting for a person.
    pub needs_human: Option<bool>,
    /// Has a message containing all these words. Text with Chinese in it is
    /// matched as substrings, since Chinese has no spaces between words.
    pub text: Option<String>,
    /// At most this many conversations; `None` for all.
    pub limit: Option<u32>,
    /// Skip this many first, for paging.
    pub offset: u32,
}

/// A line in the staff's conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub message_count: u32,
    /// The shopper's first message, to tell conversations apart at a glance.
    pub first_question: Option<String>,
    /// The outcome of the latest answer that has one.
    pub last_outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub conversation: Conversation,
    pub messages: Vec<StoredMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    pub id: StaffId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A staff login session's secret: 32 random bytes as hex. It is shown once,
/// when created; `Debug` does not print it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionToken(pub String);

impl SessionToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

/// A return a shopper starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReturn {
    pub order_number: String,
    pub customer_id: String,
    /// The SKUs being returned; at least one.
    pub items: Vec<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRecord {
    /// `RMA-` and six digits, unique, picked at random so that it does not
    /// reveal how many returns the shop has.
    pub return_number: String,
    pub order_number: String,
    pub customer_id: String,
    pub items: Vec<String>,
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database and exports use `as_str`, JSON uses serde: they must agree.
    #[test]
    fn labels_match_json_names() {
        fn check<T: Serialize + Copy>(all: &[T], as_str: fn(T) -> &'static str) {
            for &value in all {
                let json = serde_json::to_value(value).expect("serializes");
                assert_eq!(json, serde_json::Value::from(as_str(value)));
            }
        }
        check(Role::ALL, Role::as_str);
        check(MessageState::ALL, MessageState::as_str);
        check(Outcome::ALL, Outcome::as_str);
        check(Rating::ALL, Rating::as_str);
        for &outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(Outcome::parse("Answered"), None);
    }

    #[test]
    fn session_tokens_stay_out_of_debug_output() {
        let token = SessionToken("deadbeef".into());
        assert!(!format!("{token:?}").contains("deadbeef"));
    }
}
