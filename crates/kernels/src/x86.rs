//! AVX2 kernels. Reached only through [`crate::KernelSet::Avx2`], which is
//! chosen only when the CPU reports AVX2, FMA and F16C.
//!
//! They compute exactly the lanes of [`crate::scalar`]: per block, the
//! signed bytes of weights and activations are multiplied in pairs
//! (`maddubs` on |w| and sign-adjusted a, exact because |w| ≤ 128 and
//! |a| ≤ 127), the pairs summed into eight i32 lanes of four values each,
//! converted and added with one FMA by the block's scale product.

use std::arch::x86_64::*;

use crate::blocks::{
    ActBlock, ActBlockK, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, WeightBlock, QK,
};
use crate::kquants::{BlockQ4K, BlockQ6K, KBlock, SubScales, SUBS};

/// A 32-value weight block the AVX2 kernels can unpack.
pub(crate) trait Avx2Block: WeightBlock {
    /// [`WeightBlock::scale`] and [`WeightBlock::offset`], the f16 scales
    /// converted with F16C.
    ///
    /// # Safety
    /// The CPU must support F16C.
    unsafe fn unpack_scales(&self) -> (f32, f32);

    /// The 32 values as signed bytes, in order.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    unsafe fn load(&self) -> __m256i;
}

/// The scales of the formats with one f16 scale and no offset.
macro_rules! one_scale {
    () => {
        #[inline]
        #[target_feature(enable = "f16c")]
        unsafe fn unpack_scales(&self) -> (f32, f32) {
            (f16_to_f32(u16::from_le_bytes(self.d)), 0.0)
        }
    };
}

impl Avx2Block for BlockQ8_0 {
    one_scale!();

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(&self) -> __m256i {
        // SAFETY: `qs` is 32 bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(self.qs.as_ptr().cast()) }
    }
}

/// Values 0..16 from the low nibbles, 16..32 from the high ones.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
    // SAFETY: `qs` is 16 bytes; the load is unaligned.
    let low = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let high = _mm_srli_epi16::<4>(low);
    let both = _mm256_insertf128_si256::<1>(_mm256_castsi128_si256(low), high);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

impl Avx2Block for BlockQ4_0 {
    one_scale!();

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(&self) -> __m256i {
        // SAFETY: the caller has checked AVX2.
        let q = unsafe { nibbles(&self.qs) };
        _mm256_sub_epi8(q, _mm256_set1_epi8(8))
    }
}

impl Avx2Block for BlockQ4_1 {
    #[inline]
    #[target_feature(enable = "f16c")]
    unsafe fn unpack_scales(&self) -> (f32, f32) {
        (f16_to_f32(u16::from_le_bytes(self.d)), f16_to_f32(u16::from_le_bytes(self.m)))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(&self) -> __m256i {
        // SAFETY: the caller has checked AVX2.
        unsafe { nibbles(&self.qs) }
    }
}

impl Avx2Block for BlockQ5_0 {
    one_scale!();

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(&self) -> __m256i {
        // SAFETY: the caller has checked AVX2.
        let q = unsafe { nibbles(&self.qs) };
        // Byte j of the register gets bit j of `qh`: spread each of its four
        // bytes over eight bytes, then keep bit j%8 of byte j.
        let qh = i32::from_le_bytes(self.qh);
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(qh),
            _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            ),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let has_fifth_bit = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        // q - 16 is q | 0xF0 (as i8) without the fifth bit and q with it.
        let minus_sixteen = _mm256_andnot_si256(has_fifth_bit, _mm256_set1_epi8(0xF0u8 as i8));
        _mm256_or_si256(q, minus_sixteen)
    }
}

/// A k-quant block the AVX2 kernels can unpack.
pub(crate) trait Avx2KBlock: KBlock {
    /// Sub-block `j`'s 32 values as bytes, in order: unsigned unless
    /// [`KBlock::SIGNED`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    unsafe fn load(&self, j: usize) -> __m256i;
}

impl Avx2KBlock for BlockQ4K {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(&self, j: usize) -> __m256i {
        let bytes = &self.qs[32 * (j / 2)..32 * (j / 2 + 1)];
        // SAFETY: `bytes` is 32 bytes; the load is unaligned.
        let q = unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) };
        let q = if j.is_multiple_of(2) { q } else { _mm256_srli_epi16::<4>(q) };
        _mm256_and_si256(q, _mm256_set1_epi8(0x0F))
    }
}

