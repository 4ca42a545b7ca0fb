//! The kernels whose parameters vary along the channel axis: PReLU (one slope per channel) and
//! APReLU (one slope per sample and channel, from the per-sample channel means it squeezes).

use super::loops::{
    CHUNK, Closure, Isa, Ternary, Unary, isa, map_into, simd_loop, zip_in_place, zip_into,
};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The channel layout PReLU sees: `[outer, channels, inner]`, row-major.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelLayout {
    pub channels: usize,
    pub inner: usize,
}

impl ChannelLayout {
    fn channel(&self, flat: usize) -> usize {
        (flat / self.inner) % self.channels
    }

    /// Calls `segment(start, end, channel)` for the runs of one channel within `start..end`.
    fn segments(&self, start: usize, end: usize, mut segment: impl FnMut(usize, usize, usize)) {
        let mut pos = start;
        while pos < end {
            let stop = end.min((pos / self.inner + 1) * self.inner);
            segment(pos, stop, self.channel(pos));
            pos = stop;
        }
    }

    /// Elements per parallel task: whole rows of channels when a channel's run is short.
    fn task_len(&self) -> usize {
        if self.inner == 1 {
            self.channels * (CHUNK / self.channels).max(1)
        } else {
            CHUNK
        }
    }
}

/// PReLU forward: `x > 0 ? x : w[c] x`.
pub(crate) fn prelu_forward(
    input: &[f32],
    weight: &[f32],
    layout: ChannelLayout,
    output: &mut [MaybeUninit<f32>],
) {
    let isa = isa();
    let task = layout.task_len();
    let run = |(index, (o, x)): (usize, (&mut [MaybeUninit<f32>], &[f32]))| {
        if layout.inner == 1 {
            // Rows of all channels: zip with the weight vector.
            for (o_row, x_row) in o.chunks_mut(layout.channels).zip(x.chunks(layout.channels)) {
                zip_into(
                    isa,
                    x_row,
                    weight,
                    o_row,
                    Closure(|v: f32, w: f32| if v > 0.0 { v } else { v * w }),
                );
            }
        } else {
            let base = index * task;
            layout.segments(base, base + x.len(), |start, end, channel| {
                let w = weight[channel];
                let (s, e) = (start - base, end - base);
                let leaky = move |v: f32| if v > 0.0 { v } else { v * w };
                map_into(isa, &x[s..e], &mut o[s..e], Closure(leaky));
            });
        }
    };
    output
        .par_chunks_mut(task)
        .zip(input.par_chunks(task))
        .enumerate()
        .for_each(run);
}

