//! `max(x, γ·(conv(x) − μ)/σ + β)` on `[N, C, H, W]`, where `conv` is a depthwise 3×3
//! convolution with zero padding 1 and `μ`, `σ` are per-channel statistics: a spatial condition
//! compared with the input (FReLU's funnel), forward and backward in a few passes over each
//! plane, instead of a grouped convolution, a transposed copy for the normalisation and eight
//! element-wise passes in Burn's ops.
//!
//! Each channel's parameters are one row of [`ROW`] values: the nine weights (row-major), the
//! convolution's bias, `γ`, `β`. The statistics are `[C, 2]`: the mean and the biased variance
//! of `conv(x)` over the batch (training) or the running ones (evaluation). Every reduction has
//! a fixed order (planes in sample order, each plane's sums in 8 lanes per 1024-element block,
//! the blocks in f64), so two runs give bit-identical gradients. `max` gives a tie's gradient
//! half to each side, as `torch.max(a, b)`.

use super::loops::{Isa, isa, simd_loop};

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

/// Lets `simd_loop!` compile the plane kernels, which have no formula, for each ISA.
pub(crate) trait Plain: Copy {}
impl Plain for () {}

/// A plane inside a border of zeros one pixel wide: `(height + 2) × (width + 2)`, plus two
/// spare zeros, so that every tap of the 3×3 kernel is one flat slice of it: the convolutions
/// below run as nine long axpys (vectorised) instead of three short ones per row (scalar on
/// 14-pixel rows).
fn padded(x: &[f32], width: usize) -> Vec<f32> {
    let (height, wide) = (x.len() / width, width + 2);
    let mut out = vec![0.0; (height + 2) * wide + 2];
    for (i, row) in x.chunks_exact(width).enumerate() {
        out[(i + 1) * wide + 1..][..width].copy_from_slice(row);
    }
    out
}

/// `grad` (`height × width`) laid out `width + 2` wide with two zero columns per row, the
/// layout of the outputs in [`convolve`].
fn widened(grad: &[f32], width: usize) -> Vec<f32> {
    let wide = width + 2;
    let mut out = vec![0.0; grad.len() / width * wide];
    for (i, row) in grad.chunks_exact(width).enumerate() {
        out[i * wide..][..width].copy_from_slice(row);
    }
    out
}

// The depthwise 3×3 convolution of one plane given `padded`, into `out` (`height × width`):
// `out[i][j] = bias + Σ w[a][b]·x[i + a − 1][j + b − 1]`, the taps added in row-major order.
// Computed `width + 2` wide (two junk columns per row), then the valid columns copied out.
simd_loop!(convolve, (xp: &[f32], width: usize, weights: &[f32; 9], bias: f32,
    out: &mut [f32]), _plain: Plain, {
    let wide = width + 2;
    let len = out.len() / width * wide;
    let mut wide_out = vec![bias; len];
    for a in 0..3 {
        for b in 0..3 {
            let weight = weights[3 * a + b];
            for (o, &v) in wide_out.iter_mut().zip(&xp[a * wide + b..][..len]) {
                *o += weight * v;
            }
        }
    }
    for (row, source) in out.chunks_exact_mut(width).zip(wide_out.chunks_exact(wide)) {
        row.copy_from_slice(&source[..width]);
    }
});

// The transpose of `convolve` (without the bias) of `wide_grad` (see `widened`), added into
// `out` (`height × width`): the convolution's input gradient.
simd_loop!(convolve_transposed, (wide_grad: &[f32], width: usize, weights: &[f32; 9],
    out: &mut [f32]), _plain: Plain, {
    let wide = width + 2;
    let len = wide_grad.len();
    let mut accumulated = vec![0.0; len + 2 * wide + 2];
    for a in 0..3 {
        for b in 0..3 {
            let weight = weights[3 * a + b];
            for (o, &g) in accumulated[a * wide + b..][..len].iter_mut().zip(wide_grad) {
                *o += weight * g;
            }
        }
    }
    for (r, row) in out.chunks_exact_mut(width).enumerate() {
        for (o, &v) in row.iter_mut().zip(&accumulated[(r + 1) * wide + 1..][..width]) {
            *o += v;
        }
    }
});

/// `Σ a·b` in 8 f32 lanes per 1024-element block, the blocks in f64.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f64 {
    const LANES: usize = 8;
    let mut total = 0.0f64;
    for (a, b) in a.chunks(1024).zip(b.chunks(1024)) {
        let mut lanes = [0.0f32; LANES];
        let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        for (x, y) in (&mut xs).zip(&mut ys) {
            for j in 0..LANES {
                lanes[j] += x[j] * y[j];
            }
        }
        let rest: f32 = xs
            .remainder()
            .iter()
            .zip(ys.remainder())
            .map(|(x, y)| x * y)
            .sum();
        total += lanes.iter().map(|&l| l as f64).sum::<f64>() + rest as f64;
    }
    total
}

