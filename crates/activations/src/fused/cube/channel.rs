//! PReLU and APReLU on the Cube backends: the same formulas as the Flex kernels
//! (`fused/kernels/channel.rs`), in two CubeCL kernels.
//!
//! - `element_kernel`: one unit per vector of up to 4 elements (the widest that divides the
//!   row, so it shares one slope), for the passes without a reduction (PReLU's and APReLU's
//!   forward, the squeeze's backward).
//! - `row_kernel`: one unit per row (a contiguous run that shares one slope), for the passes
//!   that reduce: the squeeze's two means, and each backward that writes the input gradient
//!   and sums the slope's gradient in the same pass. PReLU's per-row partial sums are then
//!   summed over the batch by Burn's reduction.

use super::vector::vector_size;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::{calculate_cube_count_elemwise, prelude::*};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

const PRELU_FORWARD: u32 = 0;
const APRELU_APPLY: u32 = 1;
const SQUEEZE_BACKWARD: u32 = 2;

/// Elements summed apart before joining a row's total (see `row_kernel`).
const BLOCK: usize = 32;

const PRELU_BACKWARD: u32 = 0;
const APRELU_APPLY_BACKWARD: u32 = 1;
const SQUEEZE: u32 = 2;

/// One unit per vector of `N` elements (`N` divides the row, so a vector lies in one row).
/// `inner`: the row length; `channels`: PReLU's weight count (the weight of row `r` is
/// `weight[r % channels]`), or the squeeze's `C`.
#[cube(launch)]
fn element_kernel<F: Float, N: Size>(
    input: &Tensor<Vector<F, N>>,
    weight: &Tensor<F>,
    output: &mut Tensor<Vector<F, N>>,
    inner: usize,
    channels: usize,
    #[comptime] mode: u32,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let zero = Vector::<F, N>::new(F::new(0.0));
    let v = input[ABSOLUTE_POS];
    let positive = v.greater_than(&zero);
    let row = ABSOLUTE_POS * input.vector_size() / inner;
    if comptime![mode == PRELU_FORWARD] {
        let w = Vector::<F, N>::new(weight[row % channels]);
        output[ABSOLUTE_POS] = select_many(positive, v, v * w);
    } else if comptime![mode == APRELU_APPLY] {
        // max(x, 0) + α · min(x, 0), literally, as the Flex kernel.
        let a = Vector::<F, N>::new(weight[row]);
        output[ABSOLUTE_POS] = select_many(positive, v, zero) + a * select_many(positive, zero, v);
    } else {
        // `weight` is the squeeze's output gradient [N, 2C].
        let sample = row / channels;
        let channel = row % channels;
        let base = sample * 2 * channels + channel;
        let g_positive = Vector::<F, N>::new(weight[base]);
        let g_negative = Vector::<F, N>::new(weight[base + channels]);
        let count = Vector::<F, N>::new(F::cast_from(inner));
        output[ABSOLUTE_POS] = select_many(positive, g_positive, g_negative) / count;
    }
}