/// PReLU backward: the input gradient in place of `grad`, and returns the weight gradient
/// `Σ_{x <= 0} x · grad` per channel (accumulated in f64, like a pairwise sum in accuracy).
pub(crate) fn prelu_backward(
    input: &[f32],
    weight: &[f32],
    layout: ChannelLayout,
    grad: &mut [f32],
) -> Vec<f32> {
    let isa = isa();
    let task = layout.task_len();
    let channels = layout.channels;
    let run = |mut sums: Vec<f64>, (index, (g, x)): (usize, (&mut [f32], &[f32]))| {
        let negative_part = |v: f32, gv: f32| if v > 0.0 { 0.0 } else { (v * gv) as f64 };
        if layout.inner == 1 {
            for (g_row, x_row) in g.chunks_mut(channels).zip(x.chunks(channels)) {
                for ((sum, &v), &gv) in sums.iter_mut().zip(x_row).zip(g_row.iter()) {
                    *sum += negative_part(v, gv);
                }
                zip_weight_in_place(isa, x_row, weight, g_row);
            }
        } else {
            let base = index * task;
            layout.segments(base, base + x.len(), |start, end, channel| {
                let w = weight[channel];
                let (s, e) = (start - base, end - base);
                let mut sum = 0.0f64;
                slope_backward_run(isa, &x[s..e], &mut g[s..e], &mut sum, PreluRule(w));
                sums[channel] += sum;
            });
        }
        sums
    };
    let sums = grad
        .par_chunks_mut(task)
        .zip(input.par_chunks(task))
        .enumerate()
        .fold(|| vec![0.0f64; channels], run)
        .reduce(
            || vec![0.0f64; channels],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    sums.into_iter().map(|s| s as f32).collect()
}

/// The per-element rule of a slope's backward: the input gradient where `x <= 0`, and the
/// term each element adds to the slope's gradient.
pub(crate) trait SlopeRule: Copy + Send + Sync {
    fn scaled(self, grad: f32) -> f32;
    fn term(self, x: f32, grad: f32) -> f32;
}

/// PyTorch's PReLU: the slope's gradient sums `x > 0 ? 0 : x · grad`. Where x > 0 the term is
/// -0.0, which leaves every sum unchanged (+0.0 would turn a -0.0 sum into +0.0): then LLVM
/// needs no blend of two sums and keeps the lanes in a register, not on the stack behind masked
/// stores (3× slower). An infinite `grad` where x > 0 adds nothing, as in PyTorch.
#[derive(Clone, Copy)]
struct PreluRule(f32);
impl SlopeRule for PreluRule {
    #[inline(always)]
    fn scaled(self, grad: f32) -> f32 {
        grad * self.0
    }
    #[inline(always)]
    fn term(self, x: f32, grad: f32) -> f32 {
        if x > 0.0 { -0.0 } else { x * grad }
    }
}

/// APReLU's reference, `max(x, 0) + α · min(x, 0)`: α's gradient sums `min(x, 0) · grad`, so an
/// infinite or NaN `grad` where x > 0 makes it NaN (0 · inf), as in PyTorch.
#[derive(Clone, Copy)]
struct AprReluRule(f32);
impl SlopeRule for AprReluRule {
    #[inline(always)]
    fn scaled(self, grad: f32) -> f32 {
        grad * self.0
    }
    #[inline(always)]
    fn term(self, x: f32, grad: f32) -> f32 {
        (if x > 0.0 { 0.0 } else { x }) * grad
    }
}

// One run of a slope's backward in a single pass over `x` and `grad`: `grad` becomes
// `x > 0 ? grad : rule.scaled(grad)` in place (`x > 0` is false for NaN: it takes the slope, as
// in PyTorch), and `total` gains the sum of `rule.term(x, grad)`, in 16 f32 lanes over blocks of
// 1024 and the blocks in f64. Reading both tensors once, with the sum vectorised, is what keeps
// PReLU near leaky_relu's cost.
simd_loop!(slope_backward_run, (x: &[f32], grad: &mut [f32], total: &mut f64), rule: SlopeRule, {
    const LANES: usize = 16;
    for (xb, gb) in x.chunks(1024).zip(grad.chunks_mut(1024)) {
        let mut lanes = [0.0f32; LANES];
        let mut xs = xb.chunks_exact(LANES);
        let mut gs = gb.chunks_exact_mut(LANES);
        for (xl, gl) in (&mut xs).zip(&mut gs) {
            // Fixed-size arrays: no bounds checks, so the lane loop vectorises.
            let xl: &[f32; LANES] = xl.try_into().expect("exact chunk");
            let gl: &mut [f32; LANES] = gl.try_into().expect("exact chunk");
            for j in 0..LANES {
                let (v, gv) = (xl[j], gl[j]);
                lanes[j] += rule.term(v, gv);
                let scaled = rule.scaled(gv);
                gl[j] = if v > 0.0 { gv } else { scaled };
            }
        }
        let mut block = lanes.iter().map(|&l| l as f64).sum::<f64>();
        for (&v, gv) in xs.remainder().iter().zip(gs.into_remainder()) {
            block += rule.term(v, *gv) as f64;
            if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                *gv = rule.scaled(*gv);
            }
        }
        *total += block;
    }
});

/// `grad[c] = x[c] > 0 ? grad[c] : w[c] grad[c]` over one row of channels.
fn zip_weight_in_place(isa: Isa, x: &[f32], weight: &[f32], grad: &mut [f32]) {
    simd_loop!(rows, (x: &[f32], w: &[f32], g: &mut [f32]), f: Ternary, {
        for ((gv, &v), &wv) in g.iter_mut().zip(x).zip(w) {
            *gv = f.call(v, wv, *gv);
        }
    });
    let leaky = |v: f32, w: f32, g: f32| if v > 0.0 { g } else { g * w };
    rows(isa, x, weight, grad, Closure(leaky));
}

/// APReLU's view of `[N, C, ...]`: one row of `inner` elements per sample and channel, the
/// rows in the order of the slopes `[N, C]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SampleChannels {
    pub samples: usize,
    pub channels: usize,
    pub inner: usize,
}

impl SampleChannels {
    fn rows(&self) -> usize {
        self.samples * self.channels
    }

    /// Whole rows per parallel task, about [`CHUNK`] elements.
    fn rows_per_task(&self) -> usize {
        (CHUNK / self.inner.max(1)).max(1)
    }
}

