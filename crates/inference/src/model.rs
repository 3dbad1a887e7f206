//! A decoder-only transformer for llama-family GGUF files (`llama`, `qwen2`).
//!
//! The weights are immutable and shared; the attention cache lives outside
//! them in a [`KvCache`] that each conversation owns. That split is the reason
//! this file exists instead of using candle-transformers' `quantized_llama` and
//! `quantized_qwen2`, which keep the cache inside the weights: here one loaded
//! model serves any number of conversations, a cache can be cut back to a
//! shared prefix, and a computed system prompt can be forked into a new
//! conversation for free prefill. The layer maths follows those two files.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::quantized::{gguf_file, QTensor};
use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
use candle_nn::Embedding;
use candle_transformers::quantized_nn::RmsNorm;
use shopchat_core::embed::dot;
use shopchat_kernels::{Format, KernelSet, ThreadPool};

use crate::error::{Error, Result};
pub use crate::kv_cache::KvCache;
use crate::kv_cache::RopeShift;
use crate::language_model::LoadConfig;
use crate::linear::{Kernels, Linear};

mod blend;

/// Which kernels a loaded model runs (see [`Transformer::kernels`]).
#[derive(Debug, Clone, Copy)]
pub struct KernelReport {
    pub set: KernelSet,
    /// Matrices our kernels multiply.
    pub ours: usize,
    /// Of those, the k-quant ones, which candle's kernels prefill.
    pub k_quants: usize,
    pub matrices: usize,
}

impl std::fmt::Display for KernelReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} of {} matrices", self.set, self.ours, self.matrices)?;
        if self.k_quants > 0 {
            write!(f, "; {} k-quant ones prefilled by candle's", self.k_quants)?;
        }
        write!(f, ")")
    }
}

/// Where the rows of one forward pass sit and what they may see.
#[derive(Clone, Copy)]
struct Rows<'a> {
    /// `mask[i][j]` is 1 where row `i` must not see cache position `j`; none
    /// for a single row appended at the end (it sees everything).
    mask: Option<&'a Tensor>,
    /// The rotary tables at the rows' positions.
    cos: &'a Tensor,
    sin: &'a Tensor,
    /// `None`: the rows are appended after the cache's end. `Some`: they
    /// overwrite these positions, already in the cache (see `blend.rs`).
    at: Option<&'a [usize]>,
}

/// Shape and numerics of a model, read from GGUF metadata.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub embedding_length: usize,
    pub context_length: usize,
    pub rms_norm_eps: f64,
    pub rope_freq_base: f32,
    /// NEOX rotary layout (pairs `i` and `i + d/2`) as in Qwen; otherwise the
    /// interleaved layout of llama GGUFs (pairs `2i` and `2i + 1`).
    pub rope_neox: bool,
    pub vocab_size: usize,
}

impl ModelConfig {
    fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadModelFile { path: path.to_owned(), reason };
        let arch = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| bad("no general.architecture".into()))?;
        let rope_neox = match arch.as_str() {
            "llama" => false,
            "qwen2" => true,
            other => {
                return Err(bad(format!(
                    "architecture `{other}` is not supported (supported: llama, qwen2)"
                )))
            }
        };
        let get_u32 = |key: &str| -> Result<usize> {
            let full = format!("{arch}.{key}");
            content
                .metadata
                .get(&full)
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| bad(format!("missing metadata {full}")))
        };
        let n_head = get_u32("attention.head_count")?;
        let embedding_length = get_u32("embedding_length")?;
        let rms_norm_eps = content
            .metadata
            .get(&format!("{arch}.attention.layer_norm_rms_epsilon"))
            .and_then(|v| v.to_f32().ok())
            .ok_or_else(|| bad("missing layer_norm_rms_epsilon".into()))?
            as f64;
        let rope_freq_base = content
            .metadata
            .get(&format!("{arch}.rope.freq_base"))
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(10_000.0);
        let vocab_size = content
            .metadata
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.len())
            .ok_or_else(|| bad("missing tokenizer.ggml.tokens".into()))?;
        Ok(Self {
            n_layer: get_u32("block_count")?,
            n_head,
            n_kv_head: get_u32("attention.head_count_kv")?,
            head_dim: embedding_length / n_head,
            embedding_length,
            context_length: get_u32("context_length")?,
            rms_norm_eps,
            rope_freq_base,
            rope_neox,
            vocab_size,
            architecture: arch,
        })
    }
}

struct Attention {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    /// Qwen2 has biases on the query, key and value projections; llama has none.
    bias: Option<[Tensor; 3]>,
}

struct FeedForward {
    gate: Linear,
    up: Linear,
    down: Linear,
}

