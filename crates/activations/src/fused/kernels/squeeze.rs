//! APReLU's squeeze: per sample and channel, the means of `max(x, 0)` and of `min(x, 0)` over
//! the channel's plane, in one pass, and its backward. (Its apply is a channel-wise formula:
//! `channel.rs`.)

use super::loops::{CHUNK, Closure, Isa, Unary, isa, map_into, simd_loop, zip_in_place};
use rayon::prelude::*;
use std::mem::MaybeUninit;

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
                // -0.0 leaves a sum unchanged, so LLVM adds under a mask (see `LeakyReluFormula`'s slope gradient).
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
