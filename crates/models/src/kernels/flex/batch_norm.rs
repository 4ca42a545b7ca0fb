//! BatchNorm in training mode on `[N, C, ...]` f32 storage, two passes each way where Burn's
//! composite `batch_norm_train` runs about ten (swapped-axes copies, reductions, broadcasts):
//! - forward: each channel's sum and sum of squares in f64 (one read, runs of samples over the
//!   threads), then `y = x · scale + shift` per channel (one read and one write, samples over
//!   the threads);
//! - backward: each channel's `Σ dy` and `Σ dy · x̂` (one read of `x` and `dy`, runs of samples
//!   over the threads), then `dx = γ / σ · (dy − Σ dy / m − x̂ · Σ dy x̂ / m)` (one read of
//!   each, one write).
//!
//! The statistics' sums are in f64, so a channel with a large mean and small spread keeps its
//! digits (`Σx²/m − mean²` in f32 would cancel them); the gradient's centred terms are summed
//! in f32 lanes per plane, then in f64.
//!
//! `activated.rs` makes the forward's output through an activation per sample, where a
//! convolution reads it (`norm_conv.rs`), instead of writing it out.
use activations::burn::backend::TensorMetadata;
use activations::burn::backend::flex::FlexTensor;
use activations::burn::tensor::Shape;
use activations::fused::flex_storage::{contiguous, elements, from_vec};
use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::lanes::with_avx2;
use super::parallel::{filled_vec, items_per_task};

/// `[N, C, plane]`: the input's shape with everything after the channels as one plane.
#[derive(Clone, Copy, Debug)]
pub struct NormDims {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl NormDims {
    pub fn new(shape: &[usize]) -> Self {
        Self {
            batch: shape[0],
            channels: shape[1],
            plane: shape[2..].iter().product(),
        }
    }

    /// Values per channel: the `m` of the statistics.
    fn per_channel(&self) -> usize {
        self.batch * self.plane
    }

    /// Channel `c`'s plane in sample `n`.
    fn plane_of<'a>(&self, values: &'a [f32], n: usize, c: usize) -> &'a [f32] {
        let start = (n * self.channels + c) * self.plane;
        &values[start..start + self.plane]
    }
}

/// Lanes of the plane sums, f64 or f32: eight, one AVX2 register of f32 (LLVM keeps them in
/// vector registers; a single sum waits on each addition and stays scalar).
const LANES: usize = 8;

/// A lane's type: f64 for the statistics, f32 for the gradient's centred terms.
trait Lane: Copy + Default + std::ops::AddAssign + Into<f64> {}
impl Lane for f32 {}
impl Lane for f64 {}

/// `[Σ first(a[i], b[i]), Σ second(a[i], b[i])]` in one pass, each in [`LANES`] lanes of `T`,
/// then the lanes in order in f64 ([`lanes_total`]) and the tail: a fixed order that
/// vectorises.
#[inline(always)]
fn lane_sums<T: Lane>(
    a: &[f32],
    b: &[f32],
    first: impl Fn(f32, f32) -> T,
    second: impl Fn(f32, f32) -> T,
) -> [f64; 2] {
    let mut lanes = [[T::default(); LANES]; 2];
    let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut xs).zip(&mut ys) {
        // Fixed-size arrays: no bounds checks, so the lanes stay in vector registers.
        let x: &[f32; LANES] = x.try_into().expect("exact chunk");
        let y: &[f32; LANES] = y.try_into().expect("exact chunk");
        for j in 0..LANES {
            lanes[0][j] += first(x[j], y[j]);
            lanes[1][j] += second(x[j], y[j]);
        }
    }
    let tail = || xs.remainder().iter().zip(ys.remainder());
    let rest: [f64; 2] = [
        tail().map(|(&x, &y)| first(x, y).into()).sum(),
        tail().map(|(&x, &y)| second(x, y).into()).sum(),
    ];
    [
        lanes_total(lanes[0]) + rest[0],
        lanes_total(lanes[1]) + rest[1],
    ]
}

