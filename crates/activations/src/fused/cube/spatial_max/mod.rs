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
use burn_cubecl::cubecl::{calculate_cube_count_elemwise, prelude::*};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

mod backward;
pub(super) use backward::backward;

/// Values per channel in the parameter rows: nine weights, bias, `γ`, `β`.
pub(super) const ROW: usize = 12;

/// `x[i + a − 1][j + b − 1]` of the plane at `base`, 0 outside it. The index wraps instead of
/// going below 0 (both arms of a select are evaluated), and the select discards it.
#[cube]
pub(super) fn tap<F: Float>(
    x: &Tensor<F>,
    base: usize,
    i: usize,
    j: usize,
    a: usize,
    b: usize,
    height: usize,
    width: usize,
) -> F {
    let inside = i + a >= 1 && i + a <= height && j + b >= 1 && j + b <= width;
    let r = (i + a + height - 1) % height;
    let c = (j + b + width - 1) % width;
    select(inside, x[base + r * width + c], F::new(0.0))
}

/// The depthwise convolution at element `pos`: `bias + Σ w[a][b]·x[i + a − 1][j + b − 1]`, the
/// taps in row-major order.
#[cube]
fn condition<F: Float>(
    x: &Tensor<F>,
    parameters: &Tensor<F>,
    pos: usize,
    channels: usize,
    height: usize,
    width: usize,
) -> F {
    let plane = height * width;
    let channel = (pos / plane) % channels;
    let i = (pos / width) % height;
    let j = pos % width;
    let base = pos - i * width - j;
    let row = channel * ROW;
    let mut sum = parameters[row + 9];
    #[unroll]
    for a in 0..3usize {
        #[unroll]
        for b in 0..3usize {
            sum += parameters[row + 3 * a + b] * tap::<F>(x, base, i, j, a, b, height, width);
        }
    }
    sum
}

/// `(x̂, γ·x̂ + β)` at `pos`, with `x̂ = (conv(x) − μ)/√(σ² + ε)`: the normalised convolution
/// and the condition the input is compared with.
#[cube]
pub(super) fn normalised_condition<F: Float>(
    x: &Tensor<F>,
    parameters: &Tensor<F>,
    statistics: &Tensor<F>,
    pos: usize,
    channels: usize,
    height: usize,
    width: usize,
    epsilon: f32,
) -> (F, F) {
    let channel = (pos / (height * width)) % channels;
    let raw = condition::<F>(x, parameters, pos, channels, height, width);
    let variance = statistics[2 * channel + 1] + F::cast_from(epsilon);
    let n = (raw - statistics[2 * channel]) / F::sqrt(variance);
    (
        n,
        n * parameters[channel * ROW + 10] + parameters[channel * ROW + 11],
    )
}

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

/// `[N, C, H, W]`.
pub(super) fn dims(input: &CubeTensor) -> (usize, usize, usize, usize) {
    let shape = input.meta.shape();
    assert_eq!(shape.num_dims(), 4, "the spatial max takes [N, C, H, W]");
    (shape[0], shape[1], shape[2], shape[3])
}

/// Launch geometry for one unit per each of `units`.
pub(super) fn geometry(input: &CubeTensor, units: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(&input.client, units);
    (
        calculate_cube_count_elemwise(&input.client, units, cube_dim),
        cube_dim,
    )
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
