//! `max(x, γ·(conv(x) − μ)/σ + β)` on `[N, C, H, W]`, where `conv` is a depthwise 3×3
//! convolution with zero padding 1 and `μ`, `σ` are per-channel statistics: a spatial condition
//! compared with the input (FReLU's funnel), forward and backward in a few passes over each
//! plane, instead of a grouped convolution, a transposed copy for the normalisation and eight
//! element-wise passes in Burn's ops.
//!
//! Each channel's parameters are one row of [`ROW`] values: the nine weights (row-major), the
//! convolution's bias, `γ`, `β`. The statistics are `[C, 2]`: the mean and the biased variance
//! of `conv(x)` over the batch (training) or the running ones (evaluation). Every reduction has
//! a fixed order (planes in sample order, each plane's sums in f32 lanes per 1024-element block,
//! the blocks in f64: `block_sums.rs`), so two runs give bit-identical gradients. `max` gives a
//! tie's gradient half to each side, as `torch.max(a, b)`. The 3×3 convolution, its transpose
//! and its weight sums are `depthwise3x3.rs`'s.

use super::block_sums::{block_sum, dot, sum};
use super::depthwise3x3::with_scratch;
use super::loops::{Isa, Plain, assume_init, isa, simd_loop};

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Values per channel in the parameter rows: nine weights, bias, `γ`, `β`.
pub const ROW: usize = 12;

/// The shape of the input, `[N, C, H, W]`.
#[derive(Clone, Copy, Debug)]
pub struct Planes {
    pub samples: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Planes {
    pub(super) fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Panics unless `input` is `[N, C, H, W]` and `parameters` `[C, ROW]`.
    pub(super) fn check(&self, input: &[f32], parameters: &[f32]) {
        assert_eq!(
            input.len(),
            self.samples * self.channels * self.plane(),
            "[N, C, H, W]"
        );
        assert_eq!(parameters.len(), self.channels * ROW, "[C, ROW] parameters");
    }
}

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

/// One channel's parameters and statistics, unpacked.
#[derive(Clone, Copy)]
pub(super) struct Channel {
    pub(super) weights: [f32; 9],
    pub(super) bias: f32,
    gamma: f32,
    beta: f32,
    mean: f32,
    inverse_std: f32,
}

impl Channel {
    fn new(parameters: &[f32], statistics: &[f32], channel: usize, epsilon: f32) -> Self {
        let row = &parameters[channel * ROW..][..ROW];
        let mut weights = [0.0; 9];
        weights.copy_from_slice(&row[..9]);
        let (mean, var) = (statistics[2 * channel], statistics[2 * channel + 1]);
        Self {
            weights,
            bias: row[9],
            gamma: row[10],
            beta: row[11],
            mean,
            inverse_std: 1.0 / (var + epsilon).sqrt(),
        }
    }
}

/// Every channel's [`Channel`], unpacked once per call (a square root and a division each,
/// which per plane were 0.6% of a FReLU step).
pub(super) fn unpack(
    parameters: &[f32],
    statistics: &[f32],
    planes: Planes,
    epsilon: f32,
) -> Vec<Channel> {
    (0..planes.channels)
        .map(|channel| Channel::new(parameters, statistics, channel, epsilon))
        .collect()
}

// One plane's mean of `values` and sum of squared deviations from it: `[mean, squares]`.
simd_loop!(moments, (values: &[f32], out: &mut [f64; 2]), _plain: Plain, {
    let mean = sum(values) / values.len() as f64;
    let centre = mean as f32;
    out[0] = mean;
    out[1] = block_sum(values, values, |v, _| (v - centre) * (v - centre));
});

/// The mean and the biased variance `[C, 2]` of the convolution over the batch, from each
/// plane's mean and sum of squared deviations (in f64), combined plane by plane in sample
/// order with Chan et al.'s formula (stable, and no plane kept).
pub(super) fn combine(per_plane: &[[f64; 2]], planes: Planes) -> Vec<f32> {
    // Per channel: (count, mean, sum of squared deviations).
    let mut totals = vec![(0.0f64, 0.0f64, 0.0f64); planes.channels];
    for (index, &[mean, squares]) in per_plane.iter().enumerate() {
        let (count, total_mean, total_squares) = &mut totals[index % planes.channels];
        let added = planes.plane() as f64;
        let combined = *count + added;
        let delta = mean - *total_mean;
        *total_mean += delta * added / combined;
        *total_squares += squares + delta * delta * *count * added / combined;
        *count = combined;
    }
    totals
        .iter()
        .flat_map(|&(count, mean, squares)| [mean as f32, (squares / count) as f32])
        .collect()
}

/// `max(x, condition)` as `torch.max(a, b)`: a strict winner, else (a tie, or NaN) the mean.
#[inline(always)]
fn maximum(x: f32, condition: f32) -> f32 {
    if condition > x {
        condition
    } else if condition < x {
        x
    } else {
        0.5 * (x + condition)
    }
}

/// The shares of the output gradient `g` at `max(x, condition)`: `(condition's, x's)`, all to
/// the strict winner, half to each on a tie (or NaN).
#[inline(always)]
fn shares(x: f32, condition: f32, g: f32) -> (f32, f32) {
    let half = 0.5 * g;
    let mut shares = (half, half);
    if condition > x {
        shares = (g, 0.0);
    }
    if condition < x {
        shares = (0.0, g);
    }
    shares
}

impl Channel {
    /// `x̂`: the convolution's output normalised.
    #[inline(always)]
    fn normalise(&self, conv: f32) -> f32 {
        (conv - self.mean) * self.inverse_std
    }
}

// One plane's `out = max(x, γ·(out − μ)·σ⁻¹ + β)`, where `out` holds the plane's convolution.
simd_loop!(pub(super) funnel_in_place, (x: &[f32], c: Channel, out: &mut [f32]), _plain: Plain, {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = maximum(v, c.normalise(*o) * c.gamma + c.beta);
    }
});

