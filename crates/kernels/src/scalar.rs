//! The portable kernels, and the definition of what every kernel computes.
//!
//! A dot product of a weight row with an activation row keeps eight float
//! lanes. For each block, lane `l` takes the integer sum of the products of
//! values `4l..4l+4` (exact in i32), converted to f32 and added with one
//! fused multiply-add by the block's scale product `d_w * d_a`. The eight
//! lanes are then summed pairwise as `((l4+l0)+(l6+l2)) + ((l5+l1)+(l7+l3))`.
//! That is the order of an AVX2 register, so the AVX2 kernels compute the
//! same bits as this code, and it is the order tests pin everything to.

use crate::blocks::{ActBlock, Block32, QK};

pub(crate) const LANES: usize = 8;

/// The lane sums reduced in the AVX2 order (see the module header).
pub(crate) fn sum_lanes(l: &[f32; LANES]) -> f32 {
    ((l[4] + l[0]) + (l[6] + l[2])) + ((l[5] + l[1]) + (l[7] + l[3]))
}

/// One block's products added to the eight lanes.
#[inline]
pub(crate) fn accumulate_block(lanes: &mut [f32; LANES], d: f32, w: &[i8; QK], a: &[i8; QK]) {
    for (lane, (w, a)) in lanes.iter_mut().zip(w.chunks_exact(4).zip(a.chunks_exact(4))) {
        let sum: i32 = w.iter().zip(a).map(|(&w, &a)| i32::from(w) * i32::from(a)).sum();
        *lane = d.mul_add(sum as f32, *lane);
    }
}

/// `weights` row · `acts` row, both `blocks` long. A format's offsets
/// (`m * d_a * Σ a` per block) are summed block by block with an FMA each and
/// added after the lanes.
pub(crate) fn dot<B: Block32>(weights: &[B], acts: &[ActBlock]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut offsets = 0f32;
    for (w, a) in weights.iter().zip(acts) {
        accumulate_block(&mut lanes, w.scale() * a.d, &w.values(), &a.qs);
        if B::HAS_OFFSET {
            offsets = w.offset().mul_add(a.sum, offsets);
        }
    }
    sum_lanes(&lanes) + offsets
}
