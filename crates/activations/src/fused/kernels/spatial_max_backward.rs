//! The backward of the spatial max (`spatial_max.rs`): the input gradient and the parameters'
//! gradient in two passes over each plane, the first summing the condition's share of the
//! output gradient per channel (from the dense plane, or from codes a fused caller kept at the
//! only positions where it can be non-zero), the second splitting it and running the
//! convolution's transpose and weight sums. Reductions in the fixed order of `block_sums.rs`.

use super::block_sums::{block_sum, dot, sum};
use super::depthwise3x3::with_scratch;
use super::loops::{Isa, Plain, assume_init, isa, simd_loop};
use super::spatial_max::{Channel, Planes, ROW, shares, unpack};

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The output gradient of the spatial max, one plane at a time: a dense tensor's planes, or
/// planes another crate's fused layer rebuilds in cache (the models' FReLU + max-pool, from
/// the pooled gradient and each window's winner), so that no dense gradient goes to memory.
pub trait PlaneGrads: Sync {
    /// Calls `f` with the gradient of plane `index` (`len` values, `width` per row).
    fn with_plane<R>(&self, index: usize, len: usize, f: impl FnOnce(&[f32]) -> R) -> R;

    /// Calls `f` with plane `index`'s gradient at its only positions that can be non-zero (the
    /// pooling's winners) and the forward's codes there (the planes `forward_each` hands its
    /// consumer with them, gathered at the same positions), when the caller kept them. The
    /// first pass of the backward then reads those instead of the dense plane (whose other
    /// positions add exact zeros to its sums). `None`, the default: the dense plane.
    fn with_kept<R>(&self, index: usize, f: impl FnOnce(&[f32], &[f32]) -> R) -> Option<R> {
        let _ = (index, f);
        None
    }
}

/// A dense gradient `[N, C, H, W]`.
impl PlaneGrads for [f32] {
    fn with_plane<R>(&self, index: usize, len: usize, f: impl FnOnce(&[f32]) -> R) -> R {
        f(&self[index * len..][..len])
    }
}

// `split_sums` from the gradient at the winners and their codes (`funnel_coded`): the
// condition's share is `g` where the code is a number, 0 where it is NaN.
simd_loop!(kept_sums, (g: &[f32], codes: &[f32], sums: &mut [f64; 2]), _plain: Plain, {
    #[allow(clippy::eq_op)] // NaN, the one value unequal to itself, marks x's wins
    let condition_wins = |code: f32| code == code;
    sums[0] = block_sum(g, codes, |g, code| if condition_wins(code) { g } else { 0.0 });
    sums[1] = block_sum(g, codes, |g, code| if condition_wins(code) { g * code } else { 0.0 });
});

// One plane's `[Σ condition's share of g, Σ condition's share·x̂]` (the normalisation's backward
// needs both per channel), by way of the scratch planes `normalised` and `to_condition`.
simd_loop!(split_sums, (x: &[f32], g: &[f32], conv: &[f32], c: Channel,
    normalised: &mut [f32], to_condition: &mut [f32], sums: &mut [f64; 2]), _plain: Plain, {
    for ((n, tc), ((&v, &g), &z)) in normalised
        .iter_mut()
        .zip(to_condition.iter_mut())
        .zip(x.iter().zip(g).zip(conv))
    {
        *n = c.normalise(z);
        *tc = shares(v, *n * c.gamma + c.beta, g).0;
    }
    sums[0] = sum(to_condition);
    sums[1] = dot(to_condition, normalised);
});

// One plane's split of the output gradient `g` at the maximum: the input's share into `to_x`,
// and the gradient reaching the convolution, `scale·(g_c − mean_grad − x̂·mean_normalised)`
// (training: through the batch statistics) or `scale·g_c` (evaluation, where `x̂`, NaN next to
// a NaN input, must not enter), `g_c` the condition's share, into `wide_grad`: rows of
// `[width, stride]` (`Scratch::gradient`'s layout; over the whole plane at once when the stride
// is the width, otherwise row by row with the junk columns zeroed).
simd_loop!(condition_gradient, (x: &[f32], g: &[f32], conv: &[f32], c: Channel,
    layout: [usize; 2], coefficients: [f32; 3], batch_statistics: bool,
    to_x: &mut [MaybeUninit<f32>], wide_grad: &mut [f32]), _plain: Plain, {
    let [scale, mean_grad, mean_normalised] = coefficients;
    let split = |out: &mut [f32], to_x: &mut [MaybeUninit<f32>], x: &[f32], g: &[f32], z: &[f32]| {
        for ((o, tx), ((&v, &g), &z)) in out.iter_mut().zip(to_x).zip(x.iter().zip(g).zip(z)) {
            let n = c.normalise(z);
            let (to_condition, direct) = shares(v, n * c.gamma + c.beta, g);
            tx.write(direct);
            *o = if batch_statistics {
                scale * (to_condition - mean_grad - n * mean_normalised)
            } else {
                scale * to_condition
            };
        }
    };
    let [width, wide] = layout;
    if wide == width {
        split(wide_grad, to_x, x, g, conv);
        return;
    }
    for ((out, tx), ((x, g), z)) in wide_grad
        .chunks_exact_mut(wide)
        .zip(to_x.chunks_exact_mut(width))
        .zip(x.chunks_exact(width).zip(g.chunks_exact(width)).zip(conv.chunks_exact(width)))
    {
        let (out, junk) = out.split_at_mut(width);
        junk.fill(0.0);
        split(out, tx, x, g, z);
    }
});

