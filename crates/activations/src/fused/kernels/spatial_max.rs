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
//! and its weight sums are `depthwise3x3.rs`'s; the backward is `spatial_max_backward.rs`.

use super::block_sums::{block_sum, sum};
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

/// One channel's parameters and statistics, unpacked.
#[derive(Clone, Copy)]
pub(super) struct Channel {
    pub(super) weights: [f32; 9],
    pub(super) bias: f32,
    pub(super) gamma: f32,
    pub(super) beta: f32,
    pub(super) mean: f32,
    pub(super) inverse_std: f32,
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
pub(super) fn shares(x: f32, condition: f32, g: f32) -> (f32, f32) {
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
    pub(super) fn normalise(&self, conv: f32) -> f32 {
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
                    scratch.convolve(isa, x, planes.width, &c.weights, c.bias, out);
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
                scratch.convolve(isa, x, planes.width, weights, row[9], conv);
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
