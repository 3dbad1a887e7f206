//! What the shop knows, and finding the passages that answer a shopper.
//!
//! This crate reads the shop's content (`faq/`: FAQ entries, policy
//! documents, orders; plus FAQ imports from JSONL or CSV) into passages,
//! builds a search index of them, and searches it with BM25 and, given an
//! embedding model, sentence vectors. It owns tantivy and jieba; nothing
//! else in the workspace touches them.
//!
//! # Layout
//! - [`KnowledgeBase`] (`knowledge`, with `front_matter`, `policy`,
//!   `orders`): files to [`Passage`]s, and [`KnowledgeBase::verify_order`].
//! - [`build_index`] (`build`): a knowledge base to a new index generation
//!   on disk; `layout` says where each file goes and switches `CURRENT`.
//! - [`IndexHandle`] and [`Generation`] (`search`): opening, reloading and
//!   searching; reciprocal rank fusion of BM25 and cosine rankings.
//! - `schema`: the tantivy fields and the English and Chinese analyzers;
//!   `vectors`: the vectors file and cosine similarity.
//! - [`gate`]: whether the knowledge base covers a question at all;
//!   [`gate_fit`] fits its rule by logistic regression.
//!
//! # Key design decisions
//! **One index, one pair of text fields per language.** Tantivy gives a
//! field one analyzer, and English wants stemming (`en_stem`) while Chinese
//! wants word segmentation (jieba, through `tantivy-jieba`), so a passage
//! fills `title_en`/`text_en` or `title_zh`/`text_zh`, and a query is
//! analyzed and matched in the fields of its language. Each language thus
//! also gets its own BM25 statistics, which a shared field would mix up.
//! `kind`, `lang` and `customer_id` are exact-match fields for filtering;
//! the passage itself is stored as JSON.
//!
//! **Invariant: an order passage is returned only to a search that carries
//! a [`VerifiedCustomer`], and only that customer's orders.**
//! [`Generation::search`] admits only public kinds in the query itself and
//! checks every result again; orders are never embedded, so the vector
//! search cannot reach them either. [`Generation::find_orders`] is the one
//! way to orders and filters on the verified customer's id.
//!
//! **Generations, not updates.** Every build writes a complete new
//! generation and then atomically repoints `CURRENT`; a server reloads by
//! swapping an `Arc`, so a search never sees half an index and an old
//! generation lives until its last search ends.

mod bigrams;
mod build;
mod error;
mod front_matter;
mod fusion;
#[cfg(test)]
mod fuzz;
pub mod gate;
pub mod gate_fit;
mod knowledge;
mod layout;
#[cfg(test)]
#[path = "../../../tests/fuzz/mutations.rs"]
mod mutations;
mod orders;
mod passage;
mod policy;
mod query_text;
mod schema;
mod search;
mod vectors;

pub use build::{build_index, BuildProgress, BuildReport};
pub use error::{Error, Result, REBUILD_COMMAND};
pub use gate::{GateConfig, GateDecision};
pub use knowledge::KnowledgeBase;
pub use orders::VerifiedCustomer;
pub use passage::{Passage, PassageKind};
pub use search::{Generation, Hit, IndexHandle, QuerySignals, Ranked, SearchQuery, SignalsWanted};
