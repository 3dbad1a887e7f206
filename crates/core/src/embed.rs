//! The seam between retrieval and the embedding model.
//!
//! Retrieval needs sentence vectors but must not depend on the inference
//! crate (they are siblings); the inference crate implements this trait with
//! a real model and the binaries hand it to retrieval.
//!
//! Each language may have its own embedder ([`EmbedderChoice`]): an
//! English model can beat a multilingual one on English while only the
//! multilingual one reads Chinese, so queries and passages are always
//! embedded together with the language they are in.

use crate::Language;

/// Turns texts into vectors whose dot product measures similarity.
pub trait TextEmbedder: Send + Sync {
    /// One unit-length vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Vectors for search queries. Some models are trained to embed the
    /// two sides of a search differently (E5 reads "query: " before a
    /// question and "passage: " before a document); for the others this is
    /// [`TextEmbedder::embed`].
    /// All `texts` are in `lang`.
    fn embed_queries(&self, lang: Language, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let _ = lang;
        self.embed(texts)
    }
    /// Vectors for the passages an index stores; the other side of
    /// [`TextEmbedder::embed_queries`]. All `texts` are in `lang`.
    fn embed_passages(&self, lang: Language, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let _ = lang;
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
    fn supports(&self, lang: Language) -> bool {
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

/// Which sentence embedder serves which language, as configuration writes
/// it: one name for every language (`minilm-l6`) or one per language
/// (`en=minilm-l6,zh=multilingual-e5-small`; a language left out, or
/// `none`, is searched by keywords alone). The same text names the
/// embedders an index and a shop's `gate.toml` were made with, so that
/// cosines of one model are never judged on another's scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderChoice {
    en: Option<String>,
    zh: Option<String>,
}

impl EmbedderChoice {
    /// The same embedder for every language.
    pub fn single(name: &str) -> Self {
        Self { en: Some(name.to_owned()), zh: Some(name.to_owned()) }
    }

    /// Reads `name` or `en=name,zh=name`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if !text.contains('=') {
            if text.is_empty() || text.contains(',') {
                return Err(format!(
                    "`{text}` names no embedder: write one name, or `en=NAME,zh=NAME`"
                ));
            }
            return Ok(if text == "none" {
                Self { en: None, zh: None }
            } else {
                Self::single(text)
            });
        }
        let mut choice = Self { en: None, zh: None };
        let mut seen = Vec::new();
        for part in text.split(',') {
            let Some((tag, name)) = part.split_once('=') else {
                return Err(format!("`{part}` in `{text}` is not LANGUAGE=NAME"));
            };
            let lang = Language::from_tag(tag.trim())
                .filter(|lang| lang.code() == tag.trim())
                .ok_or_else(|| {
                    format!("`{}` in `{text}` is not a language (en, zh)", tag.trim())
                })?;
            if seen.contains(&lang) {
                return Err(format!("`{text}` names the embedder for {} twice", lang.code()));
            }
            seen.push(lang);
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("`{part}` in `{text}` has no embedder name"));
            }
            *choice.slot(lang) = (name != "none").then(|| name.to_owned());
        }
        Ok(choice)
    }

    /// The embedder named for `lang`.
    pub fn get(&self, lang: Language) -> Option<&str> {
        match lang {
            Language::En => self.en.as_deref(),
            Language::Zh => self.zh.as_deref(),
        }
    }

    fn slot(&mut self, lang: Language) -> &mut Option<String> {
        match lang {
            Language::En => &mut self.en,
            Language::Zh => &mut self.zh,
        }
    }

    /// The distinct names, in language order: what there is to load.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for name in Language::ALL.iter().filter_map(|&lang| self.get(lang)) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

impl std::fmt::Display for EmbedderChoice {
    /// The shortest text [`EmbedderChoice::parse`] reads back as `self`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.en, &self.zh) {
            (Some(en), Some(zh)) if en == zh => f.write_str(en),
            (None, None) => f.write_str("none"),
            (en, zh) => write!(
                f,
                "en={},zh={}",
                en.as_deref().unwrap_or("none"),
                zh.as_deref().unwrap_or("none")
            ),
        }
    }
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
    use super::EmbedderChoice;
    use crate::Language;

    #[test]
    fn an_embedder_choice_reads_one_name_or_one_per_language_and_writes_it_back() {
        let one = EmbedderChoice::parse("minilm-l6").unwrap();
        assert_eq!(
            (one.get(Language::En), one.get(Language::Zh)),
            (Some("minilm-l6"), Some("minilm-l6"))
        );
        assert_eq!(one.to_string(), "minilm-l6");
        let two = EmbedderChoice::parse(" en=minilm-l6, zh=multilingual-e5-small ").unwrap();
        assert_eq!(two.get(Language::En), Some("minilm-l6"));
        assert_eq!(two.get(Language::Zh), Some("multilingual-e5-small"));
        assert_eq!(two.names(), ["minilm-l6", "multilingual-e5-small"]);
        assert_eq!(EmbedderChoice::parse(&two.to_string()).unwrap(), two);
        let english_only = EmbedderChoice::parse("en=minilm-l6").unwrap();
        assert_eq!(english_only.get(Language::Zh), None);
        assert_eq!(english_only.to_string(), "en=minilm-l6,zh=none");
        assert_eq!(EmbedderChoice::parse("en=a,zh=a").unwrap().to_string(), "a");
        let none = EmbedderChoice::parse("none").unwrap();
        assert_eq!((none.get(Language::En), none.get(Language::Zh)), (None, None));
        for bad in ["", "a,b", "fr=a", "en=a,en=b", "en=", "en-GB=a", "zh=a b"] {
            assert!(EmbedderChoice::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

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
