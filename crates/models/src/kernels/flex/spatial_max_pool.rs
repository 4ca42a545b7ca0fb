//! FReLU's spatial max followed by a 2×2 stride-2 max-pool (the CNN's FReLU blocks), each
//! output plane pooled while it is in cache: the forward hands every plane of the spatial max
//! ([`activations::fused::planes`]) to the pooling rows (`pool_rows.rs`), which keep each
//! window's winner (and, in training, the spatial max's code there); the backward's first pass
//! reads the pooled gradient with those codes, and its second rebuilds each plane's gradient
//! at the spatial max from the pooled gradient and the winners, in a per-thread buffer. Run as
//! two layers, FReLU's output and its dense (three-quarters zero) gradient each went to memory
//! and were read back twice.

use super::block::BlockSaved;
use super::parallel::filled_vec;
use super::pool_rows::{KeepRow, keep_row, unpool_row};
use super::pool_rows_avx512;
use activations::burn::backend::TensorMetadata;
use activations::burn::backend::flex::FlexTensor;
use activations::fused::flex_storage::{contiguous, elements, from_vec};
use activations::fused::planes::{
    PlaneGrads, Planes, spatial_max_backward, spatial_max_forward_each,
};
use rayon::iter::Either;
use rayon::prelude::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// `[N, C, H, W]`, with at least one pooling window per plane (the caller checks).
fn planes(x: &FlexTensor) -> Planes {
    let dims = x.shape();
    assert_eq!(dims.num_dims(), 4, "the spatial max takes [N, C, H, W]");
    assert!(dims[2] >= 2 && dims[3] >= 2, "a 2×2 pooling window fits");
    Planes {
        samples: dims[0],
        channels: dims[1],
        height: dims[2],
        width: dims[3],
    }
}

/// The forward: `(pooled, statistics)` and, with `keep`, the depthwise convolution and the
/// winners for the backward. Without `batch_statistics` the statistics are `running`.
pub(super) fn forward(
    x: FlexTensor,
    parameters: FlexTensor,
    running: FlexTensor,
    epsilon: f32,
    batch_statistics: bool,
    keep: bool,
) -> (FlexTensor, FlexTensor, Option<(FlexTensor, BlockSaved)>) {
    let (x, parameters, running) = (contiguous(x), contiguous(parameters), contiguous(running));
    let planes = planes(&x);
    let (out_height, out_width) = (planes.height / 2, planes.width / 2);
    let out_plane = out_height * out_width;
    let total = planes.samples * planes.channels * out_plane;
    let simd = pool_rows_avx512::available();
    let running_values = (!batch_statistics).then(|| elements(&running));
    let run = |conv: Option<&mut [MaybeUninit<f32>]>,
               pooled: &mut [MaybeUninit<f32>],
               winners: &mut [MaybeUninit<u8>],
               kept_codes: Option<&mut [MaybeUninit<f32>]>| {
        let kept_codes = match kept_codes {
            Some(kept) => Either::Left(kept.par_chunks_mut(out_plane).map(Some)),
            None => Either::Right((0..total / out_plane).into_par_iter().map(|_| None)),
        };
        let outputs = pooled
            .par_chunks_mut(out_plane)
            .zip(winners.par_chunks_mut(out_plane))
            .zip(kept_codes);
        spatial_max_forward_each(
            elements(&x),
            elements(&parameters),
            running_values,
            planes,
            epsilon,
            conv,
            outputs,
            |((pooled, winners), kept), plane, codes| {
                // Codes come with the batch's statistics and a kept convolution, exactly when
                // there is a buffer to keep them in (which must then be written in full).
                let codes = match (codes, kept) {
                    (Some(codes), Some(kept)) => Some((codes, kept)),
                    (_, None) => None,
                    (None, Some(_)) => unreachable!("the spatial max hands over codes here"),
                };
                pool_plane(simd, plane, codes, planes.width, pooled, winners);
            },
        )
    };
    let mut statistics = Vec::new();
    let mut winners = Vec::new();
    let mut conv = None;
    let mut codes = Vec::new();
    let pooled = filled_vec(total, |pooled| {
        winners = filled_vec(total, |winners| {
            if !keep {
                statistics = run(None, pooled, winners, None);
            } else if !batch_statistics {
                conv = Some(filled_vec(elements(&x).len(), |conv| {
                    statistics = run(Some(conv), pooled, winners, None);
                }));
            } else {
                // The spatial max's codes at the winners, for the backward's first pass.
                codes = filled_vec(total, |codes| {
                    conv = Some(filled_vec(elements(&x).len(), |conv| {
                        statistics = run(Some(conv), pooled, winners, Some(codes));
                    }));
                });
            }
        });
    });
    let (n, c) = (planes.samples, planes.channels);
    let pooled = from_vec(pooled, [n, c, out_height, out_width].into());
    let statistics = from_vec(statistics, [c, 2].into());
    let kept = conv.map(|conv| {
        let saved = BlockSaved::winners_and(winners, codes);
        (from_vec(conv, x.shape()), saved)
    });
    (pooled, statistics, kept)
}

thread_local! {
    /// The pooling rows' saved values, which nothing here reads.
    static SAVED_ROW: RefCell<Vec<MaybeUninit<f32>>> = const { RefCell::new(Vec::new()) };
    /// A plane's rebuilt gradient and its `(height, width)`.
    static DENSE: RefCell<((usize, usize), Vec<f32>)> = const { RefCell::new(((0, 0), Vec::new())) };
}