/// One unit per row of `row_len` elements (the last may be shorter). PReLU: `partial[r]` =
/// `Σ_{x <= 0} x · g` over the row; APReLU: `Σ min(x, 0) · g`; both write the input gradient
/// into `output`. Squeeze: the row's means of max(x, 0) and min(x, 0) into `partial` as
/// `[N, 2C]` (`channels` = C).
#[cube(launch)]
fn row_kernel<F: Float>(
    input: &Tensor<F>,
    grad: &Tensor<F>,
    weight: &Tensor<F>,
    output: &mut Tensor<F>,
    partial: &mut Tensor<F>,
    rows: usize,
    row_len: usize,
    channels: usize,
    #[comptime] mode: u32,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= rows {
        terminate!();
    }
    let zero = F::new(0.0);
    let row = ABSOLUTE_POS;
    let start = row * row_len;
    let end = select(start + row_len < input.len(), start + row_len, input.len());
    // Blocks of 32 summed apart, then the blocks: a long row summed serially in f32 drifts
    // from the composite's tree reduction by more than the tests allow.
    let blocks = (end - start).div_ceil(BLOCK);
    let mut first = zero;
    let mut second = zero;
    if comptime![mode == SQUEEZE] {
        for block in 0..blocks {
            let block_start = start + block * BLOCK;
            let block_end = select(block_start + BLOCK < end, block_start + BLOCK, end);
            let mut positive = zero;
            let mut negative = zero;
            for i in block_start..block_end {
                let v = input[i];
                positive += select(v > zero, v, zero);
                negative += select(v > zero, zero, v);
            }
            first += positive;
            second += negative;
        }
        let count = F::cast_from(end - start);
        let sample = row / channels;
        let channel = row % channels;
        partial[sample * 2 * channels + channel] = first / count;
        partial[sample * 2 * channels + channels + channel] = second / count;
    } else {
        let w = weight[row % channels];
        for block in 0..blocks {
            let block_start = start + block * BLOCK;
            let block_end = select(block_start + BLOCK < end, block_start + BLOCK, end);
            let mut sum = zero;
            for i in block_start..block_end {
                let v = input[i];
                let g = grad[i];
                if comptime![mode == PRELU_BACKWARD] {
                    sum += select(v > zero, zero, v * g);
                } else {
                    sum += select(v > zero, zero, v) * g;
                }
                output[i] = select(v > zero, g, g * w);
            }
            first += sum;
        }
        partial[row] = first;
    }
}

fn empty_like(tensor: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_contiguous_dtype(
        tensor.client.clone(),
        tensor.device.clone(),
        shape,
        tensor.dtype,
    )
}

fn launch_elements(
    input: CubeTensor,
    weight: CubeTensor,
    inner: usize,
    channels: usize,
    mode: u32,
) -> CubeTensor {
    let input = into_contiguous(input);
    let weight = into_contiguous(weight);
    let output = empty_like(&input, input.meta.shape().clone());
    let elements = input.meta.shape().num_elements();
    let vector_size = vector_size(&input, inner.max(1));
    let units = elements / vector_size;
    let cube_dim = CubeDim::new(&input.client, units);
    let cube_count = calculate_cube_count_elemwise(&input.client, units, cube_dim);
    let dtype = input.dtype;
    element_kernel::launch(
        &output.client,
        cube_count,
        cube_dim,
        vector_size,
        input.into_tensor_arg(),
        weight.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        inner.max(1),
        channels.max(1),
        mode,
        dtype_to_storage_type(dtype),
    );
    output
}

/// Runs `row_kernel`; returns the input gradient (`None` for the squeeze) and `partial`.
#[allow(clippy::too_many_arguments)]
fn launch_rows(
    input: CubeTensor,
    grad: Option<CubeTensor>,
    weight: Option<CubeTensor>,
    rows: usize,
    row_len: usize,
    channels: usize,
    partial_shape: Shape,
    mode: u32,
) -> (Option<CubeTensor>, CubeTensor) {
    let input = into_contiguous(input);
    let has_output = grad.is_some();
    // The squeeze reads neither: any tensor stands in for the unused arguments.
    let grad = grad.map(into_contiguous).unwrap_or_else(|| input.clone());
    let weight = weight.map(into_contiguous).unwrap_or_else(|| input.clone());
    let output = if has_output {
        empty_like(&input, input.meta.shape().clone())
    } else {
        empty_like(&input, Shape::new([1]))
    };
    let partial = empty_like(&input, partial_shape);
    let cube_dim = CubeDim::new(&input.client, rows);
    let cube_count = calculate_cube_count_elemwise(&input.client, rows, cube_dim);
    let dtype = input.dtype;
    row_kernel::launch(
        &partial.client,
        cube_count,
        cube_dim,
        input.into_tensor_arg(),
        grad.into_tensor_arg(),
        weight.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        partial.clone().into_tensor_arg(),
        rows,
        row_len.max(1),
        channels.max(1),
        mode,
        dtype_to_storage_type(dtype),
    );
    (has_output.then_some(output), partial)
}

