//! The pipeline's errors: the shop's files or the installed models (user
//! errors, fixed by a command or an edit) apart from internal failures.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Retrieval(#[from] shopchat_retrieval::Error),

    #[error(transparent)]
    Inference(#[from] shopchat_inference::Error),

    #[error("{path}: {source}")]
    Shop {
        path: String,
        /// Boxed: the largest variant by far, and errors travel in every
        /// `Result` of the answer path.
        #[source]
        source: Box<shopchat_core::shop::ShopError>,
    },

    #[error("{path}: {reason}")]
    Config { path: String, reason: String },

    /// A chosen chat model that cannot be used (unknown, not installed).
    #[error("{setting} = `{spec}`: {source}")]
    ModelChoice {
        setting: String,
        spec: String,
        #[source]
        source: Box<Error>,
    },

    /// The model's queue, or the query embedder's, is full; `queued`
    /// answers are waiting.
    #[error("the assistant is busy: {queued} answers are waiting")]
    Busy { queued: usize },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True for errors fixed by editing the shop's files or installing a
    /// model, rather than bugs or a failing machine.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Retrieval(e) => e.is_user_error(),
            Error::Inference(e) => e.is_user_error(),
            Error::ModelChoice { source, .. } => source.is_user_error(),
            Error::Shop { .. } | Error::Config { .. } => true,
            Error::Busy { .. } | Error::Io { .. } => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
