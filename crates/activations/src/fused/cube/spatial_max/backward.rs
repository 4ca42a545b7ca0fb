//! The spatial max's backward on the Cube backends: the split of each gradient at the maximum,
//! the per-channel sums of the normalisation's backward, the gradient reaching the convolution,
//! its input gradient (a gather) and the parameters' gradient (one unit per channel).

use super::super::squeeze::empty_like;
use super::shared::{ROW, channel_sum, dims, geometry, normalised, tap};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

/// The split of each gradient at the maximum: the input's share into `input_grad`, the
/// condition's into `condition_grad`, and `x̂` into `normalised_out`.
#[cube(launch)]
fn split_kernel<F: Float>(
    x: &Tensor<F>,
    conv: &Tensor<F>,
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
    let channel = (pos / (height * width)) % channels;
    let (n, z) = normalised::<F>(conv[pos], parameters, statistics, channel, epsilon);
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
    let first = channel_sum::<F>(
        condition_grad,
        condition_grad,
        zero,
        samples,
        channels,
        channel,
        plane,
        false,
        false,
    );
    let second = channel_sum::<F>(
        condition_grad,
        normalised_in,
        zero,
        samples,
        channels,
        channel,
        plane,
        false,
        true,
    );
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

pub(in crate::fused::cube) fn backward(
    input: CubeTensor,
    conv: CubeTensor,
    parameters: CubeTensor,
    statistics: CubeTensor,
    grad: CubeTensor,
    epsilon: f32,
    batch: bool,
) -> (CubeTensor, CubeTensor) {
    let (input, parameters) = (into_contiguous(input), into_contiguous(parameters));
    let (statistics, grad) = (into_contiguous(statistics), into_contiguous(grad));
    let conv = into_contiguous(conv);
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
        conv.into_tensor_arg(),
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
