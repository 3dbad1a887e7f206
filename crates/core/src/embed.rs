//! The seam between retrieval and the embedding model.
//!
//! Retrieval needs sentence vectors but must not depend on the inference
//! crate (they are siblings); the inference crate implements this trait with
//! a real model and the binaries hand it to retrieval.

/// Turns texts into vectors whose dot product measures similarity.
pub trait TextEmbedder: Send + Sync {
    /// One unit-length vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Length of every vector.
    fn dimension(&self) -> usize;
    /// Names the model and its version; stored with an index so that
    /// vectors from another model are never compared with these.
    fn model_id(&self) -> &str;
}

#[derive(Debug, thiserror::Error)]
#[error("embedding failed: {0}")]
pub struct EmbedError(pub String);