/// APReLU's squeeze, `[N, 2C]`: the mean of `max(x, 0)` over each row in the first `C`
/// columns, the mean of `min(x, 0)` in the last `C`, in one pass over the input.
pub(crate) fn aprelu_squeeze(input: &[f32], layout: SampleChannels) -> Vec<f32> {
    let isa = isa();
    let (rows, inner) = (layout.rows(), layout.inner);
    let per_task = layout.rows_per_task();
    let mut positive = vec![0.0f32; rows];
    let mut negative = vec![0.0f32; rows];
    positive
        .par_chunks_mut(per_task)
        .zip(negative.par_chunks_mut(per_task))
        .zip(input.par_chunks(per_task * inner))
        .for_each(|((positive, negative), x)| {
            if inner == 1 {
                // [N, C]: each row is one element, its own mean.
                for ((p, n), &v) in positive.iter_mut().zip(negative.iter_mut()).zip(x) {
                    (*p, *n) = if v > 0.0 { (v, 0.0) } else { (0.0, v) };
                }
                return;
            }
            for ((p, n), row) in positive
                .iter_mut()
                .zip(negative.iter_mut())
                .zip(x.chunks(inner))
            {
                (*p, *n) = plane_means_with(isa, row);
            }
        });
    let channels = layout.channels;
    let mut summary = Vec::with_capacity(2 * rows);
    for sample in 0..layout.samples {
        let row = sample * channels..(sample + 1) * channels;
        summary.extend_from_slice(&positive[row.clone()]);
        summary.extend_from_slice(&negative[row]);
    }
    summary
}

/// The means of `max(x, 0)` and `min(x, 0)` over one row (one sample's channel plane): the
/// squeeze's two entries for it.
fn plane_means_with(isa: Isa, row: &[f32]) -> (f32, f32) {
    let mut sums = [0.0f64; 2];
    split_sums(isa, row, &mut sums, Closure(|v: f32| v));
    let len = row.len() as f64;
    ((sums[0] / len) as f32, (sums[1] / len) as f32)
}

/// [`plane_means_with`] on the calling thread.
pub(crate) fn plane_means(row: &[f32]) -> (f32, f32) {
    plane_means_with(isa(), row)
}

/// Adds the squeeze's gradient for one row to `grad`: `(x > 0 ? grad_positive :
/// grad_negative) / len`, the means' gradients `grad_positive`, `grad_negative` scaled as in
/// [`aprelu_squeeze_backward`].
pub(crate) fn plane_squeeze_backward_add(
    row: &[f32],
    grad_positive: f32,
    grad_negative: f32,
    grad: &mut [f32],
) {
    assert_eq!(row.len(), grad.len(), "one gradient per input");
    let scale = 1.0 / row.len() as f32;
    let (gp, gn) = (grad_positive * scale, grad_negative * scale);
    let add = Closure(move |v: f32, g: f32| g + if v > 0.0 { gp } else { gn });
    zip_in_place(isa(), row, grad, add);
}

// `sums` gains `Σ max(x, 0)` and `Σ min(x, 0)` (x = 0 counts as negative, where the reference's
// gradient goes), in 16 f32 lanes over blocks of 1024 and the blocks in f64. `_unused` only
// satisfies `simd_loop!`.
simd_loop!(split_sums, (x: &[f32], sums: &mut [f64; 2]), _unused: Unary, {
    const LANES: usize = 16;
    for block in x.chunks(1024) {
        let mut positive = [0.0f32; LANES];
        let mut negative = [0.0f32; LANES];
        let mut xs = block.chunks_exact(LANES);
        for xl in &mut xs {
            let xl: &[f32; LANES] = xl.try_into().expect("exact chunk");
            for j in 0..LANES {
                let v = xl[j];
                // -0.0 leaves a sum unchanged, so LLVM adds under a mask (see `PreluRule`).
                let is_positive = v > 0.0;
                positive[j] += if is_positive { v } else { -0.0 };
                negative[j] += if is_positive { -0.0 } else { v };
            }
        }
        let mut p = positive.iter().map(|&l| l as f64).sum::<f64>();
        let mut n = negative.iter().map(|&l| l as f64).sum::<f64>();
        for &v in xs.remainder() {
            if v > 0.0 {
                p += v as f64;
            } else {
                n += v as f64;
            }
        }
        sums[0] += p;
        sums[1] += n;
    }
});

