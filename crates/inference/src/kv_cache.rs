//! The attention cache of one conversation, and passages cut out of it.
//!
//! A passage's keys and values depend on its tokens, on what came before it
//! and on its positions. Positions enter the keys only through the rotary
//! embedding, a rotation by an angle proportional to the position, so keys
//! computed at one position are moved to another by rotating them by the
//! difference ([`RopeShift`]). That is what lets a passage computed for one
//! answer be reused, moved, in the prompt of the next (see
//! `passage_cache.rs`); what it attended to the first time stays in it.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::model::ModelConfig;

/// The attention keys and values of one conversation.
///
/// Plain vectors laid out `[kv head][position][head dim]` with spare room,
/// so appending a token copies only that token, decoding reads them directly
/// (see [`decode_attention`]), and `Clone` is a real, independent copy.
#[derive(Clone)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
    pub(crate) len: usize,
    pub(crate) capacity: usize,
    pub(crate) n_kv_head: usize,
    pub(crate) head_dim: usize,
}

#[derive(Clone, Default)]
pub(crate) struct LayerCache {
    pub(crate) keys: Vec<f32>,
    pub(crate) values: Vec<f32>,
}

impl KvCache {
    pub fn new(config: &ModelConfig) -> Self {
        Self {
            layers: vec![LayerCache::default(); config.n_layer],
            len: 0,
            capacity: 0,
            n_kv_head: config.n_kv_head,
            head_dim: config.head_dim,
        }
    }

    /// Number of token positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position at or after `len`. The storage is kept and
    /// overwritten by later tokens.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// An independent copy holding the same positions.
    pub fn fork(&self) -> Result<Self> {
        Ok(self.clone())
    }

    /// Bytes held by the cache's storage.
    pub fn memory_bytes(&self) -> usize {
        self.layers.iter().map(|l| (l.keys.capacity() + l.values.capacity()) * 4).sum()
    }

    /// Makes room for `needed` positions in every layer, growing
    /// geometrically so that a long answer reallocates a few times, not once
    /// per token.
    pub(crate) fn reserve(&mut self, needed: usize) {
        if needed <= self.capacity {
            return;
        }
        let capacity = needed.max(self.capacity * 2).max(64);
        let (h, d) = (self.n_kv_head, self.head_dim);
        for layer in &mut self.layers {
            for buffer in [&mut layer.keys, &mut layer.values] {
                let mut grown = vec![0f32; h * capacity * d];
                for head in 0..h {
                    let old = &buffer[head * self.capacity * d..][..self.len * d];
                    grown[head * capacity * d..][..self.len * d].copy_from_slice(old);
                }
                *buffer = grown;
            }
        }
        self.capacity = capacity;
    }

    /// Writes `k` and `v` (`[kv head][new position][head dim]`, flattened)
    /// after the current end of `layer`. `len` advances once all layers
    /// have been written.
    pub(crate) fn write(&mut self, layer: usize, k: &[f32], v: &[f32], new: usize) {
        let (cap, d, start) = (self.capacity, self.head_dim, self.len);
        let layer = &mut self.layers[layer];
        for head in 0..self.n_kv_head {
            let source = head * new * d..(head + 1) * new * d;
            let target = (head * cap + start) * d..(head * cap + start + new) * d;
            layer.keys[target.clone()].copy_from_slice(&k[source.clone()]);
            layer.values[target].copy_from_slice(&v[source]);
        }
    }

    /// Writes `k` and `v` (`[kv head][row][head dim]`, flattened) over the
    /// positions `at` of `layer`, row `i` at `at[i]`; all already held.
    pub(crate) fn write_at(&mut self, layer: usize, k: &[f32], v: &[f32], at: &[usize]) {
        let (cap, d, rows) = (self.capacity, self.head_dim, at.len());
        let layer = &mut self.layers[layer];
        for head in 0..self.n_kv_head {
            for (row, &position) in at.iter().enumerate() {
                assert!(position < self.len, "a rewrite past the end of the cache");
                let source = (head * rows + row) * d..(head * rows + row + 1) * d;
                let target = (head * cap + position) * d..(head * cap + position + 1) * d;
                layer.keys[target.clone()].copy_from_slice(&k[source.clone()]);
                layer.values[target].copy_from_slice(&v[source]);
            }
        }
    }

    /// A copy of the keys and values of positions `span` of `layer`, to
    /// measure later how much they changed ([`KvCache::changes_since`]).
    pub(crate) fn layer_span(&self, layer: usize, span: std::ops::Range<usize>) -> LayerCache {
        let (cap, d) = (self.capacity, self.head_dim);
        let copy = |buffer: &[f32]| -> Vec<f32> {
            (0..self.n_kv_head)
                .flat_map(|h| buffer[(h * cap + span.start) * d..(h * cap + span.end) * d].to_vec())
                .collect()
        };
        let layer = &self.layers[layer];
        LayerCache { keys: copy(&layer.keys), values: copy(&layer.values) }
    }

