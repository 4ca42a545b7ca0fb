//! The spatial max (`max(x, γ·(conv(x) − μ)/√(σ² + ε) + β)`, FReLU's funnel condition) on the
//! Cube backends, as the Flex kernels (`fused/kernels/spatial_max.rs`):
//!
//! - element kernels (one unit per element): the condition (the depthwise 3×3 convolution, its
//!   taps read with zero padding), the forward, the split of the gradient at the maximum, the
//!   gradient reaching the convolution, and the convolution's input gradient (a gather of the
//!   nine taps it fed);
//! - channel kernels (one unit per channel, its elements in sample order, summed in blocks of
//!   [`BLOCK`]): the batch statistics, the sums the normalisation's backward needs, and the
//!   parameters' gradient `[C, 12]`. One unit per channel keeps every sum in a fixed order:
//!   bit-identical gradients across runs.

use super::squeeze::empty_like;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

mod backward;
mod shared;
pub(super) use backward::backward;
use shared::{channel_sum, condition, dims, geometry, normalised};

#[cube(launch)]
fn condition_kernel<F: Float>(
    x: &Tensor<F>,
    parameters: &Tensor<F>,
    output: &mut Tensor<F>,
    channels: usize,
    height: usize,
    width: usize,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    output[ABSOLUTE_POS] = condition::<F>(x, parameters, ABSOLUTE_POS, channels, height, width);
}

/// One unit per channel: the mean and the biased variance of `values` over its elements.
#[cube(launch)]
fn statistics_kernel<F: Float>(
    values: &Tensor<F>,
    statistics: &mut Tensor<F>,
    samples: usize,
    channels: usize,
    plane: usize,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= channels {
        terminate!();
    }
    let channel = ABSOLUTE_POS;
    let zero = F::new(0.0);
    let total = channel_sum::<F>(
        values, values, zero, samples, channels, channel, plane, false, false,
    );
    let count = F::cast_from(samples * plane);
    let mean = total / count;
    let squares = channel_sum::<F>(
        values, values, mean, samples, channels, channel, plane, true, false,
    );
    statistics[2 * channel] = mean;
    statistics[2 * channel + 1] = squares / count;
}

/// The forward: with `kept`, from the convolution `conv` (training: it was computed for the
/// statistics and is kept for the backward); otherwise the convolution of `x` computed here
/// (evaluation: nothing keeps it; `conv` is not read).
#[cube(launch)]
fn forward_kernel<F: Float>(
    x: &Tensor<F>,
    conv: &Tensor<F>,
    parameters: &Tensor<F>,
    statistics: &Tensor<F>,
    output: &mut Tensor<F>,
    channels: usize,
    height: usize,
    width: usize,
    epsilon: f32,
    #[comptime] kept: bool,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let pos = ABSOLUTE_POS;
    let channel = (pos / (height * width)) % channels;
    let raw = if comptime![kept] {
        conv[pos]
    } else {
        condition::<F>(x, parameters, pos, channels, height, width)
    };
    let (_, z) = normalised::<F>(raw, parameters, statistics, channel, epsilon);
    let v = x[pos];
    let tie = (v + z) * F::new(0.5);
    output[pos] = select(z > v, z, select(z < v, v, tie));
}

/// The forward (see `FusedActivationOps::fused_spatial_max`): the output, the statistics used
/// and, with `keep`, the convolution for the backward.
pub(super) fn forward(
    input: CubeTensor,
    parameters: CubeTensor,
    running: Option<CubeTensor>,
    epsilon: f32,
    keep: bool,
) -> (CubeTensor, CubeTensor, Option<CubeTensor>) {
    let (input, parameters) = (into_contiguous(input), into_contiguous(parameters));
    let running = running.map(into_contiguous);
    let (samples, channels, height, width) = dims(&input);
    let shape = input.meta.shape().clone();
    let elements = shape.num_elements();
    let dtype = dtype_to_storage_type(input.dtype);
    let output = empty_like(&input, shape.clone());
    let (count, dim) = geometry(&input, elements);
    let launch = |conv: &CubeTensor, statistics: &CubeTensor, kept: bool| {
        forward_kernel::launch(
            &output.client,
            count.clone(),
            dim,
            input.clone().into_tensor_arg(),
            conv.clone().into_tensor_arg(),
            parameters.clone().into_tensor_arg(),
            statistics.clone().into_tensor_arg(),
            output.clone().into_tensor_arg(),
            channels,
            height,
            width,
            epsilon,
            kept,
            dtype,
        )
    };
    if let (Some(running), false) = (&running, keep) {
        launch(&input, running, false);
        return (output, running.clone(), None);
    }
    let conv = empty_like(&input, shape);
    condition_kernel::launch(
        &conv.client,
        count.clone(),
        dim,
        input.clone().into_tensor_arg(),
        parameters.clone().into_tensor_arg(),
        conv.clone().into_tensor_arg(),
        channels,
        height,
        width,
        dtype,
    );
    let statistics = running.unwrap_or_else(|| {
        let statistics = empty_like(&input, Shape::new([channels, 2]));
        let (count, dim) = geometry(&input, channels);
        statistics_kernel::launch(
            &statistics.client,
            count,
            dim,
            conv.clone().into_tensor_arg(),
            statistics.clone().into_tensor_arg(),
            samples,
            channels,
            height * width,
            dtype,
        );
        statistics
    });
    launch(&conv, &statistics, true);
    (output, statistics, keep.then_some(conv))
}
