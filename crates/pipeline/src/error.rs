//! The pipeline's errors: the shop's files or the installed models (user
//! errors, fixed by a command or an edit) apart from internal failures.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Retrieval(shopchat_retrieval::Error),

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

/// A busy query embedder is a busy assistant: wherever a search meets it,
/// the shopper is told `busy`, as for a full model queue.
impl From<shopchat_retrieval::Error> for Error {
    fn from(error: shopchat_retrieval::Error) -> Self {
        match error {
            shopchat_retrieval::Error::Embed(shopchat_core::EmbedError::Busy { waiting }) => {
                Error::Busy { queued: waiting }
            }
            other => Error::Retrieval(other),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use shopchat_core::EmbedError;

    #[test]
    fn a_busy_query_embedder_is_a_busy_assistant() {
        let busy = shopchat_retrieval::Error::Embed(EmbedError::Busy { waiting: 7 });
        assert!(matches!(Error::from(busy), Error::Busy { queued: 7 }));
        let failed = shopchat_retrieval::Error::Embed(EmbedError::Failed("broken".into()));
        assert!(matches!(Error::from(failed), Error::Retrieval(_)));
    }
}
