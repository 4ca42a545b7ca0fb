//! APReLU's squeeze on the Cube backends, as the Flex kernels (`fused/kernels/squeeze.rs`):
//!
//! - `squeeze_kernel`: one unit per row (one sample's channel), the row's means of `max(x, 0)`
//!   and `min(x, 0)`.
//! - `squeeze_backward_kernel`: one unit per vector of up to 4 elements (the widest that
//!   divides the row, so it lies in one row).

use super::vector::vector_size;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::{calculate_cube_count_elemwise, prelude::*};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

/// Elements summed apart before joining a row's total: a long row summed serially in f32
/// drifts from the composite's tree reduction by more than the tests allow.
pub(super) const BLOCK: usize = 32;

/// `summary` `[N, 2C]` (`channels` = C): each row's mean of `max(x, 0)`, then of `min(x, 0)`.
#[cube(launch)]
fn squeeze_kernel<F: Float>(
    input: &Tensor<F>,
    summary: &mut Tensor<F>,
    rows: usize,
    row_len: usize,
    channels: usize,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= rows {
        terminate!();
    }
    let zero = F::new(0.0);
    let row = ABSOLUTE_POS;
    let start = row * row_len;
    let end = start + row_len;
    let blocks = row_len.div_ceil(BLOCK);
    let mut first = zero;
    let mut second = zero;
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
    let count = F::cast_from(row_len);
    let sample = row / channels;
    let channel = row % channels;
    summary[sample * 2 * channels + channel] = first / count;
    summary[sample * 2 * channels + channels + channel] = second / count;
}

/// The squeeze's input gradient: `(x > 0 ? grad_positive : grad_negative) / inner`, from the
/// gradient `grad` `[N, 2C]` of its output.
#[cube(launch)]
fn squeeze_backward_kernel<F: Float, N: Size>(
    input: &Tensor<Vector<F, N>>,
    grad: &Tensor<F>,
    output: &mut Tensor<Vector<F, N>>,
    inner: usize,
    channels: usize,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let zero = Vector::<F, N>::new(F::new(0.0));
    let positive = input[ABSOLUTE_POS].greater_than(&zero);
    let row = ABSOLUTE_POS * input.vector_size() / inner;
    let sample = row / channels;
    let channel = row % channels;
    let base = sample * 2 * channels + channel;
    let g_positive = Vector::<F, N>::new(grad[base]);
    let g_negative = Vector::<F, N>::new(grad[base + channels]);
    let count = Vector::<F, N>::new(F::cast_from(inner));
    output[ABSOLUTE_POS] = select_many(positive, g_positive, g_negative) / count;
}

/// A new contiguous tensor on `tensor`'s device, with its dtype.
pub(super) fn empty_like(tensor: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_contiguous_dtype(
        tensor.client.clone(),
        tensor.device.clone(),
        shape,
        tensor.dtype,
    )
}

/// `[N, C, inner]` of a `[N, C, ...]` tensor.
fn sample_channels(tensor: &CubeTensor) -> (usize, usize, usize) {
    let shape = tensor.meta.shape();
    assert!(shape.num_dims() >= 2, "[N, C, ...]");
    let inner = (2..shape.num_dims()).map(|d| shape[d]).product::<usize>();
    (shape[0], shape[1], inner.max(1))
}

pub(super) fn aprelu_squeeze(input: CubeTensor) -> CubeTensor {
    let (samples, channels, inner) = sample_channels(&input);
    let input = into_contiguous(input);
    let rows = samples * channels;
    let summary = empty_like(&input, Shape::new([samples, 2 * channels]));
    let cube_dim = CubeDim::new(&input.client, rows);
    let cube_count = calculate_cube_count_elemwise(&input.client, rows, cube_dim);
    let dtype = input.dtype;
    squeeze_kernel::launch(
        &summary.client,
        cube_count,
        cube_dim,
        input.into_tensor_arg(),
        summary.clone().into_tensor_arg(),
        rows,
        inner,
        channels.max(1),
        dtype_to_storage_type(dtype),
    );
    summary
}

pub(super) fn aprelu_squeeze_backward(input: CubeTensor, grad: CubeTensor) -> CubeTensor {
    let (_, channels, inner) = sample_channels(&input);
    let input = into_contiguous(input);
    let grad = into_contiguous(grad);
    let output = empty_like(&input, input.meta.shape().clone());
    let elements = input.meta.shape().num_elements();
    let vector_size = vector_size(&input, inner);
    let units = elements / vector_size;
    let cube_dim = CubeDim::new(&input.client, units);
    let cube_count = calculate_cube_count_elemwise(&input.client, units, cube_dim);
    let dtype = input.dtype;
    squeeze_backward_kernel::launch(
        &output.client,
        cube_count,
        cube_dim,
        vector_size,
        input.into_tensor_arg(),
        grad.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        inner,
        channels.max(1),
        dtype_to_storage_type(dtype),
    );
    output
}
