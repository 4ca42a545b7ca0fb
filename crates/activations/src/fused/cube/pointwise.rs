//! The element-wise Cube kernel of any [`Formula`]: forward or backward, on vectors of up to 4
//! lanes (the widest the device loads efficiently that divides the length; 1 otherwise), so
//! each unit moves 16 bytes per tensor. Its body is the formula itself, traced (`trace.rs`).

use super::super::formula::{Formula, MAX_PARAMETERS};
use super::trace;
use super::vector::vector_size;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::{calculate_cube_count_elemwise, prelude::*};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

/// A formula's Cube kernel: forward (no gradient) or backward, with its parameters.
pub(crate) type Launch = fn([f32; MAX_PARAMETERS], CubeTensor, Option<CubeTensor>) -> CubeTensor;

#[cube(launch)]
fn pointwise_kernel<F: Float, N: Size, O: Formula>(
    saved: &Tensor<Vector<F, N>>,
    grad: &Tensor<Vector<F, N>>,
    output: &mut Tensor<Vector<F, N>>,
    p0: f32,
    p1: f32,
    p2: f32,
    p3: f32,
    #[comptime] backward: bool,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let p0 = F::cast_from(p0);
    let p1 = F::cast_from(p1);
    let p2 = F::cast_from(p2);
    let p3 = F::cast_from(p3);
    if comptime![backward] {
        output[ABSOLUTE_POS] =
            trace::backward::<F, N, O>(saved[ABSOLUTE_POS], grad[ABSOLUTE_POS], p0, p1, p2, p3);
    } else {
        output[ABSOLUTE_POS] = trace::value::<F, N, O>(saved[ABSOLUTE_POS], p0, p1, p2, p3);
    }
}

/// Runs `O`'s kernel over contiguous `saved` (and `grad` for the backward) into a new tensor.
pub(crate) fn launch<O: Formula>(
    parameters: [f32; MAX_PARAMETERS],
    saved: CubeTensor,
    grad: Option<CubeTensor>,
) -> CubeTensor {
    // Pointwise::new keeps formulas with more parameters off this kernel.
    let [p0, p1, p2, p3] = [0, 1, 2, 3].map(|k| parameters[k]);
    let saved = into_contiguous(saved);
    let grad = grad.map(into_contiguous);
    let shape = saved.meta.shape().clone();
    let output = empty_device_contiguous_dtype(
        saved.client.clone(),
        saved.device.clone(),
        shape.clone(),
        saved.dtype,
    );
    let elements = shape.num_elements();
    let vector_size = vector_size(&saved, elements);
    let units = elements / vector_size;
    let cube_dim = CubeDim::new(&saved.client, units);
    let cube_count = calculate_cube_count_elemwise(&saved.client, units, cube_dim);
    let dtype = saved.dtype;
    let backward = grad.is_some();
    let grad = grad.unwrap_or_else(|| saved.clone());
    pointwise_kernel::launch::<O>(
        &output.client,
        cube_count,
        cube_dim,
        vector_size,
        saved.into_tensor_arg(),
        grad.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        p0,
        p1,
        p2,
        p3,
        backward,
        dtype_to_storage_type(dtype),
    );
    output
}