// The nine weight-gradient sums of one plane: `Σ grad[i][j]·x[i + a − 1][j + b − 1]`, from
// `padded` x, row by row (a flat sum would pair the junk columns' zeros with real inputs, and
// 0·NaN would leak a NaN input into taps that never read it).
simd_loop!(weight_sums, (xp: &[f32], grad: &[f32], width: usize,
    sums: &mut [f64; 9]), _plain: Plain, {
    let wide = width + 2;
    for (i, g) in grad.chunks_exact(width).enumerate() {
        for a in 0..3 {
            for b in 0..3 {
                sums[3 * a + b] += dot(g, &xp[(i + a) * wide + b..][..width]);
            }
        }
    }
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
            let mut out = vec![0.0; plane];
            convolve(
                isa,
                &padded(x, planes.width),
                planes.width,
                weights,
                row[9],
                &mut out,
                (),
            );
            let mean = out.iter().map(|&v| v as f64).sum::<f64>() / plane as f64;
            let squares = out.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>();
            (mean, squares)
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
            convolve(
                isa,
                &padded(x, planes.width),
                planes.width,
                &c.weights,
                c.bias,
                out,
                (),
            );
            for (o, &v) in out.iter_mut().zip(x) {
                let condition = (*o - c.mean) * c.inverse_std * c.gamma + c.beta;
                *o = maximum(v, condition);
            }
        });
}

/// What one plane's backward passes share.
struct PlaneGrads {
    /// The gradient reaching the condition (`γ·x̂ + β`), per element.
    condition_grad: Vec<f32>,
    /// `x̂ = (conv(x) − μ)·σ⁻¹`, per element.
    normalised: Vec<f32>,
    /// `Σ condition_grad` and `Σ condition_grad·x̂`.
    sums: [f64; 2],
    /// The input plane in its zero border ([`padded`]), for the weight sums.
    padded: Vec<f32>,
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
    // Pass 1: the split of each element's gradient between x and the condition.
    let first: Vec<PlaneGrads> = input_grad
        .par_chunks_mut(plane)
        .zip(input.par_chunks(plane).zip(grad.par_chunks(plane)))
        .enumerate()
        .map(|(index, (direct, (x, g)))| {
            let c = Channel::new(parameters, statistics, index % channels, epsilon);
            let mut normalised = vec![0.0; plane];
            let xp = padded(x, planes.width);
            convolve(
                isa,
                &xp,
                planes.width,
                &c.weights,
                c.bias,
                &mut normalised,
                (),
            );
            let mut condition_grad = vec![0.0; plane];
            for (((n, cg), d), (&v, &g)) in normalised
                .iter_mut()
                .zip(condition_grad.iter_mut())
                .zip(direct.iter_mut())
                .zip(x.iter().zip(g))
            {
                *n = (*n - c.mean) * c.inverse_std;
                let condition = *n * c.gamma + c.beta;
                let (to_condition, to_x) = if condition > v {
                    (g, 0.0)
                } else if condition < v {
                    (0.0, g)
                } else {
                    (0.5 * g, 0.5 * g)
                };
                *cg = to_condition;
                *d = to_x;
            }
            let sums = [
                condition_grad.iter().map(|&v| v as f64).sum::<f64>(),
                dot(&condition_grad, &normalised),
            ];
            PlaneGrads {
                condition_grad,
                normalised,
                sums,
                padded: xp,
            }
        })
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
        .zip(first.into_par_iter())
        .enumerate()
        .map(|(index, (dx, p))| {
            let channel = index % channels;
            let c = Channel::new(parameters, statistics, channel, epsilon);
            let scale = c.gamma * c.inverse_std;
            let [sum, sum_normalised] = channel_sums[channel];
            let (mean_grad, mean_normalised) =
                ((sum / count) as f32, (sum_normalised / count) as f32);
            // Evaluation: the statistics are constants, and x̂ (NaN next to a NaN input) must
            // not enter.
            let raw: Vec<f32> = if batch_statistics {
                p.condition_grad
                    .iter()
                    .zip(&p.normalised)
                    .map(|(&g, &n)| scale * (g - mean_grad - n * mean_normalised))
                    .collect()
            } else {
                p.condition_grad.iter().map(|&g| scale * g).collect()
            };
            let wide_raw = widened(&raw, planes.width);
            convolve_transposed(isa, &wide_raw, planes.width, &c.weights, dx, ());
            let mut weights = [0.0f64; 9];
            weight_sums(isa, &p.padded, &raw, planes.width, &mut weights, ());
            (weights, raw.iter().map(|&v| v as f64).sum::<f64>())
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
