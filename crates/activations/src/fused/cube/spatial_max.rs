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

/// Values per channel in the parameter rows: nine weights, bias, `γ`, `β`.
const ROW: usize = 12;

/// `x[i + a − 1][j + b − 1]` of the plane at `base`, 0 outside it. The index wraps instead of
/// going below 0 (both arms of a select are evaluated), and the select discards it.
#[cube]
fn tap<F: Float>(
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
fn normalised_condition<F: Float>(
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

/// The split of each gradient at the maximum: the input's share into `input_grad`, the
/// condition's into `condition_grad`, and `x̂` into `normalised_out`.
#[cube(launch)]
fn split_kernel<F: Float>(
    x: &Tensor<F>,
    parameters: &Tensor<F>,
    statistics: &Tensor<F>,
    grad: &Tensor<F>,
    input_grad: &mut Tensor<F>,
    condition_grad: &mut Tensor<F>,
    normalised_out: &mut Tensor<F>,
    channels: usize,
    height: usize,
    width: usize,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= input_grad.len() {
        terminate!();
    }
    let pos = ABSOLUTE_POS;
    let (n, z) = normalised_condition::<F>(
        x, parameters, statistics, pos, channels, height, width, epsilon,
    );
    let v = x[pos];
    let g = grad[pos];
    let half = g * F::new(0.5);
    let zero = F::new(0.0);
    condition_grad[pos] = select(z > v, g, select(z < v, zero, half));
    input_grad[pos] = select(z > v, zero, select(z < v, g, half));
    normalised_out[pos] = n;
}

/// One unit per channel: `Σ condition_grad` and `Σ condition_grad·x̂`.
#[cube(launch)]
fn channel_sums_kernel<F: Float>(
    condition_grad: &Tensor<F>,
    normalised_in: &Tensor<F>,
    sums: &mut Tensor<F>,
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
    let mut first = zero;
    let mut second = zero;
    for n in 0..samples {
        let start = (n * channels + channel) * plane;
        for block in 0..blocks {
            let from = start + block * BLOCK;
            let to = select(from + BLOCK < start + plane, from + BLOCK, start + plane);
            let mut a = zero;
            let mut b = zero;
            for p in from..to {
                a += condition_grad[p];
                b += condition_grad[p] * normalised_in[p];
            }
            first += a;
            second += b;
        }
    }
    sums[2 * channel] = first;
    sums[2 * channel + 1] = second;
}

/// The gradient reaching the convolution's output; with `batch` through the batch statistics.
#[cube(launch)]
fn raw_kernel<F: Float>(
    condition_grad: &Tensor<F>,
    normalised_in: &Tensor<F>,
    parameters: &Tensor<F>,
    statistics: &Tensor<F>,
    sums: &Tensor<F>,
    raw: &mut Tensor<F>,
    channels: usize,
    plane: usize,
    count: usize,
    epsilon: f32,
    #[comptime] batch: bool,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= raw.len() {
        terminate!();
    }
    let pos = ABSOLUTE_POS;
    let channel = (pos / plane) % channels;
    let scale = parameters[channel * ROW + 10]
        / F::sqrt(statistics[2 * channel + 1] + F::cast_from(epsilon));
    let g = condition_grad[pos];
    if comptime![batch] {
        let total = F::cast_from(count);
        let mean_grad = sums[2 * channel] / total;
        let mean_normalised = sums[2 * channel + 1] / total;
        raw[pos] = scale * (g - mean_grad - normalised_in[pos] * mean_normalised);
    } else {
        raw[pos] = scale * g;
    }
}

/// The convolution's input gradient at each input element, added to `input_grad`: the nine
/// outputs it fed, `Σ w[a][b]·raw[i − a + 1][j − b + 1]`.
#[cube(launch)]
fn transposed_kernel<F: Float>(
    raw: &Tensor<F>,
    parameters: &Tensor<F>,
    input_grad: &mut Tensor<F>,
    channels: usize,
    height: usize,
    width: usize,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= input_grad.len() {
        terminate!();
    }
    let pos = ABSOLUTE_POS;
    let plane = height * width;
    let channel = (pos / plane) % channels;
    let i = (pos / width) % height;
    let j = pos % width;
    let base = pos - i * width - j;
    let row = channel * ROW;
    let mut sum = F::new(0.0);
    #[unroll]
    for a in 0..3usize {
        #[unroll]
        for b in 0..3usize {
            // The output (i − a + 1, j − b + 1): the tap (2 − a, 2 − b) of the flipped kernel.
            let value = tap::<F>(raw, base, i, j, 2 - a, 2 - b, height, width);
            sum += parameters[row + 3 * a + b] * value;
        }
    }
    input_grad[pos] += sum;
}

/// One unit per channel: the parameters' gradient row, nine weights (`Σ raw·x` at each tap),
/// bias (`Σ raw`), `γ` and `β` (the channel sums).
#[cube(launch)]
fn parameter_grads_kernel<F: Float>(
    x: &Tensor<F>,
    raw: &Tensor<F>,
    sums: &Tensor<F>,
    grads: &mut Tensor<F>,
    samples: usize,
    channels: usize,
    height: usize,
    width: usize,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= channels {
        terminate!();
    }
    let channel = ABSOLUTE_POS;
    let plane = height * width;
    let zero = F::new(0.0);
    let mut totals = Array::<F>::new(10usize);
    #[unroll]
    for k in 0..10usize {
        totals[k] = zero;
    }
    for n in 0..samples {
        let base = (n * channels + channel) * plane;
        for p in 0..plane {
            let i = p / width;
            let j = p % width;
            let g = raw[base + p];
            #[unroll]
            for a in 0..3usize {
                #[unroll]
                for b in 0..3usize {
                    totals[3 * a + b] += g * tap::<F>(x, base, i, j, a, b, height, width);
                }
            }
            totals[9] += g;
        }
    }
    let row = channel * ROW;
    #[unroll]
    for k in 0..10usize {
        grads[row + k] = totals[k];
    }
    grads[row + 10] = sums[2 * channel + 1];
    grads[row + 11] = sums[2 * channel];
}

/// `[N, C, H, W]`.
fn dims(input: &CubeTensor) -> (usize, usize, usize, usize) {
    let shape = input.meta.shape();
    assert_eq!(shape.num_dims(), 4, "the spatial max takes [N, C, H, W]");
    (shape[0], shape[1], shape[2], shape[3])
}

/// Launch geometry for one unit per each of `units`.
fn geometry(input: &CubeTensor, units: usize) -> (CubeCount, CubeDim) {
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

pub(super) fn backward(
    input: CubeTensor,
    parameters: CubeTensor,
    statistics: CubeTensor,
    grad: CubeTensor,
    epsilon: f32,
    batch: bool,
) -> (CubeTensor, CubeTensor) {
    let (input, parameters) = (into_contiguous(input), into_contiguous(parameters));
    let (statistics, grad) = (into_contiguous(statistics), into_contiguous(grad));
    let (samples, channels, height, width) = dims(&input);
    let shape = input.meta.shape().clone();
    let elements = shape.num_elements();
    let dtype = dtype_to_storage_type(input.dtype);
    let input_grad = empty_like(&input, shape.clone());
    let condition_grad = empty_like(&input, shape.clone());
    let normalised = empty_like(&input, shape.clone());
    let (element_count, element_dim) = geometry(&input, elements);
    let (channel_count, channel_dim) = geometry(&input, channels);
    split_kernel::launch(
        &input.client,
        element_count.clone(),
        element_dim,
        input.clone().into_tensor_arg(),
        parameters.clone().into_tensor_arg(),
        statistics.clone().into_tensor_arg(),
        grad.into_tensor_arg(),
        input_grad.clone().into_tensor_arg(),
        condition_grad.clone().into_tensor_arg(),
        normalised.clone().into_tensor_arg(),
        channels,
        height,
        width,
        epsilon,
        dtype,
    );
    let sums = empty_like(&input, Shape::new([channels, 2]));
    channel_sums_kernel::launch(
        &input.client,
        channel_count.clone(),
        channel_dim,
        condition_grad.clone().into_tensor_arg(),
        normalised.clone().into_tensor_arg(),
        sums.clone().into_tensor_arg(),
        samples,
        channels,
        height * width,
        dtype,
    );
    let raw = empty_like(&input, shape);
    raw_kernel::launch(
        &input.client,
        element_count.clone(),
        element_dim,
        condition_grad.into_tensor_arg(),
        normalised.into_tensor_arg(),
        parameters.clone().into_tensor_arg(),
        statistics.into_tensor_arg(),
        sums.clone().into_tensor_arg(),
        raw.clone().into_tensor_arg(),
        channels,
        height * width,
        samples * height * width,
        epsilon,
        batch,
        dtype,
    );
    transposed_kernel::launch(
        &input.client,
        element_count,
        element_dim,
        raw.clone().into_tensor_arg(),
        parameters.clone().into_tensor_arg(),
        input_grad.clone().into_tensor_arg(),
        channels,
        height,
        width,
        dtype,
    );
    let parameter_grad = empty_like(&input, parameters.meta.shape().clone());
    parameter_grads_kernel::launch(
        &parameter_grad.client,
        channel_count,
        channel_dim,
        input.into_tensor_arg(),
        raw.into_tensor_arg(),
        sums.into_tensor_arg(),
        parameter_grad.clone().into_tensor_arg(),
        samples,
        channels,
        height,
        width,
        dtype,
    );
    (input_grad, parameter_grad)
}