/// The lanes' sum in f64, in order. Never inlined, on purpose: inlined, LLVM's vectoriser
/// carried this chain's scalar additions back into the caller's loop and ran its lanes in
/// pieces of two and four (the plane sums were a fifth of the ResNet's BatchNorm time).
#[inline(never)]
fn lanes_total<T: Lane>(lanes: [T; LANES]) -> f64 {
    lanes.iter().map(|&lane| lane.into()).sum()
}

// `[Σx, Σx²]` of one plane, added to `sums`, in f64: a channel far from zero needs every term
// of `Σx²` in f64 (`Σx²/m − mean²` cancels).
with_avx2!(sum_and_squares(x: &[f32], sums: &mut [f64; 2]) {
    let [sum, squares] = lane_sums(x, x, |x, _| x as f64, |x, _| x as f64 * x as f64);
    sums[0] += sum;
    sums[1] += squares;
});

// `[Σ dy, Σ dy·(x − mean)]` of one plane, added to `sums`, in f32 lanes, then f64. Unlike the
// statistics' `Σx²`, these terms are centred (`x − mean` in f32, as the forward normalises),
// so nothing large cancels, and a plane is at most a few hundred terms per lane; f32 lanes
// take a third of the f64 lanes' instructions (this pass was bound by them on Zen 4).
with_avx2!(grad_sums(x: &[f32], dy: &[f32], mean: f32, sums: &mut [f64; 2]) {
    let [sum, centred] = lane_sums(x, dy, |_, dy| dy, |x, dy| dy * (x - mean));
    sums[0] += sum;
    sums[1] += centred;
});

// `out = (x − mean)·scale + shift` over one plane.
with_avx2!(pub(super) normalise(x: &[f32], out: &mut [MaybeUninit<f32>], affine: [f32; 3]) {
    let [mean, scale, shift] = affine;
    for (o, &x) in out.iter_mut().zip(x) {
        o.write((x - mean) * scale + shift);
    }
});

// `out = dy·k + ((x − mean)·a + b)` over one plane.
with_avx2!(input_grad(x: &[f32], dy: &[f32], out: &mut [MaybeUninit<f32>], terms: [f32; 4]) {
    let [k, mean, a, b] = terms;
    for ((o, &x), &dy) in out.iter_mut().zip(x).zip(dy) {
        o.write(dy * k + ((x - mean) * a + b));
    }
});

// `out += residual` over one plane (`out` written just before): autodiff's sum of the two
// gradients, in the same order (this one, then the residual's).
with_avx2!(add_residual(out: &mut [MaybeUninit<f32>], residual: &[f32]) {
    for (o, &r) in out.iter_mut().zip(residual) {
        // SAFETY: the caller wrote every element of `out`.
        unsafe { *o.assume_init_mut() += r };
    }
});

/// Samples per partial sum of [`channel_sums`]: fixed, so that the order of the additions (and
/// the bits of the result) does not depend on the number of threads.
const SAMPLES_PER_PARTIAL: usize = 8;

/// Each channel's sums of `plane_sums` over its planes: runs of [`SAMPLES_PER_PARTIAL`]
/// samples over the threads, each read front to back (every channel's plane in turn, so the
/// reads stream; a channel's planes one sample apart did not, at 7×7), then the runs' partial
/// sums added in order.
fn channel_sums(
    dims: &NormDims,
    a: &[f32],
    b: &[f32],
    plane_sums: impl Fn(usize, &[f32], &[f32], &mut [f64; 2]) + Sync,
) -> Vec<[f64; 2]> {
    let runs = dims.batch.div_ceil(SAMPLES_PER_PARTIAL);
    let partials: Vec<Vec<[f64; 2]>> = (0..runs)
        .into_par_iter()
        .map(|run| {
            let mut sums = vec![[0.0f64; 2]; dims.channels];
            let samples =
                run * SAMPLES_PER_PARTIAL..dims.batch.min((run + 1) * SAMPLES_PER_PARTIAL);
            for n in samples {
                for (c, sums) in sums.iter_mut().enumerate() {
                    plane_sums(c, dims.plane_of(a, n, c), dims.plane_of(b, n, c), sums);
                }
            }
            sums
        })
        .collect();
    let mut totals = vec![[0.0f64; 2]; dims.channels];
    for partial in partials {
        for (total, sums) in totals.iter_mut().zip(partial) {
            total[0] += sums[0];
            total[1] += sums[1];
        }
    }
    totals
}