// As `funnel_in_place`, with the convolution kept in `conv`.
simd_loop!(pub(super) funnel, (x: &[f32], conv: &[f32], c: Channel, out: &mut [MaybeUninit<f32>]),
    _plain: Plain, {
    for ((o, &v), &z) in out.iter_mut().zip(x).zip(conv) {
        o.write(maximum(v, c.normalise(z) * c.gamma + c.beta));
    }
});

// As `funnel`, with each position's code for the backward's first pass in `codes`: `x̂` where
// the condition strictly wins, NaN where `x` does, +∞ on a tie or NaN (whose half shares the
// codes do not carry: the sums of `kept_sums` then come out non-finite, and the plane is summed
// again from its dense gradient). With the batch's statistics finite, every `x̂` of the channel
// is finite, so the codes are unambiguous.
simd_loop!(pub(super) funnel_coded, (x: &[f32], conv: &[f32], c: Channel,
    out: &mut [MaybeUninit<f32>], codes: &mut [f32]), _plain: Plain, {
    for ((o, code), (&v, &z)) in out.iter_mut().zip(codes.iter_mut()).zip(x.iter().zip(conv)) {
        let n = c.normalise(z);
        let condition = n * c.gamma + c.beta;
        o.write(maximum(v, condition));
        *code = if condition > v {
            n
        } else if condition < v {
            f32::NAN
        } else {
            f32::INFINITY
        };
    }
});

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
// a NaN input, must not enter), `g_c` the condition's share, into `wide_grad` (as in
// `convolve_transposed`, its junk columns zero).
simd_loop!(condition_gradient, (x: &[f32], g: &[f32], conv: &[f32], c: Channel, width: usize,
    coefficients: [f32; 3], batch_statistics: bool, to_x: &mut [MaybeUninit<f32>],
    wide_grad: &mut [f32]), _plain: Plain, {
    let [scale, mean_grad, mean_normalised] = coefficients;
    let wide = width + 2;
    for ((out, tx), ((x, g), z)) in wide_grad
        .chunks_exact_mut(wide)
        .zip(to_x.chunks_exact_mut(width))
        .zip(x.chunks_exact(width).zip(g.chunks_exact(width)).zip(conv.chunks_exact(width)))
    {
        let (out, junk) = out.split_at_mut(width);
        junk.fill(0.0);
        for ((o, tx), ((&v, &g), &z)) in out.iter_mut().zip(tx).zip(x.iter().zip(g).zip(z)) {
            let n = c.normalise(z);
            let (to_condition, direct) = shares(v, n * c.gamma + c.beta, g);
            tx.write(direct);
            *o = if batch_statistics {
                scale * (to_condition - mean_grad - n * mean_normalised)
            } else {
                scale * to_condition
            };
        }
    }
});

