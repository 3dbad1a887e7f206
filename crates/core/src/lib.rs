//! Domain types shared by every ShopChat crate.
//!
//! This crate is the bottom of the dependency graph: the retrieval, inference
//! and store crates build on it, and the server and CLI on those. It does no
//! IO and has no async code, so every rule written here can be tested as a
//! plain function and reused unchanged by the server and the developer CLI.
//!
//! # Layout
//! - [`chat`]: the messages of a conversation as a language model sees them.

pub mod chat;

pub use chat::{ChatMessage, Role};
