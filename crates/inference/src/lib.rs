//! Local language models for ShopChat: fetching, tokenizing, generating.
//!
//! This crate owns candle, tokenizers and hf-hub; nothing else in the
//! workspace touches them.
//!
//! # Layout
//! - [`registry`]: the model manifest, installed files, fetching with
//!   verification; [`quantize`]: re-quantizing at install time.
//! - [`model`]: the transformer for llama-family GGUFs, with an attention
//!   cache ([`kv_cache`]) kept outside the weights; its matrices run on
//!   `shopchat-kernels` where that crate has the block format (`linear`); [`passage_cache`]:
//!   retrieved passages' keys and values kept between answers.
//! - [`tokenizer`] and [`template`]: prompt text to tokens, never letting
//!   untrusted text become control tokens; token bytes back to UTF-8.
//! - [`generate`]: sampling and one generation's step-by-step state.
//! - [`worker`]: the single owner of a loaded model, fed by a bounded queue.
//! - [`embedding`]: sentence vectors for retrieval (BERT, MiniLM); [`e5`]:
//!   multilingual-e5-small (English and Chinese) from its 4-bit container.
//! - [`bench`]: the figures `shopchat bench` prints.
//!
//! # Key design decision
//! A model is used by exactly one thread, the worker. Callers submit a
//! request carrying its own reply channel and read events from it; the worker
//! interleaves active generations step by step. Weights are immutable and
//! each conversation's cache is a separate value, so there is no lock around
//! the model and no `&mut` shared across an `.await`.

pub mod bench;
pub mod bench_passages;
pub mod e5;
pub mod embedding;
mod error;
pub mod generate;
pub mod kv_cache;
mod language_model;
mod linear;
pub mod model;
pub mod passage_cache;
pub mod quantize;
pub mod registry;
pub mod template;
pub mod tokenizer;
pub mod worker;

pub use e5::E5Embedder;
pub use embedding::{load_sentence_embedder, SentenceEmbedder};
pub use error::{Error, Result};
pub use generate::{FinishReason, SamplingConfig};
pub use language_model::{FittedPrompt, LanguageModel, LoadConfig};
pub use registry::{FetchOptions, ModelRegistry, Progress, Quantization};
pub use shopchat_kernels::KernelSet;
pub use worker::{
    spawn_worker, Fault, Generation, GenerationEvent, GenerationRequest, GenerationStats,
    PassageReuse, Prompt, Stopper, WorkerConfig, WorkerHandle, DEFAULT_PASSAGE_CACHE_MB,
    DEFAULT_RECOMPUTE_PERCENT,
};