/// The forward, `out = max(x, γ·(conv(x) − μ)·σ⁻¹ + β)`, plane by plane in parallel; returns
/// the statistics it used `[C, 2]`: `running` (mean, variance per channel), or without them the
/// batch's own mean and biased variance of `conv(x)`. With `conv` the convolution is kept there
/// for the backward, which then never computes it again. Every element of `out` (and `conv`)
/// is written.
pub(crate) fn forward(
    input: &[f32],
    parameters: &[f32],
    running: Option<&[f32]>,
    planes: Planes,
    epsilon: f32,
    out: &mut [MaybeUninit<f32>],
    conv: Option<&mut [MaybeUninit<f32>]>,
) -> Vec<f32> {
    let isa = isa();
    let plane = planes.plane();
    if let (Some(running), None) = (running, &conv) {
        // Evaluation: one pass, each plane convolved, normalised and compared in cache.
        let channels = unpack(parameters, running, planes, epsilon);
        out.par_chunks_mut(plane)
            .zip(input.par_chunks(plane))
            .enumerate()
            .for_each(|(index, (out, x))| {
                let c = channels[index % planes.channels];
                with_scratch(|scratch| {
                    scratch.pad(x, planes.width);
                    scratch.convolve(isa, planes.width, &c.weights, c.bias, out);
                });
                // SAFETY: `convolve` wrote every element of the plane.
                let out = unsafe { assume_init(out) };
                funnel_in_place(isa, x, c, out, ());
            });
        return running.to_vec();
    }
    // The convolution first (into `out` when nobody keeps it), with each plane's moments
    // while it is in cache; then the comparison, once the statistics are known.
    let statistics = |per_plane: Vec<[f64; 2]>| {
        running.map_or_else(|| combine(&per_plane, planes), <[f32]>::to_vec)
    };
    let batch = running.is_none();
    match conv {
        Some(conv) => {
            let statistics = statistics(convolve(input, parameters, planes, batch, conv));
            let channels = unpack(parameters, &statistics, planes, epsilon);
            // SAFETY: `convolve` wrote every element.
            let conv = unsafe { assume_init(conv) };
            out.par_chunks_mut(plane)
                .zip(input.par_chunks(plane).zip(conv.par_chunks(plane)))
                .enumerate()
                .for_each(|(index, (out, (x, conv)))| {
                    funnel(isa, x, conv, channels[index % planes.channels], out, ());
                });
            statistics
        }
        None => {
            let statistics = statistics(convolve(input, parameters, planes, batch, out));
            let channels = unpack(parameters, &statistics, planes, epsilon);
            // SAFETY: `convolve` wrote every element.
            let out = unsafe { assume_init(out) };
            out.par_chunks_mut(plane)
                .zip(input.par_chunks(plane))
                .enumerate()
                .for_each(|(index, (out, x))| {
                    funnel_in_place(isa, x, channels[index % planes.channels], out, ());
                });
            statistics
        }
    }
}

/// The depthwise convolution of every plane into `conv` (every element written), and with
/// `moments_too` each plane's mean and sum of squared deviations (for [`combine`]).
pub(super) fn convolve(
    input: &[f32],
    parameters: &[f32],
    planes: Planes,
    moments_too: bool,
    conv: &mut [MaybeUninit<f32>],
) -> Vec<[f64; 2]> {
    let isa = isa();
    let plane = planes.plane();
    conv.par_chunks_mut(plane)
        .zip(input.par_chunks(plane))
        .enumerate()
        .map(|(index, (conv, x))| {
            let row = &parameters[(index % planes.channels) * ROW..][..ROW];
            let weights: &[f32; 9] = row[..9].try_into().expect("nine weights");
            with_scratch(|scratch| {
                scratch.pad(x, planes.width);
                scratch.convolve(isa, planes.width, weights, row[9], conv);
            });
            // SAFETY: `convolve` wrote every element of the plane.
            let conv = unsafe { assume_init(conv) };
            let mut moments_of_plane = [0.0; 2];
            if moments_too {
                moments(isa, conv, &mut moments_of_plane, ());
            }
            moments_of_plane
        })
        .collect()
}

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
                    let wide_grad = scratch.gradient(plane, planes.width);
                    condition_gradient(
                        isa,
                        x,
                        g,
                        conv,
                        c,
                        planes.width,
                        coefficients,
                        batch_statistics,
                        dx,
                        wide_grad,
                        (),
                    );
                    // SAFETY: `condition_gradient` wrote every element of the plane.
                    let dx = unsafe { assume_init(dx) };
                    scratch.convolve_transposed(isa, planes.width, &c.weights, dx);
                    scratch.pad(x, planes.width);
                    scratch.weight_sums(isa, planes.width)
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
