//! BatchNorm in training mode on `[N, C, ...]` f32 storage, two passes each way where Burn's
//! composite `batch_norm_train` runs about ten (swapped-axes copies, reductions, broadcasts):
//! - forward: each channel's sum and sum of squares in f64 (one read, channels over the
//!   threads), then `y = x · scale + shift` per channel (one read and one write, samples over
//!   the threads);
//! - backward: each channel's `Σ dy` and `Σ dy · x̂` in f64 (one read of `x` and `dy`), then
//!   `dx = γ / σ · (dy − Σ dy / m − x̂ · Σ dy x̂ / m)` (one read of each, one write).
//!
//! The sums are in f64, so the statistics of a channel with a large mean and small spread keep
//! their digits (`Σx²/m − mean²` in f32 would cancel them).
use rayon::prelude::*;

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

/// Each channel's `(Σ f(a, b))` over its values, in f64, channels over the threads.
fn channel_sums<const K: usize>(
    dims: &NormDims,
    a: &[f32],
    b: &[f32],
    term: impl Fn(usize, f32, f32) -> [f64; K] + Sync,
) -> Vec<[f64; K]> {
    (0..dims.channels)
        .into_par_iter()
        .map(|c| {
            let mut sums = [0.0f64; K];
            for n in 0..dims.batch {
                let (a, b) = (dims.plane_of(a, n, c), dims.plane_of(b, n, c));
                // Per plane in f32 lanes would lose the f64 benefit; a plane is small
                // (28 × 28 at most here), so its partial sums stay in f64 registers.
                for (&a, &b) in a.iter().zip(b) {
                    for (sum, value) in sums.iter_mut().zip(term(c, a, b)) {
                        *sum += value;
                    }
                }
            }
            sums
        })
        .collect()
}

/// `out[n, c, i] = f(c, a[n, c, i], b[n, c, i])`, samples over the threads.
fn per_channel_map(
    dims: &NormDims,
    a: &[f32],
    b: &[f32],
    f: impl Fn(usize, f32, f32) -> f32 + Sync,
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
            .for_each(|((out, a), b)| {
                // Chunks hold whole samples, so plane `i` of a chunk is channel `i mod C`.
                let planes = out
                    .chunks_mut(dims.plane)
                    .zip(a.chunks(dims.plane))
                    .zip(b.chunks(dims.plane));
                for (index, ((out, a), b)) in planes.enumerate() {
                    let c = index % dims.channels;
                    for ((out, &a), &b) in out.iter_mut().zip(a).zip(b) {
                        out.write(f(c, a, b));
                    }
                }
            });
    })
}

/// The forward: `(y, mean, biased variance)`, the statistics per channel.
pub fn batch_norm_forward(
    dims: &NormDims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = dims.per_channel() as f64;
    let sums = channel_sums(dims, x, x, |_, x, _| {
        let x = x as f64;
        [x, x * x]
    });
    let mut mean = Vec::with_capacity(dims.channels);
    let mut variance = Vec::with_capacity(dims.channels);
    let mut scale = Vec::with_capacity(dims.channels);
    for (c, [sum, squares]) in sums.into_iter().enumerate() {
        let channel_mean = sum / m;
        // Rounding can make Σx²/m − mean² a hair negative for a constant channel.
        let channel_var = (squares / m - channel_mean * channel_mean).max(0.0);
        let inv_std = 1.0 / (channel_var + epsilon).sqrt();
        let channel_scale = gamma[c] as f64 * inv_std;
        mean.push(channel_mean as f32);
        variance.push(channel_var as f32);
        scale.push(channel_scale as f32);
    }
    // Centred first: with a mean far from zero, `x · scale + shift` would cancel digits.
    let output = per_channel_map(dims, x, x, |c, x, _| (x - mean[c]) * scale[c] + beta[c]);
    (output, mean, variance)
}

/// The backward: `(dx, dγ, dβ)` from the input, the forward's statistics and `dy`.
pub fn batch_norm_backward(
    dims: &NormDims,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
    output_grad: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = dims.per_channel() as f64;
    let inv_std: Vec<f64> = variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let sums = channel_sums(dims, x, output_grad, |c, x, dy| {
        let dy = dy as f64;
        [dy, dy * (x as f64 - mean[c] as f64) * inv_std[c]]
    });
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
    let input_grad = per_channel_map(dims, x, output_grad, |c, x, dy| {
        dy * k[c] + ((x - mean[c]) * a[c] + b[c])
    });
    (input_grad, gamma_grad, beta_grad)
}
