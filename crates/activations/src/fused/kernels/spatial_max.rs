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
use super::loops::{Isa, Plain, isa, simd_loop};

use rayon::prelude::*;

/// Values per channel in the parameter rows: nine weights, bias, `γ`, `β`.
pub(crate) const ROW: usize = 12;

/// The shape of the input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planes {
    pub samples: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Planes {
    fn plane(&self) -> usize {
        self.height * self.width
    }
}

/// One channel's parameters and statistics, unpacked.
#[derive(Clone, Copy)]
struct Channel {
    weights: [f32; 9],
    bias: f32,
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

// One plane's mean of `values` and sum of squared deviations from it: `[mean, squares]`.
simd_loop!(moments, (values: &[f32], out: &mut [f64; 2]), _plain: Plain, {
    let mean = sum(values) / values.len() as f64;
    let centre = mean as f32;
    out[0] = mean;
    out[1] = block_sum(values, values, |v, _| (v - centre) * (v - centre));
});

/// The mean and the biased variance `[C, 2]` of the convolution over the batch: each plane's
/// mean and sum of squared deviations (two passes over the plane, in f64), combined plane by
/// plane in sample order with Chan et al.'s formula (stable, and no plane kept).
pub(crate) fn statistics(input: &[f32], parameters: &[f32], planes: Planes) -> Vec<f32> {
    let isa = isa();
    let plane = planes.plane();
    let channels = planes.channels;
    let per_plane: Vec<(f64, f64)> = input
        .par_chunks(plane)
        .enumerate()
        .map(|(index, x)| {
            let row = &parameters[(index % channels) * ROW..][..ROW];
            let weights: &[f32; 9] = row[..9].try_into().expect("nine weights");
            let mut moments_of_plane = [0.0; 2];
            with_scratch(|scratch| {
                scratch.pad(x, planes.width);
                let out = scratch.convolve_to_scratch(isa, planes.width, weights, row[9], plane);
                moments(isa, out, &mut moments_of_plane, ());
            });
            (moments_of_plane[0], moments_of_plane[1])
        })
        .collect();
    // Per channel: (count, mean, sum of squared deviations).
    let mut totals = vec![(0.0f64, 0.0f64, 0.0f64); channels];
    for (index, &(mean, squares)) in per_plane.iter().enumerate() {
        let (count, total_mean, total_squares) = &mut totals[index % channels];
        let added = plane as f64;
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

// One plane's `out = max(x, γ·(out − μ)·σ⁻¹ + β)`, where `out` holds the plane's convolution.
simd_loop!(funnel, (x: &[f32], c: Channel, out: &mut [f32]), _plain: Plain, {
    for (o, &v) in out.iter_mut().zip(x) {
        let condition = (*o - c.mean) * c.inverse_std * c.gamma + c.beta;
        *o = maximum(v, condition);
    }
});

// One plane's split of the output gradient `g` at the maximum: `normalised` holds the plane's
// convolution on entry and `x̂` on return; `to_condition` gets the share of the condition,
// `to_x` the input's; `sums` gets `[Σ to_condition, Σ to_condition·x̂]`.
simd_loop!(split, (x: &[f32], g: &[f32], c: Channel, normalised: &mut [f32],
    to_condition: &mut [f32], to_x: &mut [f32], sums: &mut [f64; 2]), _plain: Plain, {
    for (((n, tc), tx), (&v, &g)) in normalised
        .iter_mut()
        .zip(to_condition.iter_mut())
        .zip(to_x.iter_mut())
        .zip(x.iter().zip(g))
    {
        *n = (*n - c.mean) * c.inverse_std;
        let condition = *n * c.gamma + c.beta;
        let half = 0.5 * g;
        let (mut share_condition, mut share_x) = (half, half);
        if condition > v {
            (share_condition, share_x) = (g, 0.0);
        }
        if condition < v {
            (share_condition, share_x) = (0.0, g);
        }
        *tc = share_condition;
        *tx = share_x;
    }
    sums[0] = sum(to_condition);
    sums[1] = dot(to_condition, normalised);
});

// The gradient reaching one plane's convolution, `scale·(g − mean_grad − x̂·mean_normalised)`
// (training: through the batch statistics) or `scale·g` (evaluation, where `x̂`, NaN next to a
// NaN input, must not enter), written into `wide_grad` (as in `convolve_transposed`; its junk
// columns are left as they are: zero); returns its sum in `bias`.
simd_loop!(condition_gradient, (g: &[f32], normalised: &[f32], width: usize,
    coefficients: [f32; 3], batch_statistics: bool, wide_grad: &mut [f32], bias: &mut f64),
    _plain: Plain, {
    let [scale, mean_grad, mean_normalised] = coefficients;
    let wide = width + 2;
    for ((out, g), n) in wide_grad
        .chunks_exact_mut(wide)
        .zip(g.chunks_exact(width))
        .zip(normalised.chunks_exact(width))
    {
        let out = &mut out[..width];
        if batch_statistics {
            for ((o, &g), &n) in out.iter_mut().zip(g).zip(n) {
                *o = scale * (g - mean_grad - n * mean_normalised);
            }
        } else {
            for (o, &g) in out.iter_mut().zip(g) {
                *o = scale * g;
            }
        }
    }
    *bias = sum(wide_grad);
});

/// The forward: `out = max(x, γ·(conv(x) − μ)·σ⁻¹ + β)`, plane by plane in parallel.
pub(crate) fn forward(
    input: &[f32],
    parameters: &[f32],
    statistics: &[f32],
    planes: Planes,
    epsilon: f32,
    out: &mut [f32],
) {
    let isa = isa();
    let plane = planes.plane();
    out.par_chunks_mut(plane)
        .zip(input.par_chunks(plane))
        .enumerate()
        .for_each(|(index, (out, x))| {
            let c = Channel::new(parameters, statistics, index % planes.channels, epsilon);
            with_scratch(|scratch| {
                scratch.pad(x, planes.width);
                scratch.convolve(isa, planes.width, &c.weights, c.bias, out);
            });
            funnel(isa, x, c, out, ());
        });
}

/// What one plane's first backward pass leaves for the second, beside its planes of `x̂` and
/// of the gradient reaching the condition.
struct PlaneSums {
    /// `Σ condition_grad` and `Σ condition_grad·x̂`.
    sums: [f64; 2],
    /// Whether every input of the plane is finite (see `depthwise3x3::weight_sums`).
    finite: bool,
}

/// The backward: the input gradient into `input_grad`, and returns the parameters' gradient
/// `[C, ROW]` (the nine weights, the bias, `γ`, `β`). With `batch_statistics` the statistics
/// are the batch's own, and the gradient flows through them as through a training-mode
/// BatchNorm; otherwise they are constants (evaluation).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    input: &[f32],
    parameters: &[f32],
    statistics: &[f32],
    grad: &[f32],
    planes: Planes,
    epsilon: f32,
    batch_statistics: bool,
    input_grad: &mut [f32],
) -> Vec<f32> {
    let isa = isa();
    let plane = planes.plane();
    let channels = planes.channels;
    // Pass 1: the split of each element's gradient between x and the condition; each plane's
    // x̂ and the condition's gradient stay for pass 2.
    let mut normalised = vec![0.0; input.len()];
    let mut condition_grad = vec![0.0; input.len()];
    let first: Vec<PlaneSums> = input_grad
        .par_chunks_mut(plane)
        .zip(normalised.par_chunks_mut(plane))
        .zip(condition_grad.par_chunks_mut(plane))
        .zip(input.par_chunks(plane).zip(grad.par_chunks(plane)))
        .enumerate()
        .map(
            |(index, (((direct, normalised), condition_grad), (x, g)))| {
                let c = Channel::new(parameters, statistics, index % channels, epsilon);
                with_scratch(|scratch| {
                    scratch.pad(x, planes.width);
                    scratch.convolve(isa, planes.width, &c.weights, c.bias, normalised);
                });
                let mut sums = [0.0; 2];
                split(
                    isa,
                    x,
                    g,
                    c,
                    normalised,
                    condition_grad,
                    direct,
                    &mut sums,
                    (),
                );
                let finite = x.iter().all(|v| v.is_finite());
                PlaneSums { sums, finite }
            },
        )
        .collect();
    let mut channel_sums = vec![[0.0f64; 2]; channels];
    for (index, p) in first.iter().enumerate() {
        let s = &mut channel_sums[index % channels];
        s[0] += p.sums[0];
        s[1] += p.sums[1];
    }
    let count = (planes.samples * plane) as f64;
    // Pass 2: the gradient reaching conv(x), the convolution's input and weight gradients.
    let second: Vec<([f64; 9], f64)> = input_grad
        .par_chunks_mut(plane)
        .zip(normalised.par_chunks(plane))
        .zip(condition_grad.par_chunks(plane))
        .zip(input.par_chunks(plane))
        .zip(first.into_par_iter())
        .enumerate()
        .map(|(index, ((((dx, normalised), condition_grad), x), p))| {
            let channel = index % channels;
            let c = Channel::new(parameters, statistics, channel, epsilon);
            let [sum, sum_normalised] = channel_sums[channel];
            let coefficients = [
                c.gamma * c.inverse_std,
                (sum / count) as f32,
                (sum_normalised / count) as f32,
            ];
            with_scratch(|scratch| {
                let mut bias = 0.0;
                condition_gradient(
                    isa,
                    condition_grad,
                    normalised,
                    planes.width,
                    coefficients,
                    batch_statistics,
                    scratch.zeroed_wide(plane, planes.width),
                    &mut bias,
                    (),
                );
                scratch.convolve_transposed(isa, planes.width, &c.weights, dx);
                scratch.pad(x, planes.width);
                (scratch.weight_sums(isa, planes.width, p.finite), bias)
            })
        })
        .collect();
    let mut totals = vec![0.0f64; channels * ROW];
    for (index, (weights, bias)) in second.iter().enumerate() {
        let row = &mut totals[(index % channels) * ROW..][..ROW];
        for (t, w) in row.iter_mut().zip(weights) {
            *t += w;
        }
        row[9] += bias;
    }
    for (channel, [sum, sum_normalised]) in channel_sums.iter().enumerate() {
        totals[channel * ROW + 10] = *sum_normalised;
        totals[channel * ROW + 11] = *sum;
    }
    totals.into_iter().map(|t| t as f32).collect()
}
