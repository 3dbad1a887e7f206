//! The portable kernels, and the definition of what every kernel computes.
//!
//! A dot product of a weight row with an activation row keeps eight float
//! lanes. For each block, lane `l` takes the integer sum of the products of
//! values `4l..4l+4` (exact in i32), converted to f32 and added with one
//! fused multiply-add by the block's scale product `d_w * d_a`. The eight
//! lanes are then summed pairwise as `((l4+l0)+(l6+l2)) + ((l5+l1)+(l7+l3))`.
//! That is the order of an AVX2 register, so the AVX2 kernels compute the
//! same bits as this code, and it is the order tests pin everything to.

use crate::blocks::{ActBlock, WeightBlock, QK};

pub(crate) const LANES: usize = 8;

/// The lane sums reduced in the AVX2 order (see the module header).
pub(crate) fn sum_lanes(l: &[f32; LANES]) -> f32 {
    ((l[4] + l[0]) + (l[6] + l[2])) + ((l[5] + l[1]) + (l[7] + l[3]))
}

/// One block's products added to the eight lanes: lanes 0..4 (values
/// 0..16) scaled by `d[0]`, lanes 4..8 by `d[1]`.
#[inline]
pub(crate) fn accumulate_block(lanes: &mut [f32; LANES], d: [f32; 2], w: &[i8; QK], a: &[i8; QK]) {
    for (l, (lane, (w, a))) in
        lanes.iter_mut().zip(w.chunks_exact(4).zip(a.chunks_exact(4))).enumerate()
    {
        let sum: i32 = w.iter().zip(a).map(|(&w, &a)| i32::from(w) * i32::from(a)).sum();
        *lane = d[l / 4].mul_add(sum as f32, *lane);
    }
}

/// `weights` row · `acts` row (`acts.len()` activation blocks). A format's
/// offsets (`m * d_a * Σ a` per sub-block) are summed one FMA per sub-block
/// and added after the lanes.
pub(crate) fn dot<B: WeightBlock>(weights: &[B], acts: &[ActBlock]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut offsets = 0f32;
    for (b, a) in acts.iter().enumerate() {
        let (w, j) = (&weights[b / B::SUBS], b % B::SUBS);
        let [low, high] = w.scales(j);
        accumulate_block(&mut lanes, [low * a.d, high * a.d], &w.values(j), &a.qs);
        if B::HAS_OFFSET {
            offsets = w.offset(j).mul_add(a.sum, offsets);
        }
    }
    sum_lanes(&lanes) + offsets
}