struct Layer {
    attention_norm: RmsNorm,
    attention: Attention,
    ffn_norm: RmsNorm,
    ffn: FeedForward,
}

/// The loaded weights. Immutable after loading; share it behind an `Arc`.
pub struct Transformer {
    config: ModelConfig,
    embeddings: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    rope_shift: RopeShift,
    kernels: Kernels,
    device: Device,
    /// Causal masks by (new tokens, cached tokens). Only prefill needs one, and
    /// the same shapes recur, so they are built once. A std mutex is enough:
    /// it is never held across anything but a map look-up.
    masks: Mutex<HashMap<(usize, usize), Tensor>>,
}

impl Transformer {
    /// Loads a GGUF file. `load.max_context` caps the rotary tables (and so
    /// the longest conversation) below the model's trained context when set;
    /// `load.kernels` picks the matrix kernels (else `SHOPCHAT_KERNELS`, else
    /// the fastest the CPU has).
    pub fn load(path: &Path, load: &LoadConfig) -> Result<(Self, gguf_file::Content)> {
        let mut file = std::fs::File::open(path)
            .map_err(Error::io(format!("cannot open model file {}", path.display())))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| Error::BadModelFile { path: path.to_owned(), reason: e.to_string() })?;
        let mut config = ModelConfig::from_gguf(&content, path)?;
        let kernels = match load.kernels {
            Some(set) if set.is_supported() => set,
            Some(set) => {
                return Err(Error::InvalidSettings(format!(
                    "this CPU cannot run the {set} kernels"
                )))
            }
            None => KernelSet::from_env().map_err(|e| Error::InvalidSettings(e.to_string()))?,
        };
        if let Some(max) = load.max_context {
            config.context_length = config.context_length.min(max);
        }
        let device = Device::Cpu;
        let bad = |e: candle_core::Error| Error::BadModelFile {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut tensor = |name: &str| -> Result<QTensor> {
            content.tensor(&mut file, name, &device).map_err(bad)
        };

        let embeddings_q = tensor("token_embd.weight")?;
        let embeddings = embeddings_q.dequantize(&device)?;
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, config.rms_norm_eps)?;
        // Models with tied embeddings have no output matrix: reuse the
        // quantized embedding table for the output projection.
        let output = match tensor("output.weight") {
            Ok(t) => t,
            Err(_) => embeddings_q,
        };
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = format!("blk.{i}");
            let mut matmul = |name: &str| -> Result<Linear> {
                Linear::from_qtensor(tensor(&format!("{p}.{name}"))?)
            };
            let attention = Attention {
                wq: matmul("attn_q.weight")?,
                wk: matmul("attn_k.weight")?,
                wv: matmul("attn_v.weight")?,
                wo: matmul("attn_output.weight")?,
                bias: None,
            };
            let ffn = FeedForward {
                gate: matmul("ffn_gate.weight")?,
                up: matmul("ffn_up.weight")?,
                down: matmul("ffn_down.weight")?,
            };
            let attention_norm = RmsNorm::from_qtensor(
                tensor(&format!("{p}.attn_norm.weight"))?,
                config.rms_norm_eps,
            )?;
            let ffn_norm = RmsNorm::from_qtensor(
                tensor(&format!("{p}.ffn_norm.weight"))?,
                config.rms_norm_eps,
            )?;
            let bias = if config.architecture == "qwen2" {
                let mut b = |name: &str| -> Result<Tensor> {
                    Ok(tensor(&format!("{p}.{name}"))?.dequantize(&device)?)
                };
                Some([b("attn_q.bias")?, b("attn_k.bias")?, b("attn_v.bias")?])
            } else {
                None
            };
            layers.push(Layer {
                attention_norm,
                attention: Attention { bias, ..attention },
                ffn_norm,
                ffn,
            });
        }
        let (cos, sin) = rotary_tables(&config, &device)?;
        let embeddings = Embedding::new(embeddings, config.embedding_length);
        let rope_shift = RopeShift::new(&config);
        let model = Self {
            config,
            embeddings,
            layers,
            norm,
            output: Linear::from_qtensor(output)?,
            cos,
            sin,
            rope_shift,
            kernels: Kernels { set: kernels, pool: ThreadPool::global() },
            device,
            masks: Mutex::new(HashMap::new()),
        };
        Ok((model, content))
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The matrix kernels this model runs, and how many of its matrices run
    /// on them (the others, in block formats they lack, on candle's).
    pub fn kernels(&self) -> KernelReport {
        let mut matrices: Vec<&Linear> = vec![&self.output];
        for layer in &self.layers {
            let (a, f) = (&layer.attention, &layer.ffn);
            matrices.extend([&a.wq, &a.wk, &a.wv, &a.wo, &f.gate, &f.up, &f.down]);
        }
        KernelReport {
            set: self.kernels.set,
            ours: matrices.iter().filter(|m| m.kernel_format().is_some()).count(),
            k_quants: matrices
                .iter()
                .filter(|m| matches!(m.kernel_format(), Some(Format::Q4K | Format::Q6K)))
                .count(),
            matrices: matrices.len(),
        }
    }

    /// Moves cached keys to other positions (see [`KvCache::append_moved`]).
    pub fn rope_shift(&self) -> &RopeShift {
        &self.rope_shift
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(&self.config)
    }

    /// Runs `tokens` after the positions already in `cache`, appends them to
    /// the cache, and returns the logits for the next token (shape `[vocab]`).
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let seq_len = tokens.len();
        if seq_len == 0 {
            return Err(Error::InvalidSettings("forward needs at least one token".into()));
        }
        let start = cache.len();
        if start + seq_len > self.config.context_length {
            return Err(Error::ContextOverflow {
                needed: start + seq_len,
                limit: self.config.context_length,
            });
        }
        cache.reserve(start + seq_len);
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mask = if seq_len > 1 { Some(self.mask(seq_len, start)?) } else { None };
        let cos = self.cos.narrow(0, start, seq_len)?;
        let sin = self.sin.narrow(0, start, seq_len)?;

        let mut x = self.embeddings.forward(&input)?;
        let rows = Rows { mask: mask.as_ref(), cos: &cos, sin: &sin, at: None };
        for index in 0..self.layers.len() {
            x = self.layer(index, &x, &rows, cache)?;
        }
        cache.len = start + seq_len;
        // Only the last position's logits are needed to pick the next token.
        let last = x.i((.., seq_len - 1, ..))?.contiguous()?;
        let last = self.norm.forward(&last)?;
        let [logits] = self.kernels.forward(&last, [&self.output])?;
        Ok(logits.squeeze(0)?)
    }

    /// One transformer layer over `x`, its keys and values written to `cache`
    /// where `rows` says.
    fn layer(&self, index: usize, x: &Tensor, rows: &Rows, cache: &mut KvCache) -> Result<Tensor> {
        let layer = &self.layers[index];
        let h = layer.attention_norm.forward(x)?;
        let h = self.attention(layer, index, &h, rows, cache)?;
        let x_attn = (h + x)?;
        let h = layer.ffn_norm.forward(&x_attn)?;
        let [gate, up] = self.kernels.forward(&h, [&layer.ffn.gate, &layer.ffn.up])?;
        let [h] = self.kernels.forward(&(candle_nn::ops::silu(&gate)? * up)?, [&layer.ffn.down])?;
        Ok((h + x_attn)?)
    }

    fn attention(
        &self,
        layer: &Layer,
        index: usize,
        x: &Tensor,
        rows: &Rows,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let Rows { mask, cos, sin, at } = *rows;
        let c = &self.config;
        let (b, seq_len, n_embd) = x.dims3()?;
        let a = &layer.attention;
        let [mut q, mut k, mut v] = self.kernels.forward(x, [&a.wq, &a.wk, &a.wv])?;
        if let Some([bq, bk, bv]) = &a.bias {
            q = q.broadcast_add(bq)?;
            k = k.broadcast_add(bk)?;
            v = v.broadcast_add(bv)?;
        }
        let q = q.reshape((b, seq_len, c.n_head, c.head_dim))?.transpose(1, 2)?.contiguous()?;
        let k = k.reshape((b, seq_len, c.n_kv_head, c.head_dim))?.transpose(1, 2)?.contiguous()?;
        let v = v.reshape((b, seq_len, c.n_kv_head, c.head_dim))?.transpose(1, 2)?.contiguous()?;
        let (q, k) = if c.rope_neox {
            (candle_nn::rotary_emb::rope(&q, cos, sin)?, candle_nn::rotary_emb::rope(&k, cos, sin)?)
        } else {
            (
                candle_nn::rotary_emb::rope_i(&q, cos, sin)?,
                candle_nn::rotary_emb::rope_i(&k, cos, sin)?,
            )
        };
        let k_new = k.flatten_all()?.to_vec1::<f32>()?;
        let v_new = v.flatten_all()?.to_vec1::<f32>()?;
        let kv_len = match at {
            None => {
                cache.write(index, &k_new, &v_new, seq_len);
                cache.len + seq_len
            }
            Some(positions) => {
                cache.write_at(index, &k_new, &v_new, positions);
                cache.len
            }
        };
        let group = c.n_head / c.n_kv_head;

        let y = if seq_len == 1 && mask.is_none() {
            let q = q.flatten_all()?.to_vec1::<f32>()?;
            let out = decode_attention(&q, cache, index, kv_len, group);
            Tensor::from_vec(out, (b, 1, n_embd), &self.device)?
        } else {
            // Grouped-query attention without copying keys: the query heads
            // that share a key head are stacked along the row axis, so one
            // matmul per key head serves the whole group.
            let (k, v) = cache.tensors(index, kv_len, &self.device)?;
            let q = q.reshape((b, c.n_kv_head, group * seq_len, c.head_dim))?;
            let scores = (q.matmul(&k.t()?)? / (c.head_dim as f64).sqrt())?;
            let scores = match mask {
                None => scores,
                Some(mask) => {
                    let scores = scores.reshape((b, c.n_kv_head, group, seq_len, kv_len))?;
                    let mask = mask.broadcast_as(scores.shape())?;
                    let neg_inf = Tensor::new(f32::NEG_INFINITY, &self.device)?
                        .broadcast_as(scores.shape())?;
                    mask.where_cond(&neg_inf, &scores)?.reshape((
                        b,
                        c.n_kv_head,
                        group * seq_len,
                        kv_len,
                    ))?
                }
            };
            let weights = candle_nn::ops::softmax_last_dim(&scores)?;
            let y = weights.matmul(&v)?;
            y.reshape((b, c.n_head, seq_len, c.head_dim))?
                .transpose(1, 2)?
                .reshape((b, seq_len, n_embd))?
        };
        let [y] = self.kernels.forward(&y, [&a.wo])?;
        Ok(y)
    }

    /// `mask[i][j]` is 1 where new token `i` must not see position `j`.
    fn mask(&self, seq_len: usize, start: usize) -> Result<Tensor> {
        let mut masks = self.masks.lock().expect("mask cache lock poisoned");
        if let Some(mask) = masks.get(&(seq_len, start)) {
            return Ok(mask.clone());
        }
        let mask = causal_mask(start..start + seq_len, start + seq_len, &self.device)?;
        // Prefill chunk shapes repeat, but offsets vary with every
        // conversation: keep the map from growing without bound.
        if masks.len() > 256 {
            masks.clear();
        }
        masks.insert((seq_len, start), mask.clone());
        Ok(mask)
    }

    /// Logits as a plain vector, for the sampler.
    pub fn logits_to_vec(logits: &Tensor) -> Result<Vec<f32>> {
        Ok(logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// `mask[i][j]` is 1 where the row at the `i`-th of `positions` must not
/// see cache position `j` of `kv_len`: each row sees the positions up to its
/// own, as in a prefill.
fn causal_mask(
    positions: impl ExactSizeIterator<Item = usize> + Clone,
    kv_len: usize,
    device: &Device,
) -> Result<Tensor> {
    let rows = positions.len();
    let data: Vec<u8> = positions.flat_map(|p| (0..kv_len).map(move |j| u8::from(j > p))).collect();
    Ok(Tensor::from_slice(&data, (rows, kv_len), device)?)
}

fn rotary_tables(config: &ModelConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let dim = config.head_dim;
    let theta: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1f32 / config.rope_freq_base.powf(i as f32 / dim as f32))
        .collect();
    let theta = Tensor::new(theta.as_slice(), device)?;
    let positions = Tensor::arange(0, config.context_length as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((config.context_length, 1))?;
    let angles = positions.matmul(&theta.reshape((1, theta.elem_count()))?)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Attention of one new token over the cache, in plain Rust.
///
/// With one query row, a tensor matmul is all call overhead (thread hand-off,
/// operand packing) and little arithmetic; this loop is several times faster
/// at conversation lengths. Returns `[head][head dim]` flattened, the layout
/// the output projection expects for one token.
fn decode_attention(
    q: &[f32],
    cache: &KvCache,
    layer: usize,
    kv_len: usize,
    group: usize,
) -> Vec<f32> {
    let (d, cap) = (cache.head_dim, cache.capacity);
    let scale = 1.0 / (d as f32).sqrt();
    let layer = &cache.layers[layer];
    let mut out = vec![0f32; q.len()];
    let mut scores = vec![0f32; kv_len];
    for (head, (query, output)) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let kv_head = head / group;
        let keys = &layer.keys[kv_head * cap * d..][..kv_len * d];
        let values = &layer.values[kv_head * cap * d..][..kv_len * d];
        for (score, key) in scores.iter_mut().zip(keys.chunks_exact(d)) {
            *score = dot(query, key) * scale;
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            total += *score;
        }
        for (weight, value) in scores.iter().zip(values.chunks_exact(d)) {
            let weight = weight / total;
            for (o, v) in output.iter_mut().zip(value) {
                *o += weight * v;
            }
        }
    }
    out
}

/// Index of the largest logit: greedy decoding without a sampler.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?)
}
