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

use super::squeeze::{BLOCK, empty_like};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

mod backward;
mod shared;
pub(super) use backward::backward;
use shared::{condition, dims, geometry, normalised_condition};

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
    let blocks = plane.div_ceil(BLOCK);
    let mut total = zero;
    for n in 0..samples {
        let start = (n * channels + channel) * plane;
        for block in 0..blocks {
            let from = start + block * BLOCK;
            let to = select(from + BLOCK < start + plane, from + BLOCK, start + plane);
            let mut sum = zero;
            for p in from..to {
                sum += values[p];
            }
            total += sum;
        }
    }
    let count = F::cast_from(samples * plane);
    let mean = total / count;
    let mut squares = zero;
    for n in 0..samples {
        let start = (n * channels + channel) * plane;
        for block in 0..blocks {
            let from = start + block * BLOCK;
            let to = select(from + BLOCK < start + plane, from + BLOCK, start + plane);
            let mut sum = zero;
            for p in from..to {
                let d = values[p] - mean;
                sum += d * d;
            }
            squares += sum;
        }
    }
    statistics[2 * channel] = mean;
    statistics[2 * channel + 1] = squares / count;
}

#[cube(launch)]
fn forward_kernel<F: Float>(
    x: &Tensor<F>,
    parameters: &Tensor<F>,
    statistics: &Tensor<F>,
    output: &mut Tensor<F>,
    channels: usize,
    height: usize,
    width: usize,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let pos = ABSOLUTE_POS;
    let (_, z) = normalised_condition::<F>(
        x, parameters, statistics, pos, channels, height, width, epsilon,
    );
    let v = x[pos];
    let tie = (v + z) * F::new(0.5);
    output[pos] = select(z > v, z, select(z < v, v, tie));
}

pub(super) fn statistics(input: CubeTensor, parameters: CubeTensor) -> CubeTensor {
    let (input, parameters) = (into_contiguous(input), into_contiguous(parameters));
    let (samples, channels, height, width) = dims(&input);
    let elements = input.meta.shape().num_elements();
    let dtype = dtype_to_storage_type(input.dtype);
    let conv = empty_like(&input, input.meta.shape().clone());
    let (count, dim) = geometry(&input, elements);
    condition_kernel::launch(
        &conv.client,
        count,
        dim,
        input.clone().into_tensor_arg(),
        parameters.into_tensor_arg(),
        conv.clone().into_tensor_arg(),
        channels,
        height,
        width,
        dtype,
    );
    let statistics = empty_like(&input, Shape::new([channels, 2]));
    let (count, dim) = geometry(&input, channels);
    statistics_kernel::launch(
        &statistics.client,
        count,
        dim,
        conv.into_tensor_arg(),
        statistics.clone().into_tensor_arg(),
        samples,
        channels,
        height * width,
        dtype,
    );
    statistics
}

pub(super) fn forward(
    input: CubeTensor,
    parameters: CubeTensor,
    statistics: CubeTensor,
    epsilon: f32,
) -> CubeTensor {
    let (input, parameters) = (into_contiguous(input), into_contiguous(parameters));
    let statistics = into_contiguous(statistics);
    let (_, channels, height, width) = dims(&input);
    let output = empty_like(&input, input.meta.shape().clone());
    let (count, dim) = geometry(&input, input.meta.shape().num_elements());
    let dtype = dtype_to_storage_type(input.dtype);
    forward_kernel::launch(
        &output.client,
        count,
        dim,
        input.into_tensor_arg(),
        parameters.into_tensor_arg(),
        statistics.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        channels,
        height,
        width,
        epsilon,
        dtype,
    );
    output
}
