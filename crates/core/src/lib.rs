//! Domain types shared by every ShopChat crate.
//!
//! This crate is the bottom of the dependency graph: the retrieval, inference
//! and store crates build on it, and the server and CLI on those. It does no
//! IO and has no async code, so every rule written here can be tested as a
//! plain function and reused unchanged by the server and the developer CLI.
//!
//! # Layout
//! - [`chat`]: the messages of a conversation as a language model sees them.
//! - [`language`]: the languages we answer in, and detecting them.
//! - [`embed`]: the trait through which retrieval asks for sentence vectors.
//! - [`shop`]: the shop profile (`shop.toml`) and order data (`orders.json`),
//!   parsed from text, with [`shop::Date`] (the `time` crate's calendar).
//! - [`policy`]: return eligibility computed from the shop's rules, explained
//!   to the shopper with the rule that decided it.
//! - [`order_facts`]: the template that tells a verified shopper about an
//!   order, from the order data only.
//! - [`intent`]: what a shopper's message asks for (a question, an order's
//!   status, a return, a person, small talk), with its order number and
//!   e-mail address.
//! - [`check`]: the answer check: every number, amount, duration, contact
//!   detail and name in a generated answer must appear in its passages
//!   (names in Chinese script found by the patterns of `rules/answer.zh.toml`).
//!   [`verdict`] adds what the facts alone do not show: yes/no flips,
//!   figures from another case's row, citations and degenerate answers.
//! - [`prompt`]: prompt templates (`prompts/*.toml`) and assembling the
//!   messages for one question: constant instructions, then the numbered
//!   passages with the question.
//! - [`protocol`]: the websocket frames between the chat widget and the
//!   server, documented in `docs/protocol.md`.
//! - [`mask`]: masking e-mail addresses and phone numbers for logs.
//! - `scan` (private): finding e-mail addresses and phone numbers, shared by
//!   the modules above so that they agree on what one is.

pub mod answer_rules;
pub mod chat;
pub mod check;
pub mod degenerate;
pub mod embed;
pub mod extract;
#[cfg(test)]
mod fuzz;
pub mod intent;
pub mod language;
pub mod mask;
#[cfg(test)]
#[path = "../../../tests/fuzz/mutations.rs"]
mod mutations;
pub mod order_facts;
pub mod polarity;
pub mod policy;
pub mod prompt;
pub mod protocol;
mod scan;
pub mod shop;
pub mod verdict;

pub use chat::{ChatMessage, Role};
pub use embed::{EmbedError, EmbedderChoice, TextEmbedder};
pub use language::Language;
