//! The k-quant weight blocks of 256 values (Q4K, Q6K), read as eight
//! sub-blocks of 32, one per activation block.
//!
//! Activations stay in blocks of 32 with a scale each (not llama.cpp's one
//! scale per 256), so every format shares one activation layout and one
//! tile loop; a sub-block's scale is the product of the block's f16 scale
//! and its small integer scale, exact in f32.

use crate::blocks::{scale, Format, WeightBlock, QK, QK_K};

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

impl BlockQ4K {
    /// Sub-block j's six-bit scale and minimum.
    pub(crate) fn scale_and_min(&self, j: usize) -> (u8, u8) {
        let s = &self.scales;
        if j < 4 {
            (s[j] & 63, s[j + 4] & 63)
        } else {
            ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
        }
    }

    /// The scale and the offset of sub-block j from the block's f32 scales.
    pub(crate) fn sub_scales(&self, j: usize, d: f32, dmin: f32) -> (f32, f32) {
        let (sc, m) = self.scale_and_min(j);
        (d * f32::from(sc), -(dmin * f32::from(m)))
    }
}

impl WeightBlock for BlockQ4K {
    const FORMAT: Format = Format::Q4K;
    const SUBS: usize = QK_K / QK;
    const HAS_OFFSET: bool = true;
    fn scales(&self, j: usize) -> [f32; 2] {
        [self.sub_scales(j, scale(self.d), scale(self.dmin)).0; 2]
    }
    fn offset(&self, j: usize) -> f32 {
        self.sub_scales(j, scale(self.d), scale(self.dmin)).1
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

impl BlockQ6K {
    pub(crate) fn sub_scales(&self, j: usize, d: f32) -> [f32; 2] {
        let (h, k) = (j / 4, j % 4);
        let first = 8 * h + 2 * k;
        [d * f32::from(self.scales[first]), d * f32::from(self.scales[first + 1])]
    }
}

impl WeightBlock for BlockQ6K {
    const FORMAT: Format = Format::Q6K;
    const SUBS: usize = QK_K / QK;
    const HALF_SCALES: bool = true;
    fn scales(&self, j: usize) -> [f32; 2] {
        self.sub_scales(j, scale(self.d))
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