/// `out[n, c] = plane(c, a[n, c], b[n, c])` plane by plane, samples over the threads; `plane`
/// also gets the plane's start in the tensor.
fn per_channel_map(
    dims: &NormDims,
    a: &[f32],
    b: &[f32],
    plane: impl Fn(usize, usize, &[f32], &[f32], &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let sample = dims.channels * dims.plane;
    let len = dims.batch * sample;
    let chunk = items_per_task(dims.batch) * sample;
    filled_vec(len, |out| {
        if len == 0 || dims.plane == 0 {
            return;
        }
        out.par_chunks_mut(chunk)
            .zip(a.par_chunks(chunk))
            .zip(b.par_chunks(chunk))
            .enumerate()
            .for_each(|(task, ((out, a), b))| {
                // Chunks hold whole samples, so plane `i` of a chunk is channel `i mod C`.
                let planes = out
                    .chunks_mut(dims.plane)
                    .zip(a.chunks(dims.plane))
                    .zip(b.chunks(dims.plane));
                for (index, ((out, a), b)) in planes.enumerate() {
                    let start = task * chunk + index * dims.plane;
                    plane(index % dims.channels, start, a, b, out);
                }
            });
    })
}

/// The forward: `(y, mean, variance)`, the statistics per channel: `running` (mean, variance)
/// when given (evaluation), else the batch's own mean and biased variance.
pub fn batch_norm_forward(
    dims: &NormDims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    running: Option<(&[f32], &[f32])>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, variance) = match running {
        Some((mean, variance)) => (mean.to_vec(), variance.to_vec()),
        None => batch_statistics(dims, x),
    };
    let scale = scales(&variance, gamma, epsilon);
    // Centred first: with a mean far from zero, `x · scale + shift` would cancel digits.
    let output = per_channel_map(dims, x, x, |c, _, x, _, out| {
        normalise(x, out, [mean[c], scale[c], beta[c]]);
    });
    (output, mean, variance)
}

