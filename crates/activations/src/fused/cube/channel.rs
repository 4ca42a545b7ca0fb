//! The channel-wise kernels of any [`LearnedFormula`] on the Cube backends, as the Flex kernels
//! (`fused/kernels/channel.rs`); their bodies are the formula traced (`trace.rs`).
//!
//! - `channel_forward_kernel`: one unit per vector of up to 4 elements (the widest that divides
//!   the row, so it shares one row of parameters).
//! - `channel_backward_kernel`: one unit per run of elements that share one row of parameters
//!   (a sample's channel; 256 elements when one row serves the whole tensor). It writes the
//!   input gradient and sums each parameter's gradient over its run in blocks of 32, in a
//!   fixed order; Burn's reduction then sums the runs of one channel over the batch.

use super::super::formula::{Formula, LearnedFormula};
use super::squeeze::{BLOCK, empty_like};
use super::trace;
use super::vector::vector_size;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::{calculate_cube_count_elemwise, prelude::*};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

/// A formula's channel-wise forward: `(input, parameters [rows, K]) → output`.
pub(crate) type Forward = fn(CubeTensor, CubeTensor) -> CubeTensor;
/// Its backward: `(input, parameters, grad) → (input gradient, parameters' gradient)`.
pub(crate) type Backward = fn(CubeTensor, CubeTensor, CubeTensor) -> (CubeTensor, CubeTensor);

/// Elements per run of the backward when one row of parameters serves the whole tensor:
/// enough runs to fill a device, short enough that one unit's loop stays brief.
const SHARED_RUN: usize = 256;

/// Where the parameter row of the element at `flat` starts.
#[cube]
fn row_base(flat: usize, inner: usize, rows: usize, #[comptime] count: usize) -> usize {
    ((flat / inner) % rows) * count
}

#[cube(launch)]
fn channel_forward_kernel<F: Float, N: Size, O: Formula>(
    input: &Tensor<Vector<F, N>>,
    parameters: &Tensor<F>,
    output: &mut Tensor<Vector<F, N>>,
    inner: usize,
    rows: usize,
    #[comptime] count: usize,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let base = row_base(ABSOLUTE_POS * input.vector_size(), inner, rows, count);
    output[ABSOLUTE_POS] = trace::row_value::<F, N, O>(input[ABSOLUTE_POS], parameters, base);
}

/// One unit per run of `run_len` elements (the last may be shorter); `partial[unit, k]` = the
/// run's sum of parameter `k`'s terms, in blocks of [`BLOCK`]. Launched with vectors of one lane
/// (`N` = 1), the width the traced formula is written for.
#[cube(launch)]
fn channel_backward_kernel<F: Float, N: Size, O: LearnedFormula>(
    input: &Tensor<F>,
    grad: &Tensor<F>,
    parameters: &Tensor<F>,
    input_grad: &mut Tensor<F>,
    partial: &mut Tensor<F>,
    units: usize,
    run_len: usize,
    inner: usize,
    rows: usize,
    #[comptime] count: usize,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= units {
        terminate!();
    }
    let start = ABSOLUTE_POS * run_len;
    let end = select(start + run_len < input.len(), start + run_len, input.len());
    let base = row_base(start, inner, rows, count);
    let blocks = (end - start).div_ceil(BLOCK);
    let mut totals = Array::<F>::new(count);
    let mut sums = Array::<F>::new(count);
    #[unroll]
    for k in 0..count {
        totals[k] = F::new(0.0);
    }
    for block in 0..blocks {
        let block_start = start + block * BLOCK;
        let block_end = select(block_start + BLOCK < end, block_start + BLOCK, end);
        #[unroll]
        for k in 0..count {
            sums[k] = F::new(0.0);
        }
        for i in block_start..block_end {
            let x = Vector::<F, N>::new(input[i]);
            let g = Vector::<F, N>::new(grad[i]);
            input_grad[i] =
                trace::row_backward::<F, N, O>(x, g, parameters, base, &mut sums).extract(0usize);
        }
        #[unroll]
        for k in 0..count {
            totals[k] += sums[k];
        }
    }
    let out = ABSOLUTE_POS * count;
    #[unroll]
    for k in 0..count {
        partial[out + k] = totals[k];
    }
}

/// `[rows, inner]` of `input` for parameters with `rows` rows: one row for every element, or
/// one per channel or per sample and channel of `[N, C, ...]`.
fn layout(input: &CubeTensor, parameters: &CubeTensor) -> (usize, usize) {
    let shape = input.meta.shape();
    let rows = parameters.meta.shape()[0];
    if rows == 1 {
        return (1, shape.num_elements().max(1));
    }
    let inner = (2..shape.num_dims()).map(|d| shape[d]).product::<usize>();
    (rows, inner.max(1))
}

pub(crate) fn forward<O: Formula>(input: CubeTensor, parameters: CubeTensor) -> CubeTensor {
    let input = into_contiguous(input);
    let parameters = into_contiguous(parameters);
    let (rows, inner) = layout(&input, &parameters);
    let output = empty_like(&input, input.meta.shape().clone());
    let elements = input.meta.shape().num_elements();
    let vector_size = vector_size(&input, inner);
    let units = elements / vector_size;
    let cube_dim = CubeDim::new(&input.client, units);
    let cube_count = calculate_cube_count_elemwise(&input.client, units, cube_dim);
    let dtype = input.dtype;
    channel_forward_kernel::launch::<O>(
        &output.client,
        cube_count,
        cube_dim,
        vector_size,
        input.into_tensor_arg(),
        parameters.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        inner,
        rows,
        O::PARAMETERS,
        dtype_to_storage_type(dtype),
    );
    output
}

pub(crate) fn backward<O: LearnedFormula>(
    input: CubeTensor,
    parameters: CubeTensor,
    grad: CubeTensor,
) -> (CubeTensor, CubeTensor) {
    let input = into_contiguous(input);
    let parameters = into_contiguous(parameters);
    let grad = into_contiguous(grad);
    let (rows, inner) = layout(&input, &parameters);
    let parameter_shape = parameters.meta.shape().clone();
    let elements = input.meta.shape().num_elements();
    let run_len = if rows == 1 { SHARED_RUN } else { inner };
    let units = elements.div_ceil(run_len);
    let count = O::PARAMETERS;
    let input_grad = empty_like(&input, input.meta.shape().clone());
    let partial = empty_like(&input, Shape::new([units, count]));
    let cube_dim = CubeDim::new(&input.client, units);
    let cube_count = calculate_cube_count_elemwise(&input.client, units, cube_dim);
    let dtype = input.dtype;
    channel_backward_kernel::launch::<O>(
        &partial.client,
        cube_count,
        cube_dim,
        1,
        input.into_tensor_arg(),
        grad.into_tensor_arg(),
        parameters.into_tensor_arg(),
        input_grad.clone().into_tensor_arg(),
        partial.clone().into_tensor_arg(),
        units,
        run_len,
        inner,
        rows,
        count,
        dtype_to_storage_type(dtype),
    );
    // The runs of one row of parameters: every run, or one per sample (runs are [N, C]).
    let parameter_grad = if units == rows {
        partial
    } else {
        let by_row = CubeBackend::float_reshape(partial, Shape::new([units / rows, rows, count]));
        CubeBackend::float_sum_dim(by_row, 0)
    };
    (
        input_grad,
        CubeBackend::float_reshape(parameter_grad, parameter_shape),
    )
}
