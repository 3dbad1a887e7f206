//! The database: every conversation, answer, staff account and return.
//!
//! The chat server stores a shopper's message before answering it, the
//! answer's text so far while it streams, and the answer when it ends, with
//! everything staff need to review it later:
//! sources, model, prompt version, timings, relevance-gate and answer-check
//! results, outcome and feedback. Staff list, search, tag and export
//! conversations, reply into them, and log in with argon2-hashed passwords.
//! This crate is the only one that speaks SQL.
//!
//! # Layout
//! - [`Store`] (this file): the operations the server needs, as a trait.
//! - [`SqliteStore`] (`sqlite`): the trait on one SQLite file; `schema` holds
//!   its migrations.
//! - [`model`]: the records going in and out, serializable as JSON.
//! - `search`: turning a staff member's search text into full-text queries.
//! - `export`: JSON Lines and CSV writers for transcripts.
//! - `secret`: password hashing, random tokens and token digests.
//! - [`error`]: user errors (bad input, unknown ids) apart from internal ones.
//!
//! # Key design decision
//! The server depends on the [`Store`] trait, never on SQLite: PostgreSQL
//! must be addable later so that several replicas can share one database.
//! The methods are synchronous because SQLite's calls block; an async trait
//! would only hide the blocking. Each method that changes something is one
//! committed transaction, so whatever a method has acknowledged survives the
//! process being killed (WAL journal, `synchronous = NORMAL`).
//!
//! Secrets are never stored: resume and session tokens only as their SHA-256,
//! passwords only as argon2id hashes.

pub mod error;
pub mod model;

mod export;
mod schema;
mod search;
mod secret;
mod sqlite;

use std::io::Write;
use std::time::Duration;

pub use error::{Error, Result};
pub use model::{
    AnswerDetails, AnswerRecord, AnswerState, CheckRecord, Conversation, ConversationFilter,
    ConversationId, ConversationSummary, Feedback, GateRecord, MessageId, MessageState,
    NewConversation, NewMessage, NewReturn, Outcome, Rating, ReceivedMessage, ReturnRecord, Role,
    SessionToken, SourceRef, Staff, StaffId, StoredMessage, Timings, Transcript,
};
pub use secret::MIN_PASSWORD_CHARS;
pub use sqlite::SqliteStore;

/// Everything the server stores and reads back.
///
/// The methods block on disk IO (and, for passwords, on deliberately slow
/// hashing): call them from `tokio::task::spawn_blocking`, never directly on
/// an async task. Implementations are shared as `Arc<dyn Store>` between all
/// requests and take care of their own locking.
///
/// Conventions: lookups return `Ok(None)` for an unknown id or token;
/// changes to something that does not exist fail with [`Error::NotFound`].
/// Every method that changes something is one transaction, committed before
/// it returns.
pub trait Store: Send + Sync {
    // Conversations.

    /// Starts a conversation. The caller generates the id and the resume
    /// token (a secret the shopper's browser keeps to reconnect); only the
    /// token's SHA-256 is stored.
    fn create_conversation(&self, new: NewConversation) -> Result<Conversation>;
    fn conversation(&self, id: &ConversationId) -> Result<Option<Conversation>>;
    /// The conversation whose resume token this is, for a reconnecting shopper.
    fn conversation_by_resume_token(&self, token: &str) -> Result<Option<Conversation>>;
    /// Links a conversation to a shop customer, once the shopper is identified.
    fn set_customer(&self, id: &ConversationId, customer_id: &str) -> Result<()>;
    /// Flags a conversation for a person to take over, with the reason;
    /// `None` clears the flag. Flagged conversations are listed first.
    fn set_needs_human(&self, id: &ConversationId, reason: Option<&str>) -> Result<()>;
    /// Adds a staff tag; adding one that is already there changes nothing.
    fn add_tag(&self, id: &ConversationId, tag: &str) -> Result<()>;
    fn remove_tag(&self, id: &ConversationId, tag: &str) -> Result<()>;
    /// Replaces the staff note; an empty text removes it.
    fn set_note(&self, id: &ConversationId, note: &str) -> Result<()>;

    // Messages.