impl Avx2KBlock for BlockQ6K {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(&self, j: usize) -> __m256i {
        let (h, k) = (j / 4, j % 4);
        let ql = &self.ql[64 * h + 32 * (k % 2)..][..32];
        let qh = &self.qh[32 * h..][..32];
        // SAFETY: both slices are 32 bytes; the loads are unaligned.
        let (ql, qh) = unsafe {
            (_mm256_loadu_si256(ql.as_ptr().cast()), _mm256_loadu_si256(qh.as_ptr().cast()))
        };
        let low_mask = _mm256_set1_epi8(0x0F);
        let low = if k < 2 { ql } else { _mm256_srli_epi16::<4>(ql) };
        let low = _mm256_and_si256(low, low_mask);
        // Bits 2k and 2k+1 of each qh byte, moved to bits 4 and 5. Shifting
        // 16-bit lanes pulls bits across bytes; the mask drops them.
        let shift = _mm_cvtsi32_si128(2 * k as i32);
        let high = _mm256_and_si256(_mm256_srl_epi16(qh, shift), _mm256_set1_epi8(3));
        let high = _mm256_slli_epi16::<4>(high);
        _mm256_sub_epi8(_mm256_or_si256(low, high), _mm256_set1_epi8(32))
    }
}

#[inline]
#[target_feature(enable = "f16c")]
fn f16_to_f32(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

#[inline]
#[target_feature(enable = "avx2")]
fn sum_lanes(x: __m256) -> f32 {
    let high = _mm256_extractf128_ps::<1>(x);
    let sum = _mm_add_ps(high, _mm256_castps256_ps128(x));
    let sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    let sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
    _mm_cvtss_f32(sum)
}

/// A tile's outputs: each accumulator's lanes summed in the fixed order,
/// plus its offsets.
#[inline]
#[target_feature(enable = "avx2")]
fn write_tile<const R: usize, const T: usize>(
    acc: &[[__m256; T]; R],
    offsets: &[[f32; T]; R],
    out: &mut [f32],
) {
    for r in 0..R {
        for t in 0..T {
            out[r * T + t] = sum_lanes(acc[r][t]) + offsets[r][t];
        }
    }
}

/// Dot products of `R` weight rows with `T` activation rows, `blocks`
/// activation blocks long: `out[r * T + t]`. Weight rows start `w_stride`
/// weight blocks apart, activation rows `a_stride` activation blocks apart.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile<B: Avx2Block, const R: usize, const T: usize>(
    weights: &[B],
    w_stride: usize,
    acts: &[ActBlock],
    a_stride: usize,
    blocks: usize,
    out: &mut [f32],
) {
    assert!(R > 0 && T > 0 && out.len() >= R * T);
    assert!((R - 1) * w_stride + blocks <= weights.len());
    assert!((T - 1) * a_stride + blocks <= acts.len());
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    let mut offsets = [[0f32; T]; R];
    for b in 0..blocks {
        let mut scales = [(0f32, 0f32); R];
        let mut magnitudes = [_mm256_setzero_si256(); R];
        let mut signs = [_mm256_setzero_si256(); R];
        for r in 0..R {
            let w = &weights[r * w_stride + b];
            // SAFETY: this function's callers have checked AVX2 and F16C.
            let values = unsafe {
                scales[r] = w.unpack_scales();
                w.load()
            };
            magnitudes[r] = _mm256_sign_epi8(values, values);
            signs[r] = values;
        }
        for t in 0..T {
            let a = &acts[t * a_stride + b];
            // SAFETY: `qs` is 32 bytes; the load is unaligned.
            let values = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
            for r in 0..R {
                let signed = _mm256_sign_epi8(values, signs[r]);
                let pairs = _mm256_maddubs_epi16(magnitudes[r], signed);
                let quads = _mm256_cvtepi32_ps(_mm256_madd_epi16(ones, pairs));
                let (scale, offset) = scales[r];
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(scale * a.d), quads, acc[r][t]);
                if B::HAS_OFFSET {
                    offsets[r][t] = offset.mul_add(a.sum, offsets[r][t]);
                }
            }
        }
    }
    write_tile(&acc, &offsets, out);
}

