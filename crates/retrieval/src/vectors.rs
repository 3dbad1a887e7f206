//! Sentence vectors stored beside the tantivy index, and comparing them.
//!
//! A JSON file: a knowledge base has hundreds of passages, not millions, so
//! a readable format costs nothing worth saving, and brute-force cosine over
//! all of them takes well under a millisecond.

use std::path::Path;

use serde::{Deserialize, Serialize};
use shopchat_core::embed::dot;
use shopchat_core::TextEmbedder;

use crate::layout::write_synced;
use crate::passage::Passage;
use crate::{Error, Result};

/// How many texts go to the embedder at once: large enough to keep a model
/// busy, small enough to report progress often.
const BATCH: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct VectorFile {
    pub model_id: String,
    pub dimension: usize,
    /// Passage ids, in the order of `vectors`.
    pub ids: Vec<String>,
    pub vectors: Vec<Vec<f32>>,
}

impl VectorFile {
    /// Embeds the title and text of each passage in a language the
    /// embedder reads (the others are searched by keywords alone), calling
    /// `progress` with the number done after every batch.
    pub fn embed(
        passages: &[&Passage],
        embedder: &dyn TextEmbedder,
        progress: &mut dyn FnMut(usize),
    ) -> Result<VectorFile> {
        let dimension = embedder.dimension();
        let read: Vec<&Passage> =
            passages.iter().copied().filter(|p| embedder.supports(p.lang)).collect();
        // A batch holds one language (each may have its own model) and is
        // padded to its longest text: embedding texts of similar length
        // together wastes the least work. The vectors are put back in the
        // passages' order at the end.
        let mut order: Vec<usize> = (0..read.len()).collect();
        order.sort_by_key(|&i| (read[i].lang, read[i].title.len() + read[i].text.len()));
        let mut vectors = Vec::with_capacity(read.len());
        let mut start = 0;
        while start < order.len() {
            let lang = read[order[start]].lang;
            let same_language =
                order[start..].iter().take(BATCH).take_while(|&&i| read[i].lang == lang).count();
            let batch = &order[start..start + same_language];
            start += same_language;
            let texts: Vec<String> =
                batch.iter().map(|&i| format!("{}\n{}", read[i].title, read[i].text)).collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embedded = embedder.embed_passages(lang, &texts)?;
            if embedded.len() != texts.len() {
                let reason = format!("{} vectors for {} texts", embedded.len(), texts.len());
                return Err(Error::BadEmbedding(reason));
            }
            for vector in embedded {
                if vector.len() != dimension || vector.iter().any(|x| !x.is_finite()) {
                    let reason = format!(
                        "a vector of {} numbers (not all finite, or not the promised {dimension})",
                        vector.len()
                    );
                    return Err(Error::BadEmbedding(reason));
                }
                vectors.push(vector);
            }
            progress(vectors.len());
        }
        let mut in_passage_order = vec![Vec::new(); read.len()];
        for (vector, &index) in vectors.into_iter().zip(&order) {
            in_passage_order[index] = vector;
        }
        Ok(VectorFile {
            model_id: embedder.model_id().to_owned(),
            dimension,
            ids: read.iter().map(|p| p.id.clone()).collect(),
            vectors: in_passage_order,
        })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Io {
            context: format!("cannot encode {}", path.display()),
            source: e.into(),
        })?;
        write_synced(path, &json)
    }

    /// Reads and checks a vectors file; the error is the reason it is
    /// unusable.
    pub fn read(path: &Path) -> std::result::Result<VectorFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: VectorFile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if file.ids.len() != file.vectors.len() {
            return Err(format!(
                "{}: {} ids but {} vectors",
                path.display(),
                file.ids.len(),
                file.vectors.len()
            ));
        }
        if file.vectors.iter().any(|v| v.len() != file.dimension) {
            return Err(format!("{}: a vector is not {} long", path.display(), file.dimension));
        }
        Ok(file)
    }
}

/// The cosine of the angle between two vectors (for tests: searches
/// normalize once and take dot products).
#[cfg(test)]
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let norms = dot(a, a).sqrt() * dot(b, b).sqrt();
    if norms == 0.0 {
        0.0
    } else {
        dot(a, b) / norms
    }
}

/// Scales a vector to unit length (a zero vector stays zero), so that a
/// search over many vectors needs only dot products.
pub(crate) fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 0.0], &[3.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 2.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn a_file_whose_vectors_do_not_match_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors.json");
        let file = VectorFile {
            model_id: "m".into(),
            dimension: 2,
            ids: vec!["a".into()],
            vectors: vec![vec![1.0, 0.5]],
        };
        file.write(&path).unwrap();
        assert_eq!(VectorFile::read(&path).unwrap(), file);
        std::fs::write(&path, r#"{"model_id":"m","dimension":3,"ids":["a"],"vectors":[[1.0]]}"#)
            .unwrap();
        assert!(VectorFile::read(&path).unwrap_err().contains("not 3 long"));
        std::fs::write(&path, "{").unwrap();
        assert!(VectorFile::read(&path).is_err());
    }
}
