//! Activations quantized to int8 blocks, once per matrix input.

use half::f16;

use crate::blocks::{ActBlock, ActBlockK, QK, QK_K};

/// How a matrix wants its input quantized: the 32-value formats take int8
/// blocks of 32 with an f16-precision scale each (GGUF's Q8_0); the
/// k-quants take blocks of 256 with an f32 scale and a sum per 16 values
/// (llama.cpp's Q8_K), so that a whole weight block of 256 is summed in
/// integers and scaled once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationLayout {
    Blocks32,
    Blocks256,
}

impl ActivationLayout {
    /// Values per activation block.
    pub fn block_values(self) -> usize {
        match self {
            ActivationLayout::Blocks32 => QK,
            ActivationLayout::Blocks256 => QK_K,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Quantized {
    Blocks32(Vec<ActBlock>),
    Blocks256(Vec<ActBlockK>),
}

/// A `tokens × cols` matrix of activations as int8 blocks, each with its
/// own scale. Several weight matrices that read the same input (the query,
/// key and value projections; the gate and up projections) share one.
#[derive(Debug, Clone)]
pub struct Activations {
    tokens: usize,
    cols: usize,
    quantized: Quantized,
}

impl Activations {
    /// Quantizes `input` (`tokens` rows of `cols` values, row-major). `cols`
    /// must be a multiple of the layout's block; the caller checks that
    /// against the weights.
    pub fn quantize(
        input: &[f32],
        tokens: usize,
        cols: usize,
        layout: ActivationLayout,
    ) -> Activations {
        let block = layout.block_values();
        assert_eq!(input.len(), tokens * cols, "activations: {tokens} × {cols} values expected");
        assert!(cols.is_multiple_of(block), "activations: {cols} columns are not whole blocks");
        let quantized = match layout {
            ActivationLayout::Blocks32 => {
                Quantized::Blocks32(input.chunks_exact(QK).map(quantize_block).collect())
            }
            ActivationLayout::Blocks256 => {
                Quantized::Blocks256(input.chunks_exact(QK_K).map(quantize_block_k).collect())
            }
        };
        Activations { tokens, cols, quantized }
    }

    pub fn tokens(&self) -> usize {
        self.tokens
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn layout(&self) -> ActivationLayout {
        match self.quantized {
            Quantized::Blocks32(_) => ActivationLayout::Blocks32,
            Quantized::Blocks256(_) => ActivationLayout::Blocks256,
        }
    }

    pub(crate) fn quantized(&self) -> &Quantized {
        &self.quantized
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

/// llama.cpp's Q8_K rounding: the value of largest magnitude becomes -127
/// (the scale takes its sign), the others round half to even; the scale
/// stays f32. Every value is within -127..=127, so negating one never
/// overflows a byte (the AVX2 kernels rely on that).
fn quantize_block_k(values: &[f32]) -> ActBlockK {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in values {
        if v.abs() > amax {
            (amax, max) = (v.abs(), v);
        }
    }
    let mut block = ActBlockK { d: 0.0, qs: [0; QK_K], bsums: [0; QK_K / 16] };
    if amax == 0.0 {
        return block;
    }
    let inverse = -127.0 / max;
    for (q, &v) in block.qs.iter_mut().zip(values) {
        *q = ((inverse * v).round_ties_even() as i32).clamp(-127, 127) as i8;
    }
    for (sum, qs) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
        *sum = qs.iter().map(|&q| i16::from(q)).sum();
    }
    block.d = 1.0 / inverse;
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_value_becomes_127_and_zeros_stay_zero() {
        let mut row = vec![0.0f32; 64];
        row[3] = -2.0;
        row[7] = 1.0;
        let a = Activations::quantize(&row, 1, 64, ActivationLayout::Blocks32);
        let Quantized::Blocks32(blocks) = a.quantized() else { panic!("32-value blocks") };
        assert_eq!(blocks[0].qs[3], -127);
        assert_eq!(blocks[0].qs[7], 64);
        assert_eq!(blocks[1].qs, [0; QK]);
        assert_eq!(blocks[1].d, 0.0);
    }

    #[test]
    fn a_block_of_256_keeps_the_sign_in_its_scale_and_sums_every_16() {
        let mut row = vec![0.0f32; 512];
        row[3] = 2.0;
        row[20] = -1.0;
        let a = Activations::quantize(&row, 1, 512, ActivationLayout::Blocks256);
        let Quantized::Blocks256(blocks) = a.quantized() else { panic!("256-value blocks") };
        assert_eq!((blocks[0].qs[3], blocks[0].qs[20]), (-127, 64));
        assert_eq!(blocks[0].d, 2.0 / -127.0);
        assert_eq!(blocks[0].bsums[..2], [-127, 64]);
        assert_eq!((blocks[1].d, blocks[1].bsums), (0.0, [0; 16]));
    }
}
