//! The portable kernels, and the definition of what every kernel computes.
//!
//! A dot product of a weight row with an activation row keeps eight float
//! lanes. For each block, lane `l` takes the integer sum of the products of
//! values `4l..4l+4` (exact in i32), converted to f32 and added with one
//! fused multiply-add by the block's scale product `d_w * d_a`. The eight
//! lanes are then summed pairwise as `((l4+l0)+(l6+l2)) + ((l5+l1)+(l7+l3))`.
//! That is the order of an AVX2 register, so the AVX2 kernels compute the
//! same bits as this code, and it is the order tests pin everything to.
//!
//! The k-quants' products ([`dot_k`]) differ only inside a block of 256:
//! lane `l` sums, in exact i32, each sub-block's products of values
//! `4l..4l+4` times that sub-block's integer scale, and the block adds the
//! lanes with one fused multiply-add by `d_w * d_a`.

use crate::blocks::{ActBlock, ActBlockK, WeightBlock, QK};
use crate::kquants::{min_sum, KBlock, SUBS};

pub(crate) const LANES: usize = 8;

/// The lane sums reduced in the AVX2 order (see the module header).
pub(crate) fn sum_lanes(l: &[f32; LANES]) -> f32 {
    ((l[4] + l[0]) + (l[6] + l[2])) + ((l[5] + l[1]) + (l[7] + l[3]))
}

/// `weights` row · `acts` row. A format's offsets (`m * d_a * Σ a` per
/// block) are summed one FMA per block and added after the lanes.
pub(crate) fn dot<B: WeightBlock>(weights: &[B], acts: &[ActBlock]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut offsets = 0f32;
    for (w, a) in weights.iter().zip(acts) {
        let d = w.scale() * a.d;
        let values = w.values();
        for (lane, (w, a)) in lanes.iter_mut().zip(values.chunks_exact(4).zip(a.qs.chunks_exact(4)))
        {
            let sum: i32 = w.iter().zip(a).map(|(&w, &a)| i32::from(w) * i32::from(a)).sum();
            *lane = d.mul_add(sum as f32, *lane);
        }
        if B::HAS_OFFSET {
            offsets = w.offset().mul_add(a.sum, offsets);
        }
    }
    sum_lanes(&lanes) + offsets
}

/// `weights` row · `acts` row for the k-quants (see the module header); the
/// minima (`-dmin * d_a * Σ min_j Σ a`) are summed one FMA per block and
/// added after the lanes.
pub(crate) fn dot_k<B: KBlock>(weights: &[B], acts: &[ActBlockK]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut offsets = 0f32;
    for (w, a) in weights.iter().zip(acts) {
        let sub = w.scales_and_mins();
        let mut sums = [0i32; LANES];
        for j in 0..SUBS {
            let values = w.values(j);
            let a = &a.qs[QK * j..][..QK];
            for (l, sum) in sums.iter_mut().enumerate() {
                let quad = (4 * l..4 * l + 4).map(|i| i32::from(values[i]) * i32::from(a[i]));
                *sum += i32::from(sub.scales[j][l / 4]) * quad.sum::<i32>();
            }
        }
        let d = a.d * w.d();
        for (lane, &sum) in lanes.iter_mut().zip(&sums) {
            *lane = d.mul_add(sum as f32, *lane);
        }
        if B::HAS_MINS {
            offsets = (-(a.d * w.dmin())).mul_add(min_sum(&sub.mins, a) as f32, offsets);
        }
    }
    sum_lanes(&lanes) + offsets
}
