//! Activations quantized to int8 blocks, once per matrix input.

use half::f16;

use crate::blocks::{ActBlock, QK};

/// A `tokens × cols` matrix of activations as int8 blocks of 32 values, each
/// with its own scale. Several weight matrices that read the same input (the
/// query, key and value projections; the gate and up projections) share one.
#[derive(Debug, Clone)]
pub struct Activations {
    tokens: usize,
    cols: usize,
    blocks: Vec<ActBlock>,
}

impl Activations {
    /// Quantizes `input` (`tokens` rows of `cols` values, row-major). `cols`
    /// must be a multiple of 32; the caller checks that against the weights.
    pub fn quantize(input: &[f32], tokens: usize, cols: usize) -> Activations {
        assert_eq!(input.len(), tokens * cols, "activations: {tokens} × {cols} values expected");
        assert!(cols.is_multiple_of(QK), "activations: {cols} columns are not whole blocks");
        let mut blocks = Vec::with_capacity(input.len() / QK);
        blocks.extend(input.chunks_exact(QK).map(quantize_block));
        Activations { tokens, cols, blocks }
    }

    pub fn tokens(&self) -> usize {
        self.tokens
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub(crate) fn blocks(&self) -> &[ActBlock] {
        &self.blocks
    }
}

/// GGUF's Q8_0 rounding: scale by the largest magnitude, round half away
/// from zero, keep the scale at f16 precision (the values were rounded with
/// the unrounded scale, as other engines do).
fn quantize_block(values: &[f32]) -> ActBlock {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK];
    for (q, &v) in qs.iter_mut().zip(values) {
        *q = (v * inverse).round() as i8;
    }
    let d = f16::from_f32(d).to_f32();
    let sum = d * qs.iter().map(|&q| i32::from(q)).sum::<i32>() as f32;
    ActBlock { d, sum, qs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_value_becomes_127_and_zeros_stay_zero() {
        let mut row = vec![0.0f32; 64];
        row[3] = -2.0;
        row[7] = 1.0;
        let a = Activations::quantize(&row, 1, 64);
        assert_eq!(a.blocks()[0].qs[3], -127);
        assert_eq!(a.blocks()[0].qs[7], 64);
        assert_eq!(a.blocks()[1].qs, [0; QK]);
        assert_eq!(a.blocks()[1].d, 0.0);
    }
}
