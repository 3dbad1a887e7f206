//! The seam between retrieval and the embedding model.
//!
//! Retrieval needs sentence vectors but must not depend on the inference
//! crate (they are siblings); the inference crate implements this trait with
//! a real model and the binaries hand it to retrieval.

/// Turns texts into vectors whose dot product measures similarity.
pub trait TextEmbedder: Send + Sync {
    /// One unit-length vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Vectors for search queries. Some models are trained to embed the
    /// two sides of a search differently (E5 reads "query: " before a
    /// question and "passage: " before a document); for the others this is
    /// [`TextEmbedder::embed`].
    fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed(texts)
    }
    /// Vectors for the passages an index stores; the other side of
    /// [`TextEmbedder::embed_queries`].
    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed(texts)
    }
    /// Length of every vector.
    fn dimension(&self) -> usize;
    /// Names the model and its version; stored with an index so that
    /// vectors from another model are never compared with these.
    fn model_id(&self) -> &str;
    /// Whether the vectors mean anything for text in `lang`. An
    /// English-only model maps Chinese text to noise, which would drown a
    /// good keyword match in the fused ranking; such queries search by
    /// keywords alone.
    fn supports(&self, lang: crate::Language) -> bool {
        let _ = lang;
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding failed: {0}")]
    Failed(String),
    /// Too many texts are already waiting for the model: the caller should
    /// say "busy" rather than wait without bound.
    #[error("the embedding model is busy: {waiting} queries are waiting")]
    Busy { waiting: usize },
}

/// A dot product with independent partial sums, which the compiler turns
/// into vector instructions (one running sum would fix the order of the
/// additions and keep it scalar). Shared by attention in the inference crate
/// and vector search in the retrieval crate.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut partial = [0f32; 16];
    let (chunks_a, chunks_b) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..16 {
            partial[i] += x[i] * y[i];
        }
    }
    partial.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_matches_the_plain_sum_for_any_length() {
        for len in [0, 1, 15, 16, 17, 384] {
            let a: Vec<f32> = (0..len).map(|i| i as f32 * 0.5).collect();
            let b: Vec<f32> = (0..len).map(|i| 1.0 - i as f32 * 0.25).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((super::dot(&a, &b) - plain).abs() <= 1e-3 * plain.abs().max(1.0), "{len}");
        }
    }
}