/// [`tile`] for the k-quants with activations in blocks of 256: each
/// sub-block's products are scaled by its integer scale (`madd`) and summed
/// in i32 lanes over the whole block, which is then added with one FMA, as
/// [`crate::scalar::dot_k`] does.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile_k<B: Avx2KBlock, const R: usize, const T: usize>(
    weights: &[B],
    w_stride: usize,
    acts: &[ActBlockK],
    a_stride: usize,
    blocks: usize,
    out: &mut [f32],
) {
    assert!(R > 0 && T > 0 && out.len() >= R * T);
    assert!((R - 1) * w_stride + blocks <= weights.len());
    assert!((T - 1) * a_stride + blocks <= acts.len());
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    let mut offsets = [[0f32; T]; R];
    for b in 0..blocks {
        let mut sub = [SubScales::default(); R];
        for r in 0..R {
            sub[r] = weights[r * w_stride + b].scales_and_mins();
        }
        let mut sums = [[_mm256_setzero_si256(); T]; R];
        for j in 0..SUBS {
            let mut values = [_mm256_setzero_si256(); R];
            let mut magnitudes = [_mm256_setzero_si256(); R];
            let mut scales = [_mm256_setzero_si256(); R];
            for r in 0..R {
                // SAFETY: this function's callers have checked AVX2.
                values[r] = unsafe { weights[r * w_stride + b].load(j) };
                magnitudes[r] =
                    if B::SIGNED { _mm256_sign_epi8(values[r], values[r]) } else { values[r] };
                let [low, high] = sub[r].scales[j];
                scales[r] = if B::SPLIT_SCALES {
                    _mm256_set_m128i(_mm_set1_epi16(high), _mm_set1_epi16(low))
                } else {
                    _mm256_set1_epi16(low)
                };
            }
            for t in 0..T {
                let qs = &acts[t * a_stride + b].qs[QK * j..][..QK];
                // SAFETY: `qs` is 32 bytes; the load is unaligned.
                let a = unsafe { _mm256_loadu_si256(qs.as_ptr().cast()) };
                for r in 0..R {
                    // Exact: |a| ≤ 127 (never -128, so negating it is
                    // safe), values ≤ 63 in magnitude, so a pair's sum
                    // stays far from i16 saturation.
                    let a = if B::SIGNED { _mm256_sign_epi8(a, values[r]) } else { a };
                    let pairs = _mm256_maddubs_epi16(magnitudes[r], a);
                    sums[r][t] = _mm256_add_epi32(sums[r][t], _mm256_madd_epi16(pairs, scales[r]));
                }
            }
        }
        for r in 0..R {
            let w = &weights[r * w_stride + b];
            let (d, dmin) = (w.d(), w.dmin());
            for t in 0..T {
                let a = &acts[t * a_stride + b];
                let scale = _mm256_set1_ps(a.d * d);
                acc[r][t] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums[r][t]), acc[r][t]);
                if B::HAS_MINS {
                    // SAFETY: this function's callers have checked AVX2.
                    let mins = unsafe { min_sum(&sub[r].mins, a) } as f32;
                    offsets[r][t] = (-(a.d * dmin)).mul_add(mins, offsets[r][t]);
                }
            }
        }
    }
    write_tile(&acc, &offsets, out);
}

/// [`crate::kquants::min_sum`] with vector instructions: the same exact
/// integer.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn min_sum(mins: &[i16; SUBS], a: &ActBlockK) -> i32 {
    // SAFETY: `mins` is 8 i16 and `bsums` 16; the loads are unaligned.
    let (mins, low, high) = unsafe {
        (
            _mm_loadu_si128(mins.as_ptr().cast()),
            _mm_loadu_si128(a.bsums.as_ptr().cast()),
            _mm_loadu_si128(a.bsums[8..].as_ptr().cast()),
        )
    };
    // Each sub-block's two sums of 16 (at most 2 × 16 × 127, no overflow).
    let per_sub_block = _mm_hadd_epi16(low, high);
    let products = _mm_madd_epi16(mins, per_sub_block);
    let pairs = _mm_add_epi32(products, _mm_unpackhi_epi64(products, products));
    _mm_cvtsi128_si32(_mm_add_epi32(pairs, _mm_shuffle_epi32::<0b01>(pairs)))
}
