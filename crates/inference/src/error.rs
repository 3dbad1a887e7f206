//! The inference crate's error type.
//!
//! User errors (an unknown model name, a model that is not installed, a
//! prompt that cannot fit) say what to do next; internal errors (IO, a corrupt
//! file, a candle failure) carry their cause. [`Error::is_user_error`] tells
//! callers which is which so that they can map them to the right response.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown model `{name}`; known models: {known} (`shopchat models list` shows which are installed)")]
    UnknownModel { name: String, known: String },

    #[error(
        "model `{name}` is not installed (missing {path}); run `shopchat models fetch {name}`"
    )]
    NotInstalled { name: String, path: PathBuf },

    #[error("checksum mismatch for {path}: expected sha256 {expected}, got {actual}")]
    Checksum { path: PathBuf, expected: String, actual: String },

    #[error("{path} has {actual} bytes, expected {expected}: the file is truncated or not the pinned one")]
    Size { path: PathBuf, expected: u64, actual: u64 },

    /// One source of a model file failed (the fetch goes on to the next).
    #[error("{0}")]
    Source(String),

    #[error("could not fetch model `{name}`: {reasons}")]
    Fetch { name: String, reasons: String },

    #[error("{path} is not a usable model file: {reason}")]
    BadModelFile { path: PathBuf, reason: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("chat template: {0}")]
    Template(String),

    #[error("the conversation needs {needed} tokens but the model's context holds {limit}")]
    ContextOverflow { needed: usize, limit: usize },

    #[error("the model is busy: {queued} requests are waiting")]
    Busy { queued: usize },

    #[error("the inference worker has stopped")]
    WorkerStopped,

    #[error("invalid settings: {0}")]
    InvalidSettings(String),

    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),

    #[error("model computation failed: {0}")]
    Kernel(#[from] shopchat_kernels::MatmulError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True for errors caused by the request or the installation rather than
    /// by a bug or a failing machine.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::UnknownModel { .. }
                | Error::NotInstalled { .. }
                | Error::ContextOverflow { .. }
                | Error::Busy { .. }
                | Error::InvalidSettings(_)
        )
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
