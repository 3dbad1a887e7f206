//! GGUF weight block layouts, read from a file's bytes, and the int8 block
//! the activations are quantized to.
//!
//! Every weight block here has alignment 1 (scales kept as raw `f16` bytes),
//! so blocks are built from bytes in safe code and SIMD loads are unaligned.

use half::f16;

use crate::quantize::ActivationLayout;

/// Values per block of the 32-value formats, and per activation block.
pub(crate) const QK: usize = 32;
/// Values per block of the k-quant formats, and per activation block of
/// the matrices in those formats.
pub(crate) const QK_K: usize = 256;

/// The weight formats these kernels compute with. Others stay with candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Q4_0,
    Q4_1,
    Q5_0,
    Q8_0,
    Q4K,
    Q6K,
}

impl Format {
    /// Values per block.
    pub fn block_values(self) -> usize {
        match self {
            Format::Q4K | Format::Q6K => QK_K,
            _ => QK,
        }
    }

    /// How this format's matrices want their input quantized.
    pub fn activation_layout(self) -> ActivationLayout {
        match self {
            Format::Q4K | Format::Q6K => ActivationLayout::Blocks256,
            _ => ActivationLayout::Blocks32,
        }
    }

    /// Bytes per block in a GGUF file.
    pub fn block_bytes(self) -> usize {
        match self {
            Format::Q4_0 => 18,
            Format::Q4_1 => 20,
            Format::Q5_0 => 22,
            Format::Q8_0 => 34,
            Format::Q4K => 144,
            Format::Q6K => 210,
        }
    }
}

/// The 32 nibbles of a Q4_0, Q4_1 or Q5_0 block in value order: the low
/// nibbles are values 0..16, the high ones 16..32.
fn nibbles(qs: &[u8; QK / 2]) -> [u8; QK] {
    let mut v = [0u8; QK];
    for (j, &q) in qs.iter().enumerate() {
        v[j] = q & 0x0F;
        v[j + QK / 2] = q >> 4;
    }
    v
}

pub(crate) fn scale(bytes: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(bytes)).to_f32()
}

/// A weight block of 32 values (one per activation block), with its scale
/// and its values as signed integers. The scalar kernels read blocks
/// through this trait; the SIMD kernels unpack the same bits with vector
/// instructions and are tested against it.
pub(crate) trait WeightBlock: Copy + Send + Sync + 'static {
    /// Formats with an offset (Q4_1) add `offset * Σ activations` per
    /// block, summed apart from the lanes.
    const HAS_OFFSET: bool = false;
    fn scale(&self) -> f32;
    /// The values, `value * scale + offset` being the weight.
    fn values(&self) -> [i8; QK];
    fn offset(&self) -> f32 {
        0.0
    }
}

/// `d * q`, q in -128..=127.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [i8; QK],
}

impl WeightBlock for BlockQ8_0 {
    fn scale(&self) -> f32 {
        scale(self.d)
    }
    fn values(&self) -> [i8; QK] {
        self.qs
    }
}

/// `d * (q - 8)`, q a nibble: values 0..16 in the low nibbles, 16..32 in
/// the high ones.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; QK / 2],
}

impl WeightBlock for BlockQ4_0 {
    fn scale(&self) -> f32 {
        scale(self.d)
    }
    fn values(&self) -> [i8; QK] {
        nibbles(&self.qs).map(|q| q as i8 - 8)
    }
}

/// `d * q + m`, q a nibble laid out as in Q4_0.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; QK / 2],
}

impl WeightBlock for BlockQ4_1 {
    const HAS_OFFSET: bool = true;
    fn scale(&self) -> f32 {
        scale(self.d)
    }
    fn offset(&self) -> f32 {
        scale(self.m)
    }
    fn values(&self) -> [i8; QK] {
        nibbles(&self.qs).map(|q| q as i8)
    }
}

/// `d * (q - 16)`, q five bits: the nibbles as in Q4_0, the fifth bit of
/// value j in bit j of `qh`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

impl WeightBlock for BlockQ5_0 {
    fn scale(&self) -> f32 {
        scale(self.d)
    }
    fn values(&self) -> [i8; QK] {
        let qh = u32::from_le_bytes(self.qh);
        let mut v = nibbles(&self.qs).map(|q| q as i8);
        for (j, v) in v.iter_mut().enumerate() {
            *v = (*v | ((((qh >> j) & 1) << 4) as i8)) - 16;
        }
        v
    }
}

/// One block of a quantized activation row: `d * q`. `d` is kept as the f32
/// value of an f16 (the precision GGUF's Q8_0 stores), so that a dot product
/// computes exactly what a Q8_0 × Q8_0 product in another engine computes.
/// `sum` is `d * Σ q`, for the formats with an offset.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct ActBlock {
    pub d: f32,
    pub sum: f32,
    pub qs: [i8; QK],
}

/// One block of 256 activations for the k-quant matrices: `d * q`, `d` in
/// f32, with `bsums[i]` the sum of values `16i..16i+16` (for the formats
/// with a minimum per sub-block).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct ActBlockK {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}
