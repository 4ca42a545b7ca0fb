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

use super::block_sums::{block_sum, dot, sum};
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

/// The nine taps of a 3×3 kernel over a flat plane `wide` values wide: the slices `len` long
/// that start `shift(a, b)` values into `data`, in row-major tap order.
#[inline(always)]
fn taps(data: &[f32], len: usize, shift: impl Fn(usize, usize) -> usize) -> [&[f32]; 9] {
    std::array::from_fn(|t| &data[shift(t / 3, t % 3)..][..len])
}

/// `first + Σ weights[t]·taps[t][k]` at every `k`, the taps added in order: one pass that keeps
/// the sum in a register (nine axpys over the plane would load and store it nine times).
#[inline(always)]
fn weighted_taps(first: f32, weights: &[f32; 9], taps: [&[f32]; 9], out: &mut [f32]) {
    let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = taps;
    let w = weights;
    for (k, o) in out.iter_mut().enumerate() {
        *o = first
            + w[0] * t0[k]
            + w[1] * t1[k]
            + w[2] * t2[k]
            + w[3] * t3[k]
            + w[4] * t4[k]
            + w[5] * t5[k]
            + w[6] * t6[k]
            + w[7] * t7[k]
            + w[8] * t8[k];
    }
}

// The depthwise 3×3 convolution of one plane given `padded`, into `out` (`height × width`):
// `out[i][j] = bias + Σ w[a][b]·x[i + a − 1][j + b − 1]`, the taps added in row-major order.
// Computed `width + 2` wide (two junk columns per row), then the valid columns copied out.
simd_loop!(convolve, (xp: &[f32], width: usize, weights: &[f32; 9], bias: f32,
    out: &mut [f32]), _plain: Plain, {
    let wide = width + 2;
    let len = out.len() / width * wide;
    let mut wide_out = vec![0.0; len];
    weighted_taps(bias, weights, taps(xp, len, |a, b| a * wide + b), &mut wide_out);
    for (row, source) in out.chunks_exact_mut(width).zip(wide_out.chunks_exact(wide)) {
        row.copy_from_slice(&source[..width]);
    }
});

// The transpose of `convolve` (without the bias) of `wide_grad` (`height` rows `width + 2` wide,
// the last two of each row zero: the layout of `convolve`'s outputs), added into
// `out` (`height × width`): the convolution's input gradient. Gathered: the input at flat
// position `m` of the padded plane receives `w[a][b]·grad[m − a·wide − b]`, read from the
// gradient inside a zero margin, the taps added in row-major order from 0.
simd_loop!(convolve_transposed, (wide_grad: &[f32], width: usize, weights: &[f32; 9],
    out: &mut [f32]), _plain: Plain, {
    let wide = width + 2;
    let len = wide_grad.len();
    // Zeros before the gradient for the taps that reach back two rows and two columns, after
    // it for the last row's reach forward.
    let front = 2 * wide + 2;
    let mut gp = vec![0.0; front + len + wide + 1];
    gp[front..][..len].copy_from_slice(wide_grad);
    // Position `m'` here is the padded plane's `m' + wide + 1`: row `r`, column `j` of the
    // input at `r·wide + j`.
    let mut gathered = vec![0.0; len];
    weighted_taps(0.0, weights, taps(&gp, len, |a, b| (3 - a) * wide + 3 - b), &mut gathered);
    for (row, source) in out.chunks_exact_mut(width).zip(gathered.chunks_exact(wide)) {
        for (o, &v) in row.iter_mut().zip(&source[..width]) {
            *o += v;
        }
    }
});

// One plane's mean of `values` and sum of squared deviations from it: `[mean, squares]`.
simd_loop!(moments, (values: &[f32], out: &mut [f64; 2]), _plain: Plain, {
    let mean = sum(values) / values.len() as f64;
    let centre = mean as f32;
    out[0] = mean;
    out[1] = block_sum(values, values, |v, _| (v - centre) * (v - centre));
});

// The nine weight-gradient sums of one plane, `Σ grad[i][j]·x[i + a − 1][j + b − 1]`, from
// `padded` x and `wide_grad` (as in `convolve_transposed`).
// With `finite` inputs each sum is one flat dot over the wide layout (the junk columns add
// exact zeros); otherwise row by row, because a junk column's 0 times an infinite or NaN input
// would put a NaN into taps that never read that input.
simd_loop!(weight_sums, (xp: &[f32], wide_grad: &[f32], width: usize, finite: bool,
    sums: &mut [f64; 9]), _plain: Plain, {
    let wide = width + 2;
    let len = wide_grad.len();
    for a in 0..3 {
        for b in 0..3 {
            let shifted = &xp[a * wide + b..][..len];
            sums[3 * a + b] = if finite {
                dot(wide_grad, shifted)
            } else {
                wide_grad
                    .chunks_exact(wide)
                    .zip(shifted.chunks_exact(wide))
                    .map(|(g, x)| dot(&g[..width], &x[..width]))
                    .sum()
            };
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
            let mut moments_of_plane = [0.0; 2];
            moments(isa, &out, &mut moments_of_plane, ());
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
            convolve(
                isa,
                &padded(x, planes.width),
                planes.width,
                &c.weights,
                c.bias,
                out,
                (),
            );
            funnel(isa, x, c, out, ());
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
    /// Whether every input of the plane is finite (see [`weight_sums`]).
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
            let mut sums = [0.0; 2];
            split(
                isa,
                x,
                g,
                c,
                &mut normalised,
                &mut condition_grad,
                direct,
                &mut sums,
                (),
            );
            PlaneGrads {
                condition_grad,
                normalised,
                sums,
                finite: x.iter().all(|v| v.is_finite()),
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
            let [sum, sum_normalised] = channel_sums[channel];
            let coefficients = [
                c.gamma * c.inverse_std,
                (sum / count) as f32,
                (sum_normalised / count) as f32,
            ];
            let mut wide_grad = vec![0.0; plane / planes.width * (planes.width + 2)];
            let mut bias = 0.0;
            condition_gradient(
                isa,
                &p.condition_grad,
                &p.normalised,
                planes.width,
                coefficients,
                batch_statistics,
                &mut wide_grad,
                &mut bias,
                (),
            );
            convolve_transposed(isa, &wide_grad, planes.width, &c.weights, dx, ());
            let mut weights = [0.0f64; 9];
            weight_sums(
                isa,
                &p.padded,
                &wide_grad,
                planes.width,
                p.finite,
                &mut weights,
                (),
            );
            (weights, bias)
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