/// Each channel's `γ / √(σ² + ε)`.
pub(super) fn scales(variance: &[f32], gamma: &[f32], epsilon: f64) -> Vec<f32> {
    variance
        .iter()
        .zip(gamma)
        .map(|(&var, &gamma)| (gamma as f64 / (var as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// Each channel's mean and biased variance over the batch.
pub(super) fn batch_statistics(dims: &NormDims, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let m = dims.per_channel() as f64;
    channel_sums(dims, x, x, |_, x, _, sums| sum_and_squares(x, sums))
        .into_iter()
        .map(|[sum, squares]| {
            let mean = sum / m;
            // Rounding can make Σx²/m − mean² a hair negative for a constant channel.
            let variance = (squares / m - mean * mean).max(0.0);
            (mean as f32, variance as f32)
        })
        .unzip()
}

/// The backward: `(dx, dγ, dβ)` from the input, the forward's statistics and `dy`; with
/// `batch_statistics` through the batch's statistics, otherwise with them as constants;
/// `residual_grad` (of `x`'s shape) added into `dx` in its pass.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    dims: &NormDims,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
    batch_statistics: bool,
    output_grad: &[f32],
    residual_grad: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = dims.per_channel() as f64;
    let inv_std: Vec<f64> = variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let sums = channel_sums(dims, x, output_grad, |c, x, dy, sums| {
        grad_sums(x, dy, mean[c], sums);
    });
    // Σ dy·x̂ = Σ dy·(x − μ) / σ.
    let sums: Vec<[f64; 2]> = sums
        .iter()
        .zip(&inv_std)
        .map(|(&[dy, dy_centred], inv_std)| [dy, dy_centred * inv_std])
        .collect();
    let beta_grad: Vec<f32> = sums.iter().map(|[dy, _]| *dy as f32).collect();
    let gamma_grad: Vec<f32> = sums.iter().map(|[_, dy_xhat]| *dy_xhat as f32).collect();
    // dx = k · (dy − Σdy/m − x̂ · Σdy x̂/m) with k = γ/σ, as `dy · k + (x − μ) · a + b` per
    // channel.
    let mut k = Vec::with_capacity(dims.channels);
    let mut a = Vec::with_capacity(dims.channels);
    let mut b = Vec::with_capacity(dims.channels);
    for (c, [sum_dy, sum_dy_xhat]) in sums.into_iter().enumerate() {
        let channel_k = gamma[c] as f64 * inv_std[c];
        k.push(channel_k as f32);
        a.push((-channel_k * inv_std[c] * sum_dy_xhat / m) as f32);
        b.push((-channel_k * sum_dy / m) as f32);
    }
    if let Some(residual) = residual_grad {
        assert_eq!(
            residual.len(),
            x.len(),
            "one residual gradient per input value"
        );
    }
    let input_grad = if batch_statistics {
        per_channel_map(dims, x, output_grad, |c, start, x, dy, out| {
            input_grad(x, dy, out, [k[c], mean[c], a[c], b[c]]);
            if let Some(residual) = residual_grad {
                add_residual(out, &residual[start..][..out.len()]);
            }
        })
    } else {
        // Constant statistics: dx = dy · γ/σ (x does not enter: an infinite x keeps a
        // finite gradient, as in PyTorch).
        per_channel_map(dims, output_grad, output_grad, |c, start, dy, _, out| {
            normalise(dy, out, [0.0, k[c], 0.0]);
            if let Some(residual) = residual_grad {
                add_residual(out, &residual[start..][..out.len()]);
            }
        })
    };
    (input_grad, gamma_grad, beta_grad)
}

/// [`LayerKernelOps::layer_batch_norm`](super::super::LayerKernelOps::layer_batch_norm) on
/// Flex tensors: `(y, [mean; variance])`.
pub fn forward(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    running: FlexTensor,
    epsilon: f64,
    batch_statistics: bool,
) -> (FlexTensor, FlexTensor) {
    let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
    let running = contiguous(running);
    let shape = x.shape();
    let dims = NormDims::new(&shape);
    let (output, mut mean, variance) = batch_norm_forward(
        &dims,
        elements(&x),
        elements(&gamma),
        elements(&beta),
        epsilon,
        (!batch_statistics).then(|| elements(&running).split_at(dims.channels)),
    );
    mean.extend(variance);
    (
        from_vec(output, shape),
        from_vec(mean, Shape::new([2, dims.channels])),
    )
}

/// [`LayerKernelBackward::layer_batch_norm_backward`](super::super::LayerKernelBackward::layer_batch_norm_backward)
/// on Flex tensors, with `statistics` the forward's `[mean; variance]`: `[dx, dγ, dβ]`.
pub fn backward(
    x: FlexTensor,
    gamma: FlexTensor,
    statistics: FlexTensor,
    epsilon: f64,
    batch_statistics: bool,
    output_grad: FlexTensor,
    residual_grad: Option<FlexTensor>,
) -> [FlexTensor; 3] {
    let (x, gamma) = (contiguous(x), contiguous(gamma));
    let (statistics, output_grad) = (contiguous(statistics), contiguous(output_grad));
    let residual_grad = residual_grad.map(contiguous);
    let shape = x.shape();
    let dims = NormDims::new(&shape);
    let (mean, variance) = elements(&statistics).split_at(dims.channels);
    let (input_grad, gamma_grad, beta_grad) = batch_norm_backward(
        &dims,
        elements(&x),
        elements(&gamma),
        mean,
        variance,
        epsilon,
        batch_statistics,
        elements(&output_grad),
        residual_grad.as_ref().map(elements),
    );
    let per_channel = Shape::new([dims.channels]);
    [
        from_vec(input_grad, shape),
        from_vec(gamma_grad, per_channel.clone()),
        from_vec(beta_grad, per_channel),
    ]
}
