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

pub mod chat;
pub mod embed;
pub mod language;

pub use chat::{ChatMessage, Role};
pub use embed::{EmbedError, TextEmbedder};
pub use language::Language;
