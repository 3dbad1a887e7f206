//! One sentence embedder per language, behind the one [`TextEmbedder`] the
//! index and the gate see.
//!
//! Measured on both test shops, all-MiniLM-L6-v2 ranks English passages as
//! well as multilingual-e5-small or better and is about eight times cheaper
//! per query, while only e5 reads Chinese (`docs/quality.md`). So each
//! language gets the model that serves it best. Vectors of two models are
//! never compared: a query is embedded by its language's model and searched
//! only among passages of that language, which the same model embedded.

use std::sync::Arc;

use shopchat_core::{EmbedError, Language, TextEmbedder};

/// Embedders by language; a language without one is searched by keywords.
pub(crate) struct ByLanguage {
    en: Option<Arc<dyn TextEmbedder>>,
    zh: Option<Arc<dyn TextEmbedder>>,
    /// `en=ID,zh=ID` with each model's own id (`none` for a language
    /// without one): an index made with another pairing is not used.
    model_id: String,
    dimension: usize,
}

impl ByLanguage {
    /// `Err` names the reason when the vectors could not share one index:
    /// the vectors file holds vectors of one length.
    pub(crate) fn new(
        en: Option<Arc<dyn TextEmbedder>>,
        zh: Option<Arc<dyn TextEmbedder>>,
    ) -> Result<Self, String> {
        let id = |embedder: &Option<Arc<dyn TextEmbedder>>| {
            embedder.as_ref().map_or("none".to_owned(), |e| e.model_id().to_owned())
        };
        let model_id = format!("en={},zh={}", id(&en), id(&zh));
        let dimensions: Vec<usize> = en.iter().chain(&zh).map(|e| e.dimension()).collect();
        if dimensions.windows(2).any(|pair| pair[0] != pair[1]) {
            return Err(format!(
                "the embedders {model_id} give vectors of different lengths ({dimensions:?}); \
                 one index holds vectors of one length"
            ));
        }
        let dimension = dimensions.first().copied().unwrap_or(0);
        Ok(Self { en, zh, model_id, dimension })
    }

    fn of(&self, lang: Language) -> Result<&dyn TextEmbedder, EmbedError> {
        let embedder = match lang {
            Language::En => self.en.as_deref(),
            Language::Zh => self.zh.as_deref(),
        };
        embedder.ok_or_else(|| {
            EmbedError::Failed(format!("no sentence embedder reads {}", lang.code()))
        })
    }
}

impl TextEmbedder for ByLanguage {
    /// Texts of no stated language go to the English model, the one that
    /// serves the most shops.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.of(Language::En)?.embed(texts)
    }

    fn embed_queries(&self, lang: Language, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.of(lang)?.embed_queries(lang, texts)
    }

    fn embed_passages(&self, lang: Language, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.of(lang)?.embed_passages(lang, texts)
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn supports(&self, lang: Language) -> bool {
        self.of(lang).is_ok_and(|embedder| embedder.supports(lang))
    }
}

/// The name an embedder goes by in the manifest and in `gate.toml`: its
/// model id without the weights' checksums (`multilingual-e5-small@1a2b…`
/// is `multilingual-e5-small`; `en=minilm-l6@…,zh=none` is
/// `en=minilm-l6,zh=none`), which [`shopchat_core::EmbedderChoice::parse`]
/// reads.
pub fn embedder_name(embedder: &dyn TextEmbedder) -> String {
    fn without_checksum(part: &str) -> &str {
        part.split_once('@').map_or(part, |(name, _)| name)
    }
    let parts: Vec<&str> = embedder.model_id().split(',').map(without_checksum).collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors that say which model made them and for which call.
    struct Tagged {
        id: &'static str,
        tag: f32,
        dimension: usize,
    }

    impl TextEmbedder for Tagged {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(texts.iter().map(|_| vec![self.tag; self.dimension]).collect())
        }
        fn embed_queries(&self, _: Language, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(texts.iter().map(|_| vec![self.tag + 0.5; self.dimension]).collect())
        }
        fn dimension(&self) -> usize {
            self.dimension
        }
        fn model_id(&self) -> &str {
            self.id
        }
        fn supports(&self, lang: Language) -> bool {
            self.id.starts_with("multi") || lang == Language::En
        }
    }

    fn tagged(id: &'static str, tag: f32, dimension: usize) -> Option<Arc<dyn TextEmbedder>> {
        Some(Arc::new(Tagged { id, tag, dimension }))
    }

    #[test]
    fn each_language_goes_to_its_own_model_and_a_missing_one_reads_nothing() {
        let both =
            ByLanguage::new(tagged("english@aa", 1.0, 2), tagged("multi@bb", 2.0, 2)).unwrap();
        assert_eq!(both.model_id(), "en=english@aa,zh=multi@bb");
        assert_eq!(embedder_name(&both), "en=english,zh=multi");
        assert_eq!(both.embed_queries(Language::En, &["a"]).unwrap(), [vec![1.5, 1.5]]);
        assert_eq!(both.embed_queries(Language::Zh, &["a"]).unwrap(), [vec![2.5, 2.5]]);
        assert_eq!(both.embed_passages(Language::Zh, &["a"]).unwrap(), [vec![2.0, 2.0]]);
        assert!(both.supports(Language::En) && both.supports(Language::Zh));

        let english = ByLanguage::new(tagged("english@aa", 1.0, 2), None).unwrap();
        assert_eq!(english.model_id(), "en=english@aa,zh=none");
        assert!(!english.supports(Language::Zh));
        assert!(english.embed_passages(Language::Zh, &["a"]).is_err());
        // A model that cannot read the language it is given does not claim it.
        let misplaced = ByLanguage::new(None, tagged("english@aa", 1.0, 2)).unwrap();
        assert!(!misplaced.supports(Language::Zh) && !misplaced.supports(Language::En));
    }

    #[test]
    fn models_whose_vectors_differ_in_length_cannot_share_an_index() {
        let error =
            ByLanguage::new(tagged("english", 1.0, 384), tagged("multi", 2.0, 768)).err().unwrap();
        assert!(error.contains("different lengths"), "{error}");
    }

    #[test]
    fn a_single_models_name_loses_only_its_checksum() {
        let single = Tagged { id: "minilm-l6@0123456789ab", tag: 0.0, dimension: 1 };
        assert_eq!(embedder_name(&single), "minilm-l6");
    }
}