    /// How much each position of `span` of `layer` moved since `before`
    /// was taken of it: the squared distance of its keys and values, summed
    /// over heads.
    pub(crate) fn changes_since(
        &self,
        before: &LayerCache,
        layer: usize,
        span: std::ops::Range<usize>,
    ) -> Vec<f32> {
        let (cap, d, n) = (self.capacity, self.head_dim, span.len());
        let now = &self.layers[layer];
        let mut changes = vec![0f32; n];
        for head in 0..self.n_kv_head {
            for (row, change) in changes.iter_mut().enumerate() {
                let here = (head * cap + span.start + row) * d..;
                let there = (head * n + row) * d..;
                for (a, b) in [(&now.keys, &before.keys), (&now.values, &before.values)] {
                    let pairs = a[here.clone()][..d].iter().zip(&b[there.clone()][..d]);
                    *change += pairs.map(|(p, q)| (p - q) * (p - q)).sum::<f32>();
                }
            }
        }
        changes
    }

    /// Keys and values of positions `0..len` of `layer` as tensors of shape
    /// `(1, kv heads, len, head dim)`.
    pub(crate) fn tensors(
        &self,
        layer: usize,
        len: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let (cap, d) = (self.capacity, self.head_dim);
        let gather = |buffer: &[f32]| -> Vec<f32> {
            (0..self.n_kv_head)
                .flat_map(|h| buffer[h * cap * d..][..len * d].iter().copied())
                .collect()
        };
        let layer = &self.layers[layer];
        let shape = (1, self.n_kv_head, len, d);
        Ok((
            Tensor::from_vec(gather(&layer.keys), shape, device)?,
            Tensor::from_vec(gather(&layer.values), shape, device)?,
        ))
    }
}

/// The keys and values of a run of positions cut out of a [`KvCache`],
/// remembered with the position they were computed at.
#[derive(Clone)]
pub struct PassageKv {
    /// Per layer, `[kv head][position][head dim]` flattened, `len` positions.
    layers: Vec<LayerCache>,
    len: usize,
    computed_at: usize,
}

impl PassageKv {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first position these keys were computed at.
    pub fn computed_at(&self) -> usize {
        self.computed_at
    }

    pub fn memory_bytes(&self) -> usize {
        self.layers.iter().map(|l| (l.keys.len() + l.values.len()) * 4).sum()
    }
}

/// How the rotary embedding pairs a head's dimensions and how fast each pair
/// turns: enough to move cached keys to other positions.
#[derive(Debug, Clone)]
pub struct RopeShift {
    /// Angle per position of each dimension pair.
    theta: Vec<f64>,
    /// Pairs `i` and `i + d/2` (Qwen) instead of `2i` and `2i + 1` (llama).
    neox: bool,
}

impl RopeShift {
    pub fn new(config: &ModelConfig) -> Self {
        let dim = config.head_dim;
        let theta = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / f64::from(config.rope_freq_base).powf(i as f64 / dim as f64))
            .collect();
        Self { theta, neox: config.rope_neox }
    }

    /// Rotates every head-sized chunk of `keys` by `delta` positions.
    fn apply(&self, keys: &mut [f32], delta: i64) {
        if delta == 0 {
            return;
        }
        let d = self.theta.len() * 2;
        let turns: Vec<(f32, f32)> = self
            .theta
            .iter()
            .map(|theta| {
                let angle = theta * delta as f64;
                (angle.cos() as f32, angle.sin() as f32)
            })
            .collect();
        for key in keys.chunks_exact_mut(d) {
            for (i, &(cos, sin)) in turns.iter().enumerate() {
                let (a, b) = if self.neox { (i, i + d / 2) } else { (2 * i, 2 * i + 1) };
                let (x, y) = (key[a], key[b]);
                key[a] = x * cos - y * sin;
                key[b] = x * sin + y * cos;
            }
        }
    }
}

impl KvCache {
    /// An independent cache holding a copy of the first `len` positions.
    pub fn prefix(&self, len: usize) -> KvCache {
        assert!(len <= self.len, "a prefix past the end of the cache");
        let mut copy = KvCache {
            layers: vec![LayerCache::default(); self.layers.len()],
            len: 0,
            capacity: 0,
            n_kv_head: self.n_kv_head,
            head_dim: self.head_dim,
        };
        copy.reserve(len);
        let (cap, d) = (self.capacity, self.head_dim);
        for (target, source) in copy.layers.iter_mut().zip(&self.layers) {
            for head in 0..self.n_kv_head {
                let from = head * cap * d..(head * cap + len) * d;
                let to = head * copy.capacity * d..(head * copy.capacity + len) * d;
                target.keys[to.clone()].copy_from_slice(&source.keys[from.clone()]);
                target.values[to].copy_from_slice(&source.values[from]);
            }
        }
        copy.len = len;
        copy
    }