    /// Stores a complete message (a shopper's question, a staff reply, a
    /// system notice) and gives it the conversation's next `seq`.
    fn add_message(
        &self,
        conversation_id: &ConversationId,
        message: NewMessage,
    ) -> Result<StoredMessage>;
    /// Stores a shopper's message under the id the shopper's browser gave it,
    /// at most once per conversation: a browser that lost its connection
    /// cannot know whether its message arrived, so it sends it again with the
    /// same `client_id`. If the conversation already has a message with that
    /// `client_id`, that message comes back with `duplicate: true` and
    /// nothing is stored (its text is not compared: the id decides).
    /// Otherwise the message is stored like [`Store::add_message`] with
    /// `duplicate: false`.
    fn add_shopper_message(
        &self,
        conversation_id: &ConversationId,
        client_id: &str,
        text: &str,
    ) -> Result<ReceivedMessage>;
    /// Stores an empty assistant message in state [`MessageState::Streaming`]
    /// before the first token, so the answer has its `seq` and id from the start.
    fn start_answer(&self, conversation_id: &ConversationId) -> Result<StoredMessage>;
    /// Replaces the text of an answer that is still streaming with what has
    /// been generated so far, so that if the process dies the transcript
    /// keeps it (see [`SqliteStore::open`]). Each call is a commit and
    /// re-indexes the text for search: call it every second or so, not per
    /// token. An answer that is no longer streaming (finished, or closed as
    /// interrupted) is [`Error::NotFound`].
    fn save_answer_progress(&self, message_id: MessageId, text: &str) -> Result<()>;
    /// Records how an answer ended: its text and everything about it. An answer
    /// is finished once; finishing it again is [`Error::NotFound`].
    fn finish_answer(&self, message_id: MessageId, answer: AnswerRecord) -> Result<()>;
    /// Records (or replaces) the shopper's rating of an answer.
    fn set_feedback(&self, message_id: MessageId, feedback: Feedback) -> Result<()>;
    /// The messages with `seq > after_seq`, oldest first, for a shopper who
    /// reconnects having seen everything up to `after_seq` (0 for all).
    fn messages_after(
        &self,
        conversation_id: &ConversationId,
        after_seq: u32,
    ) -> Result<Vec<StoredMessage>>;
    /// The assistant message with this `seq`, for checking that a shopper
    /// rates an answer (not their own question) of their own conversation.
    /// `None` if there is no such conversation or message, or if the message
    /// at that `seq` is not an answer.
    fn answer_by_seq(
        &self,
        conversation_id: &ConversationId,
        seq: u32,
    ) -> Result<Option<StoredMessage>>;

    // Staff review.

    /// Conversations matching every condition of the filter, those needing a
    /// person first, then the most recently active.
    fn list_conversations(&self, filter: &ConversationFilter) -> Result<Vec<ConversationSummary>>;
    fn transcript(&self, id: &ConversationId) -> Result<Option<Transcript>>;
    /// Writes the matching conversations as JSON Lines, one [`Transcript`] a line.
    fn export_jsonl(&self, filter: &ConversationFilter, out: &mut dyn Write) -> Result<()>;
    /// Writes the matching conversations as CSV, one row per message, for
    /// spreadsheets.
    fn export_csv(&self, filter: &ConversationFilter, out: &mut dyn Write) -> Result<()>;

    // Staff accounts.

    /// Creates a staff account. Names are unique regardless of ASCII case;
    /// passwords need at least [`MIN_PASSWORD_CHARS`] characters.
    fn add_staff(&self, name: &str, password: &str) -> Result<StaffId>;
    /// The staff member if the name and password match. Takes the same time
    /// whether or not the name exists, so it does not reveal staff names.
    fn verify_staff(&self, name: &str, password: &str) -> Result<Option<Staff>>;
    /// Starts a login session that expires after `ttl`; the token is returned
    /// once and only its SHA-256 is stored.
    fn create_session(&self, staff_id: StaffId, ttl: Duration) -> Result<SessionToken>;
    /// Who a session token belongs to; `None` if it is unknown or expired
    /// (an expired session is deleted).
    fn session(&self, token: &str) -> Result<Option<Staff>>;
    /// Logs out; deleting an unknown session is not an error.
    fn delete_session(&self, token: &str) -> Result<()>;

    // Returns.

    /// Records a return started by a shopper and gives it a unique return number.
    fn create_return(&self, new: NewReturn) -> Result<ReturnRecord>;
    /// The returns of one order, oldest first.
    fn returns_for_order(&self, order_number: &str) -> Result<Vec<ReturnRecord>>;
}