/// The squeeze's input gradient from the gradient of its `[N, 2C]` output:
/// `(x > 0 ? grad_positive : grad_negative) / inner` along each row.
pub(crate) fn aprelu_squeeze_backward(
    input: &[f32],
    grad: &[f32],
    layout: SampleChannels,
    output: &mut [MaybeUninit<f32>],
) {
    let isa = isa();
    let (channels, inner) = (layout.channels, layout.inner);
    let per_task = layout.rows_per_task();
    let scale = 1.0 / inner as f32;
    // The gradients of the two means of row `r`, already divided by the row length.
    let row_grads = |r: usize| {
        let (sample, channel) = (r / channels, r % channels);
        let base = sample * 2 * channels + channel;
        (grad[base] * scale, grad[base + channels] * scale)
    };
    output
        .par_chunks_mut(per_task * inner)
        .zip(input.par_chunks(per_task * inner))
        .enumerate()
        .for_each(|(task, (out, x))| {
            let first = task * per_task;
            for (i, (o, row)) in out.chunks_mut(inner).zip(x.chunks(inner)).enumerate() {
                let (gp, gn) = row_grads(first + i);
                if inner == 1 {
                    o[0].write(if row[0] > 0.0 { gp } else { gn });
                } else {
                    map_into(isa, row, o, Closure(move |v| if v > 0.0 { gp } else { gn }));
                }
            }
        });
}

/// The reference's `max(x, 0) + α · min(x, 0)`, literally: a non-finite α makes positive
/// inputs NaN too (α · 0), as in PyTorch, where `x > 0 ? x : α x` would hide it.
#[inline(always)]
fn positive_plus_scaled_negative(v: f32, a: f32) -> f32 {
    let (positive, negative) = if v > 0.0 { (v, 0.0) } else { (0.0, v) };
    positive + a * negative
}

/// `max(x, 0) + α · min(x, 0)` with one slope α per row (sample and channel).
pub(crate) fn aprelu_apply(
    input: &[f32],
    slopes: &[f32],
    layout: SampleChannels,
    output: &mut [MaybeUninit<f32>],
) {
    let isa = isa();
    let inner = layout.inner;
    let per_task = layout.rows_per_task();
    output
        .par_chunks_mut(per_task * inner)
        .zip(input.par_chunks(per_task * inner))
        .zip(slopes.par_chunks(per_task))
        .for_each(|((out, x), slopes)| {
            if inner == 1 {
                return zip_into(isa, x, slopes, out, Closure(positive_plus_scaled_negative));
            }
            for ((o, row), &a) in out.chunks_mut(inner).zip(x.chunks(inner)).zip(slopes) {
                let f = move |v| positive_plus_scaled_negative(v, a);
                map_into(isa, row, o, Closure(f));
            }
        });
}

/// The backward of [`aprelu_apply`]: the input gradient `x > 0 ? grad : α grad` in place of
/// `grad`, and returns the slopes' gradient `Σ min(x, 0) · grad` per row, both from one pass.
pub(crate) fn aprelu_apply_backward(
    input: &[f32],
    slopes: &[f32],
    layout: SampleChannels,
    grad: &mut [f32],
) -> Vec<f32> {
    let isa = isa();
    let inner = layout.inner;
    let per_task = layout.rows_per_task();
    let mut slope_grad = vec![0.0f32; layout.rows()];
    slope_grad
        .par_chunks_mut(per_task)
        .zip(grad.par_chunks_mut(per_task * inner))
        .zip(input.par_chunks(per_task * inner))
        .zip(slopes.par_chunks(per_task))
        .for_each(|(((slope_grad, g), x), slopes)| {
            if inner == 1 {
                return elementwise_slopes_backward(isa, x, slopes, g, slope_grad, Closure(|v| v));
            }
            let rows = g.chunks_mut(inner).zip(x.chunks(inner));
            for ((da, (g_row, x_row)), &a) in slope_grad.iter_mut().zip(rows).zip(slopes) {
                let mut sum = 0.0f64;
                slope_backward_run(isa, x_row, g_row, &mut sum, AprReluRule(a));
                *da = sum as f32;
            }
        });
    slope_grad
}

// [N, C] (rows of one element): both gradients element by element.
simd_loop!(elementwise_slopes_backward,
    (x: &[f32], slopes: &[f32], grad: &mut [f32], slope_grad: &mut [f32]), _unused: Unary, {
    for (((g, da), &v), &a) in grad.iter_mut().zip(slope_grad.iter_mut()).zip(x).zip(slopes) {
        let (gv, rule) = (*g, AprReluRule(a));
        *da = rule.term(v, gv);
        *g = if v > 0.0 { gv } else { rule.scaled(gv) };
    }
});