    /// A copy of positions `start..start + len`.
    pub fn cut(&self, start: usize, len: usize) -> PassageKv {
        assert!(start + len <= self.len, "cut past the end of the cache");
        let (cap, d) = (self.capacity, self.head_dim);
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                let copy = |buffer: &[f32]| -> Vec<f32> {
                    (0..self.n_kv_head)
                        .flat_map(|h| buffer[(h * cap + start) * d..][..len * d].iter().copied())
                        .collect()
                };
                LayerCache { keys: copy(&layer.keys), values: copy(&layer.values) }
            })
            .collect();
        PassageKv { layers, len, computed_at: start }
    }

    /// Appends `passage` after the current end, its keys turned to the
    /// positions they now take. The cache must come from the same model.
    pub fn append_moved(&mut self, passage: &PassageKv, rope: &RopeShift) {
        let start = self.len;
        self.reserve(start + passage.len);
        let delta = start as i64 - passage.computed_at as i64;
        let (cap, d, n) = (self.capacity, self.head_dim, passage.len);
        for (layer, cut) in self.layers.iter_mut().zip(&passage.layers) {
            for head in 0..self.n_kv_head {
                let source = head * n * d..(head + 1) * n * d;
                let target = (head * cap + start) * d..(head * cap + start + n) * d;
                layer.keys[target.clone()].copy_from_slice(&cut.keys[source.clone()]);
                rope.apply(&mut layer.keys[target.clone()], delta);
                layer.values[target].copy_from_slice(&cut.values[source]);
            }
        }
        self.len = start + n;
    }
}

/// A shared, immutable passage cut, as the passage cache hands it out.
pub type SharedPassageKv = Arc<PassageKv>;

/// A tiny model shape for unit tests.
#[cfg(test)]
pub(crate) fn test_config(neox: bool) -> ModelConfig {
    ModelConfig {
        architecture: "test".into(),
        n_layer: 2,
        n_head: 2,
        n_kv_head: 2,
        head_dim: 8,
        embedding_length: 16,
        context_length: 256,
        rms_norm_eps: 1e-6,
        rope_freq_base: 10_000.0,
        rope_neox: neox,
        vocab_size: 10,
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// Keys for `positions`, rotated the way the model rotates them.
    fn rotated(keys: &[f32], position: usize, config: &ModelConfig) -> Vec<f32> {
        let d = config.head_dim;
        let angles: Vec<f32> = (0..d / 2)
            .map(|i| position as f32 / config.rope_freq_base.powf((2 * i) as f32 / d as f32))
            .collect();
        let cos = Tensor::new(angles.iter().map(|a| a.cos()).collect::<Vec<_>>(), &Device::Cpu)
            .unwrap()
            .reshape((1, d / 2))
            .unwrap();
        let sin = Tensor::new(angles.iter().map(|a| a.sin()).collect::<Vec<_>>(), &Device::Cpu)
            .unwrap()
            .reshape((1, d / 2))
            .unwrap();
        let x = Tensor::new(keys, &Device::Cpu).unwrap().reshape((1, 1, 1, d)).unwrap();
        let y = if config.rope_neox {
            candle_nn::rotary_emb::rope(&x, &cos, &sin).unwrap()
        } else {
            candle_nn::rotary_emb::rope_i(&x, &cos, &sin).unwrap()
        };
        y.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn shifting_rotated_keys_equals_rotating_them_at_the_new_position() {
        let keys: Vec<f32> = (0..8).map(|i| (i as f32 * 0.37).sin() + 0.1 * i as f32).collect();
        for neox in [false, true] {
            let config = test_config(neox);
            let shift = RopeShift::new(&config);
            for (from, to) in [(3usize, 40usize), (90, 12), (7, 7)] {
                let mut moved = rotated(&keys, from, &config);
                shift.apply(&mut moved, to as i64 - from as i64);
                let direct = rotated(&keys, to, &config);
                for (a, b) in moved.iter().zip(&direct) {
                    assert!((a - b).abs() < 1e-4, "neox {neox}, {from}->{to}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn a_cut_appended_at_its_own_position_is_an_exact_copy() {
        let config = test_config(true);
        let shift = RopeShift::new(&config);
        let mut cache = KvCache::new(&config);
        cache.reserve(10);
        for layer in 0..config.n_layer {
            let k: Vec<f32> = (0..2 * 10 * 8).map(|i| (i * (layer + 1)) as f32).collect();
            let v: Vec<f32> = k.iter().map(|x| -x).collect();
            cache.write(layer, &k, &v, 10);
        }
        cache.len = 10;
        let cut = cache.cut(4, 3);
        assert_eq!((cut.len(), cut.computed_at()), (3, 4));

        let mut other = cache.clone();
        other.truncate(4);
        other.append_moved(&cut, &shift);
        assert_eq!(other.len(), 7);
        for layer in 0..config.n_layer {
            let (a, b) = (&cache.layers[layer], &other.layers[layer]);
            for head in 0..2 {
                let range = |c: &KvCache| (head * c.capacity) * 8..(head * c.capacity + 7) * 8;
                assert_eq!(a.keys[range(&cache)], b.keys[range(&other)]);
                assert_eq!(a.values[range(&cache)], b.values[range(&other)]);
            }
        }
    }
}
