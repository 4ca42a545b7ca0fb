//! The spatial max's forward with each output plane handed to a consumer instead of written
//! to a tensor ([`forward_each`]), for other crates' fused layers (`fused::planes`).

use super::spatial_max::{
    Planes, combine, convolve, funnel, funnel_coded, funnel_in_place, unpack,
};
use crate::fused::kernels::depthwise3x3::with_scratch;
use crate::fused::kernels::loops::{assume_init, isa};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The forward with each output plane handed to `each`, together with the item of `outputs`
/// for that plane (`N·C` items in plane order), instead of written to a tensor: for a fused
/// layer that consumes the output plane by plane while it is in cache (the models' FReLU +
/// max-pool); the plane lives in the thread's scratch. The statistics are `running` `[C, 2]`
/// (mean, variance) or, without them, the batch's own; with `conv` (as long as `input`) the
/// depthwise convolution is kept there for [`backward`](super::spatial_max_backward::backward), every
/// element written. Returns the statistics used, `[C, 2]` row-major (the batch's mean and
/// biased variance when computed).
///
/// With the batch's statistics and `conv`, `each` also gets a plane of codes for the backward's
/// first pass: a consumer that keeps them at the only positions whose gradient can be non-zero
/// hands them back through [`PlaneGrads::with_kept`](super::spatial_max_backward::PlaneGrads), and the
/// first pass then reads those instead of the dense gradient, `x` and the convolution.
///
/// # Panics
/// When the lengths do not match `planes`.
#[allow(clippy::too_many_arguments)]
pub fn forward_each<T: Send>(
    input: &[f32],
    parameters: &[f32],
    running: Option<&[f32]>,
    planes: Planes,
    epsilon: f32,
    conv: Option<&mut [MaybeUninit<f32>]>,
    outputs: impl IndexedParallelIterator<Item = T>,
    each: impl Fn(T, &[f32], Option<&[f32]>) + Sync,
) -> Vec<f32> {
    planes.check(input, parameters);
    assert!(conv.as_ref().is_none_or(|conv| conv.len() == input.len()));
    assert!(running.is_none_or(|running| running.len() == 2 * planes.channels));
    let isa = isa();
    let plane = planes.plane();
    let (running, conv) = match (running, conv) {
        (Some(running), None) => {
            // Evaluation: each plane convolved, normalised, compared and handed on in cache.
            let channels = unpack(parameters, running, planes, epsilon);
            input
                .par_chunks(plane)
                .zip(outputs)
                .enumerate()
                .for_each(|(index, (x, item))| {
                    let c = channels[index % planes.channels];
                    with_scratch(|scratch| {
                        let out =
                            scratch.convolve_in_scratch(isa, x, planes.width, &c.weights, c.bias);
                        funnel_in_place(isa, x, c, out, ());
                        each(item, out, None);
                    });
                });
            return running.to_vec();
        }
        (running, Some(conv)) => (running, conv),
        // Batch statistics with nowhere to keep the convolution: a buffer of this call's.
        (running, None) => {
            let mut kept = Vec::with_capacity(input.len());
            let statistics = forward_each(
                input,
                parameters,
                running,
                planes,
                epsilon,
                Some(&mut kept.spare_capacity_mut()[..input.len()]),
                outputs,
                each,
            );
            return statistics;
        }
    };
    let batch = running.is_none();
    let per_plane = convolve(input, parameters, planes, batch, conv);
    let statistics = running.map_or_else(|| combine(&per_plane, planes), <[f32]>::to_vec);
    let channels = unpack(parameters, &statistics, planes, epsilon);
    // SAFETY: `convolve` wrote every element.
    let conv = unsafe { assume_init(conv) };
    input
        .par_chunks(plane)
        .zip(conv.par_chunks(plane))
        .zip(outputs)
        .enumerate()
        .for_each(|(index, ((x, conv), item))| {
            let c = channels[index % planes.channels];
            with_scratch(|scratch| {
                let (out, codes) = scratch.output_plane(plane);
                if batch {
                    funnel_coded(isa, x, conv, c, out, codes, ());
                    // SAFETY: `funnel_coded` wrote every element of the plane.
                    each(item, unsafe { assume_init(out) }, Some(codes));
                } else {
                    funnel(isa, x, conv, c, out, ());
                    // SAFETY: `funnel` wrote every element of the plane.
                    each(item, unsafe { assume_init(out) }, None);
                }
            });
        });
    statistics
}