/// `[N, C, inner]` of a `[N, C, ...]` tensor.
fn sample_channels(tensor: &CubeTensor) -> (usize, usize, usize) {
    let shape = tensor.meta.shape();
    assert!(shape.num_dims() >= 2, "[N, C, ...]");
    let inner = (2..shape.num_dims()).map(|d| shape[d]).product::<usize>();
    (shape[0], shape[1], inner.max(1))
}

/// Elements per row of PReLU's partial sums when one weight is shared: enough rows to fill a
/// device, short enough that one unit's loop stays brief.
const SHARED_ROW: usize = 256;

pub(super) fn prelu(input: CubeTensor, weight: CubeTensor) -> CubeTensor {
    let channels = weight.meta.shape().num_elements();
    let inner = if channels == 1 {
        input.meta.shape().num_elements()
    } else {
        sample_channels(&input).2
    };
    launch_elements(input, weight, inner, channels, PRELU_FORWARD)
}

pub(super) fn prelu_backward(
    input: CubeTensor,
    weight: CubeTensor,
    grad: CubeTensor,
) -> (CubeTensor, CubeTensor) {
    let channels = weight.meta.shape().num_elements();
    let weight_shape = weight.meta.shape().clone();
    let elements = input.meta.shape().num_elements();
    let row_len = if channels == 1 {
        SHARED_ROW
    } else {
        sample_channels(&input).2
    };
    let rows = elements.div_ceil(row_len);
    let (input_grad, partial) = launch_rows(
        input,
        Some(grad),
        Some(weight),
        rows,
        row_len,
        channels,
        Shape::new([rows]),
        PRELU_BACKWARD,
    );
    // Rows run [N, C] for one weight per channel: sum over the batch.
    let weight_grad = if channels == 1 {
        CubeBackend::float_sum(partial)
    } else {
        let by_sample =
            CubeBackend::float_reshape(partial, Shape::new([rows / channels, channels]));
        CubeBackend::float_sum_dim(by_sample, 0)
    };
    (
        input_grad.expect("a backward writes the input gradient"),
        CubeBackend::float_reshape(weight_grad, weight_shape),
    )
}

pub(super) fn aprelu_squeeze(input: CubeTensor) -> CubeTensor {
    let (samples, channels, inner) = sample_channels(&input);
    let rows = samples * channels;
    let (_, summary) = launch_rows(
        input,
        None,
        None,
        rows,
        inner,
        channels,
        Shape::new([samples, 2 * channels]),
        SQUEEZE,
    );
    summary
}

pub(super) fn aprelu_squeeze_backward(input: CubeTensor, grad: CubeTensor) -> CubeTensor {
    let (_, channels, inner) = sample_channels(&input);
    launch_elements(input, grad, inner, channels, SQUEEZE_BACKWARD)
}

pub(super) fn aprelu_apply(input: CubeTensor, slopes: CubeTensor) -> CubeTensor {
    let (_, _, inner) = sample_channels(&input);
    launch_elements(input, slopes, inner, 1, APRELU_APPLY)
}

pub(super) fn aprelu_apply_backward(
    input: CubeTensor,
    slopes: CubeTensor,
    grad: CubeTensor,
) -> (CubeTensor, CubeTensor) {
    let (samples, channels, inner) = sample_channels(&input);
    let rows = samples * channels;
    let (input_grad, slope_grad) = launch_rows(
        input,
        Some(grad),
        Some(slopes),
        rows,
        inner,
        rows,
        Shape::new([samples, channels]),
        APRELU_APPLY_BACKWARD,
    );
    (
        input_grad.expect("a backward writes the input gradient"),
        slope_grad,
    )
}
