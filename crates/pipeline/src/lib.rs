//! The answer pipeline: a shopper's message in, a grounded answer out.
//!
//! The chat server and the CLI harness both answer through [`Assistant`], so
//! what a developer tests with `shopchat ask` or an eval suite is exactly
//! what shoppers get.
//!
//! # The steps
//! 1. [`Assistant::understand`] reads what the shopper wants (a knowledge
//!    question, an order, a return, a person, small talk).
//! 2. A knowledge question is searched; when the relevance gate says the
//!    knowledge base does not cover it, no model is called: the reply says
//!    so and offers a person. Otherwise the top passages, numbered, go into
//!    the prompt and the answer streams from the model ([`AnswerStream`]).
//! 3. When the stream ends, the answer is checked against its passages.
//!    An answer stating a number, amount, duration, contact detail or name
//!    that no passage holds is replaced by the best passage's own text.
//! 4. Orders and returns are answered from the order data through
//!    templates, and only to a verified shopper.
//!
//! Around the steps, [`Conversation`] holds each conversation's rules
//! (its language, verification, history, "don't know" count and handoff)
//! as a state machine without IO, which the server and the harness drive.
//!
//! # Key design decision
//! **The system, not the model, guarantees correctness.** The small models
//! this runs on invent answers to questions their passages do not cover, so
//! the model only ever writes the wording of an answer the gate has let
//! through, every fact it writes is checked, and everything that can be
//! written from data (order facts, return decisions, refusals, greetings) is
//! written by templates. The pipeline itself does no IO besides searching
//! and generating: storing, rate limiting and sending belong to the caller.

mod assistant;
mod conversation;
mod embedders;
mod error;
mod load;
mod models;
mod query_bound;
mod stream;
mod texts;

pub use assistant::{
    Assistant, ChatModel, Effect, Reply, Response, ReturnApproval, ReturnRefusal, Turn,
};
pub use conversation::{Action, Check, Checked, Conversation, Event, Resumed, Rules, TurnRequest};
pub use embedders::embedder_name;
pub use error::{Error, Result};
pub use load::{
    load_embedder, load_gate, load_prompt, AssistantConfig, IndexStatus, DEFAULT_EMBEDDERS,
};
pub use models::{is_none, Assignment, ModelChoice, NO_MODEL};
pub use query_bound::{BoundedQueries, QueryEmbeddingLimits};
pub use stream::{AnswerStream, Finished, StreamEvent};
pub use texts::Texts;

/// Settings of the answer step.
#[derive(Debug, Clone)]
pub struct AnswerSettings {
    /// Passages put into the prompt (and offered as sources).
    pub passages: usize,
    /// Longest generated answer, in tokens.
    pub max_tokens: usize,
    /// "I don't know" answers in a row after which a person is asked in.
    pub handoff_after_refusals: u32,
}

impl Default for AnswerSettings {
    fn default() -> Self {
        Self { passages: 3, max_tokens: 160, handoff_after_refusals: 2 }
    }
}
