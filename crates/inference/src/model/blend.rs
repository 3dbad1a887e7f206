//! Recomputing part of a moved passage, after CacheBlend (Yao et al., 2024).
//!
//! A passage computed after the prompt's opening alone and moved next to
//! other passages never attended to them. Recomputing all of it is a
//! prefill; recomputing none leaves all of it blind to them. In between:
//! the first two layers are recomputed for the whole passage (2 of its
//! 24–30 layers), the positions whose layer-1 keys and values changed most
//! are the ones the passages before it matter to, and only those go on
//! through the remaining layers, their keys and values overwriting the
//! moved ones. Layer 0's keys and values depend on the token and its
//! position alone, so layer 1 is the first to show a difference.

use candle_core::{Module, Tensor};

use super::{causal_mask, Rows, Transformer};
use crate::error::{Error, Result};
use crate::kv_cache::KvCache;

/// The layer whose changes pick the positions that go on.
const SELECTING_LAYER: usize = 1;

impl Transformer {
    /// Recomputes `percent` % of the positions `start..start + tokens.len()`
    /// of `cache` (a passage moved in there; `tokens` are its tokens) so that
    /// they attend to everything before them, as a prefill would have
    /// computed them. 100 recomputes every position through every layer.
    pub fn recompute_moved(
        &self,
        tokens: &[u32],
        start: usize,
        cache: &mut KvCache,
        percent: u8,
    ) -> Result<()> {
        let n = tokens.len();
        if n == 0 || percent == 0 {
            return Ok(());
        }
        let span = start..start + n;
        if span.end > cache.len() {
            return Err(Error::InvalidSettings(format!(
                "positions {span:?} to recompute are not all in the cache ({} held)",
                cache.len()
            )));
        }
        let keep = (n * usize::from(percent.min(100))).div_ceil(100);
        let mut rows = RowsAt::new(self, span.clone().collect(), cache.len())?;
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mut x = self.embeddings.forward(&input)?;
        for index in 0..self.layers.len() {
            let selecting = index == SELECTING_LAYER && keep < n;
            let before = selecting.then(|| cache.layer_span(index, span.clone()));
            x = self.layer(index, &x, &rows.rows(), cache)?;
            if let Some(before) = before {
                let changes = cache.changes_since(&before, index, span.clone());
                let mut most_changed: Vec<usize> = (0..n).collect();
                most_changed.sort_by(|&a, &b| changes[b].total_cmp(&changes[a]));
                most_changed.truncate(keep);
                most_changed.sort_unstable();
                let chosen: Vec<u32> = most_changed.iter().map(|&row| row as u32).collect();
                x = x.index_select(&Tensor::new(chosen, &self.device)?, 1)?;
                let positions = most_changed.iter().map(|&row| start + row).collect();
                rows = RowsAt::new(self, positions, cache.len())?;
            }
        }
        Ok(())
    }
}

/// Rows at scattered positions, with their mask and rotary tables.
struct RowsAt {
    positions: Vec<usize>,
    mask: Tensor,
    cos: Tensor,
    sin: Tensor,
}

impl RowsAt {
    fn new(model: &Transformer, positions: Vec<usize>, kv_len: usize) -> Result<Self> {
        let mask = causal_mask(positions.iter().copied(), kv_len, &model.device)?;
        let index: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
        let index = Tensor::new(index, &model.device)?;
        let (cos, sin) = (model.cos.index_select(&index, 0)?, model.sin.index_select(&index, 0)?);
        Ok(Self { positions, mask, cos, sin })
    }

    fn rows(&self) -> Rows<'_> {
        Rows { mask: Some(&self.mask), cos: &self.cos, sin: &self.sin, at: Some(&self.positions) }
    }
}