/// Max-pools one output plane of the spatial max (`width` wide) into `pooled`, keeping each
/// window's winner and, with `codes`, the spatial max's code there (into the second slice).
fn pool_plane(
    simd: bool,
    plane: &[f32],
    codes: Option<(&[f32], &mut [MaybeUninit<f32>])>,
    width: usize,
    pooled: &mut [MaybeUninit<f32>],
    winners: &mut [MaybeUninit<u8>],
) {
    let out_width = width / 2;
    fn rows(plane: &[f32], row: usize, width: usize) -> [&[f32]; 2] {
        let top = &plane[2 * row * width..][..width];
        [top, &plane[(2 * row + 1) * width..][..width]]
    }
    let pooled_rows = pooled
        .chunks_mut(out_width)
        .zip(winners.chunks_mut(out_width))
        .enumerate();
    match codes {
        Some((codes, kept)) => {
            for ((row, (pooled, winners)), saved) in pooled_rows.zip(kept.chunks_mut(out_width)) {
                let pre = rows(codes, row, width);
                let (post, saved) = (rows(plane, row, width), saved);
                keep_row(
                    simd,
                    KeepRow {
                        post,
                        pre,
                        pooled,
                        winners,
                        saved,
                    },
                    false,
                );
            }
        }
        None => SAVED_ROW.with(|saved| {
            let mut saved = saved.borrow_mut();
            saved.resize(out_width, MaybeUninit::uninit());
            for (row, (pooled, winners)) in pooled_rows {
                let post = rows(plane, row, width);
                let row = KeepRow {
                    post,
                    pre: post,
                    pooled,
                    winners,
                    saved: &mut saved[..],
                };
                keep_row(simd, row, true);
            }
        }),
    }
}

/// The spatial max's output gradient, plane by plane, from the pooled gradient and the
/// winners: each window's gradient at its winner, zero elsewhere (an odd last row or column
/// included, which the pooling drops).
struct PooledPlanes<'a> {
    grad: &'a [f32],
    winners: &'a [u8],
    /// The spatial max's codes at the winners, when the forward kept them (else empty).
    codes: &'a [f32],
    height: usize,
    width: usize,
    simd: bool,
}

impl PlaneGrads for PooledPlanes<'_> {
    fn with_plane<R>(&self, index: usize, len: usize, f: impl FnOnce(&[f32]) -> R) -> R {
        let (height, width) = (self.height, self.width);
        let out_width = width / 2;
        let out_plane = height / 2 * out_width;
        let grad = &self.grad[index * out_plane..][..out_plane];
        let winners = &self.winners[index * out_plane..][..out_plane];
        DENSE.with(|dense| {
            let (shape, dense) = &mut *dense.borrow_mut();
            // The unpooling writes the same positions in every plane of a shape: the rest (an
            // odd last row and column) is zeroed once per shape.
            if *shape != (height, width) || dense.len() != len {
                *shape = (height, width);
                dense.clear();
                dense.resize(len, 0.0);
            }
            for (row, (grad, winners)) in grad
                .chunks(out_width)
                .zip(winners.chunks(out_width))
                .enumerate()
            {
                let (top, bottom) = dense[2 * row * width..][..2 * width].split_at_mut(width);
                unpool_row(self.simd, grad, winners, top, bottom);
            }
            f(dense)
        })
    }

    fn with_kept<R>(&self, index: usize, f: impl FnOnce(&[f32], &[f32]) -> R) -> Option<R> {
        let out_plane = self.height / 2 * (self.width / 2);
        let codes = self.codes.get(index * out_plane..)?.get(..out_plane)?;
        Some(f(&self.grad[index * out_plane..][..out_plane], codes))
    }
}

/// The backward: `(x's gradient, the parameters' gradient)`, from what [`forward`] kept.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    x: FlexTensor,
    conv: FlexTensor,
    parameters: FlexTensor,
    statistics: FlexTensor,
    saved: &BlockSaved,
    output_grad: FlexTensor,
    epsilon: f32,
    batch_statistics: bool,
) -> (FlexTensor, FlexTensor) {
    let (x, conv, parameters) = (contiguous(x), contiguous(conv), contiguous(parameters));
    let (statistics, output_grad) = (contiguous(statistics), contiguous(output_grad));
    let planes = planes(&x);
    let grads = PooledPlanes {
        grad: elements(&output_grad),
        winners: saved.winners(),
        codes: &saved.saved,
        height: planes.height,
        width: planes.width,
        simd: pool_rows_avx512::available(),
    };
    assert_eq!(
        grads.grad.len(),
        grads.winners.len(),
        "one winner per pooled output"
    );
    assert!(
        grads.codes.is_empty() || grads.codes.len() == grads.grad.len(),
        "codes for every pooled output or none"
    );
    let mut parameter_grad = Vec::new();
    let x_grad = filled_vec(elements(&x).len(), |x_grad| {
        parameter_grad = spatial_max_backward(
            elements(&x),
            elements(&conv),
            elements(&parameters),
            elements(&statistics),
            &grads,
            planes,
            epsilon,
            batch_statistics,
            x_grad,
        );
    });
    (
        from_vec(x_grad, x.shape()),
        from_vec(parameter_grad, parameters.shape()),
    )
}