/// The backward: the input gradient into `input_grad`, and returns the parameters' gradient
/// `[C, ROW]` (the nine weights, the bias, `γ`, `β`), from the input, the convolution the
/// forward kept (`conv`), the statistics it used and the output gradient. With
/// `batch_statistics` the statistics are the batch's own, and the gradient flows through them
/// as through a training-mode BatchNorm; otherwise they are constants (evaluation). `grad`
/// gives the output gradient plane by plane (a dense `[f32]`, or planes rebuilt by the caller).
/// Every element of `input_grad` is written; the reductions have a fixed order.
///
/// # Panics
/// When the lengths do not match `planes`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    input: &[f32],
    conv: &[f32],
    parameters: &[f32],
    statistics: &[f32],
    grad: &(impl PlaneGrads + ?Sized),
    planes: Planes,
    epsilon: f32,
    batch_statistics: bool,
    input_grad: &mut [MaybeUninit<f32>],
) -> Vec<f32> {
    planes.check(input, parameters);
    assert!(conv.len() == input.len() && input_grad.len() == input.len());
    assert_eq!(statistics.len(), 2 * planes.channels);
    let isa = isa();
    let plane = planes.plane();
    let channels = planes.channels;
    let table = unpack(parameters, statistics, planes, epsilon);
    let channel = |index: usize| table[index % channels];
    // The codes the caller kept hold every x̂ at the winners only when all are finite.
    let codes_hold: Vec<bool> = statistics
        .chunks_exact(2)
        .map(|s| batch_statistics && s.iter().all(|v| v.is_finite()))
        .collect();
    // Pass 1: per plane, the condition's share of the gradient summed, plain and times x̂.
    let first: Vec<[f64; 2]> = input
        .par_chunks(plane)
        .zip(conv.par_chunks(plane))
        .enumerate()
        .map(|(index, (x, conv))| {
            let kept = codes_hold[index % channels]
                .then(|| {
                    grad.with_kept(index, |g, codes| {
                        let mut sums = [0.0; 2];
                        kept_sums(isa, g, codes, &mut sums, ());
                        sums
                    })
                })
                .flatten()
                .filter(|sums| sums.iter().all(|s| s.is_finite()));
            if let Some(sums) = kept {
                return sums;
            }
            grad.with_plane(index, plane, |g| {
                with_scratch(|scratch| {
                    let [normalised, to_condition] = scratch.planes(plane);
                    let mut sums = [0.0; 2];
                    let c = channel(index);
                    split_sums(isa, x, g, conv, c, normalised, to_condition, &mut sums, ());
                    sums
                })
            })
        })
        .collect();
    let mut channel_sums = vec![[0.0f64; 2]; channels];
    for (index, sums) in first.iter().enumerate() {
        let s = &mut channel_sums[index % channels];
        s[0] += sums[0];
        s[1] += sums[1];
    }
    let count = (planes.samples * plane) as f64;
    // Pass 2: the input's share of the gradient, the gradient reaching conv(x), the
    // convolution's input and weight gradients.
    let second: Vec<[f64; 9]> = input_grad
        .par_chunks_mut(plane)
        .zip(input.par_chunks(plane))
        .zip(conv.par_chunks(plane))
        .enumerate()
        .map(|(index, ((dx, x), conv))| {
            let c = channel(index);
            let [sum, sum_normalised] = channel_sums[index % channels];
            let coefficients = [
                c.gamma * c.inverse_std,
                (sum / count) as f32,
                (sum_normalised / count) as f32,
            ];
            grad.with_plane(index, plane, |g| {
                with_scratch(|scratch| {
                    let (wide_grad, stride) = scratch.gradient(isa, plane, planes.width);
                    let layout = [planes.width, stride];
                    condition_gradient(
                        isa,
                        x,
                        g,
                        conv,
                        c,
                        layout,
                        coefficients,
                        batch_statistics,
                        dx,
                        wide_grad,
                        (),
                    );
                    // SAFETY: `condition_gradient` wrote every element of the plane.
                    let dx = unsafe { assume_init(dx) };
                    scratch.convolve_transposed(isa, planes.width, &c.weights, dx);
                    scratch.weight_sums(isa, x, planes.width)
                })
            })
        })
        .collect();
    let mut totals = vec![0.0f64; channels * ROW];
    for (index, weights) in second.iter().enumerate() {
        let row = &mut totals[(index % channels) * ROW..][..ROW];
        for (t, w) in row.iter_mut().zip(weights) {
            *t += w;
        }
    }
    for (channel, &[sum, sum_normalised]) in channel_sums.iter().enumerate() {
        let row = &mut totals[channel * ROW..][..ROW];
        // The bias's gradient, Σ of the gradient reaching conv(x) over the channel, from the
        // first pass's sums instead of a sum per plane: `scale·Σ g_c` with fixed statistics;
        // with the batch's, `scale·(Σ g_c − count·mean_grad − mean_normalised·Σ x̂)`, zero
        // because `Σ x̂` is (a BatchNorm follows the bias), NaN when a sum is.
        let scale = f64::from(table[channel].gamma * table[channel].inverse_std);
        row[9] = if batch_statistics {
            0.0 * (sum + sum_normalised) * scale
        } else {
            scale * sum
        };
        row[10] = sum_normalised;
        row[11] = sum;
    }
    totals.into_iter().map(|t| t as f32).collect()
}
