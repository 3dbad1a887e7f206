//! The k-quant weight blocks of 256 values (Q4K, Q6K), read as eight
//! sub-blocks of 32.
//!
//! Their products take activations in blocks of 256 with one f32 scale
//! (llama.cpp's Q8_K idea): a sub-block's scale is a small integer, so a
//! whole block is summed in exact integers and scaled by one float
//! multiply-add, where a scale per 32 activations would need eight.

use crate::blocks::{scale, ActBlockK, QK, QK_K};

/// A k-quant block as integers: weight `i` of sub-block `j` is
/// `d * scales[j][i / 16] * values(j)[i] - dmin * mins[j]`. The scalar
/// kernels read blocks through this trait; the SIMD kernels unpack the same
/// bits with vector instructions and are tested against it.
pub(crate) trait KBlock: Copy + Send + Sync + 'static {
    /// Whether the values are signed (else 0..=15) and so need the sign
    /// trick to be multiplied as unsigned bytes.
    const SIGNED: bool;
    /// Whether sub-blocks have a minimum subtracted.
    const HAS_MINS: bool;
    /// Whether a sub-block's two halves have their own scales.
    const SPLIT_SCALES: bool;
    fn d(&self) -> f32;
    fn dmin(&self) -> f32 {
        0.0
    }
    /// Every sub-block's integer scales (for its values 0..16 and 16..32)
    /// and minimum, unpacked once per block.
    fn scales_and_mins(&self) -> SubScales;
    /// Sub-block `j`'s 32 values.
    fn values(&self, j: usize) -> [i8; QK];
}

/// A block's eight sub-blocks' integer scales and minima. Scales fit i16:
/// six bits (Q4K) or a signed byte (Q6K).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SubScales {
    pub scales: [[i16; 2]; SUBS],
    pub mins: [i16; SUBS],
}

/// 32-value sub-blocks per k-quant block.
pub(crate) const SUBS: usize = QK_K / QK;

/// `Σ_j mins[j] * Σ activations of sub-block j`: the integer the block's
/// `-dmin * d_a` multiplies.
pub(crate) fn min_sum(mins: &[i16; SUBS], a: &ActBlockK) -> i32 {
    (0..SUBS)
        .map(|j| i32::from(mins[j]) * (i32::from(a.bsums[2 * j]) + i32::from(a.bsums[2 * j + 1])))
        .sum()
}

/// `d * sc_j * q - dmin * m_j` for sub-block j, q a nibble, `sc_j` and `m_j`
/// six bits packed in `scales`. Sub-blocks 2p and 2p+1 take the low and the
/// high nibbles of `qs[32p..32p + 32]`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

impl KBlock for BlockQ4K {
    const SIGNED: bool = false;
    const HAS_MINS: bool = true;
    const SPLIT_SCALES: bool = false;
    fn d(&self) -> f32 {
        scale(self.d)
    }
    fn dmin(&self) -> f32 {
        scale(self.dmin)
    }
    /// Sub-block j's scale is the low six bits of byte j (j < 4), or the
    /// low nibble of byte j+4 with the top two bits of byte j-4 above it;
    /// its minimum likewise from byte j+4, or the high nibble of byte j+4
    /// and the top bits of byte j. Unpacked four at a time in u32 words.
    fn scales_and_mins(&self) -> SubScales {
        const LOW_SIX: u32 = 0x3f3f_3f3f;
        const LOW_FOUR: u32 = 0x0f0f_0f0f;
        const LOW_TWO: u32 = 0x0303_0303;
        let word = |i: usize| u32::from_le_bytes(self.scales[4 * i..4 * i + 4].try_into().unwrap());
        let (w0, w1, w2) = (word(0), word(1), word(2));
        let scales_low = w0 & LOW_SIX;
        let scales_high = (w2 & LOW_FOUR) | (((w0 >> 6) & LOW_TWO) << 4);
        let mins_low = w1 & LOW_SIX;
        let mins_high = ((w2 >> 4) & LOW_FOUR) | (((w1 >> 6) & LOW_TWO) << 4);
        let mut out = SubScales::default();
        for k in 0..4 {
            let byte = |w: u32| i16::from((w >> (8 * k)) as u8);
            out.scales[k] = [byte(scales_low); 2];
            out.scales[k + 4] = [byte(scales_high); 2];
            out.mins[k] = byte(mins_low);
            out.mins[k + 4] = byte(mins_high);
        }
        out
    }
    fn values(&self, j: usize) -> [i8; QK] {
        let bytes = &self.qs[QK * (j / 2)..QK * (j / 2 + 1)];
        let mut v = [0i8; QK];
        for (v, &q) in v.iter_mut().zip(bytes) {
            *v = if j.is_multiple_of(2) { q & 0x0F } else { q >> 4 } as i8;
        }
        v
    }
}

/// `d * sc * (q - 32)`, q six bits (four in `ql`, two in `qh`), `sc` a
/// signed byte per 16 values. Sub-block j = 4h + k of half h takes the low
/// (k < 2) or high nibbles of `ql[64h + 32(k % 2)..][..32]` and bits 2k, 2k+1
/// of `qh[32h..][..32]`; its two halves are scaled by `scales[8h + 2k]` and
/// `scales[8h + 2k + 1]`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: [u8; 2],
}

impl KBlock for BlockQ6K {
    const SIGNED: bool = true;
    const HAS_MINS: bool = false;
    const SPLIT_SCALES: bool = true;
    fn d(&self) -> f32 {
        scale(self.d)
    }
    fn scales_and_mins(&self) -> SubScales {
        let mut out = SubScales::default();
        for (j, pair) in out.scales.iter_mut().enumerate() {
            let first = 8 * (j / 4) + 2 * (j % 4);
            *pair = [i16::from(self.scales[first]), i16::from(self.scales[first + 1])];
        }
        out
    }
    fn values(&self, j: usize) -> [i8; QK] {
        let (h, k) = (j / 4, j % 4);
        let ql = &self.ql[64 * h + 32 * (k % 2)..][..QK];
        let qh = &self.qh[32 * h..][..QK];
        let mut v = [0i8; QK];
        for (l, v) in v.iter_mut().enumerate() {
            let low = if k < 2 { ql[l] & 0x0F } else { ql[l] >> 4 };
            let high = (qh[l] >> (2 * k)) & 3;
            *v = (low | (high << 4)) as i8 - 32;
        }
        v
    }
}
