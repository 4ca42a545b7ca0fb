//! The vector width of a Cube kernel's loads.

use burn_cubecl::tensor::CubeTensor;

/// The widest vector the device loads efficiently that divides `run`, the length of the
/// contiguous runs a kernel must not split across vectors (the whole tensor for the
/// element-wise kernels, a row for the per-row ones); 1 when none does.
pub(super) fn vector_size(tensor: &CubeTensor, run: usize) -> usize {
    tensor
        .client
        .io_optimized_vector_sizes(tensor.dtype.size())
        .filter(|&size| run.is_multiple_of(size))
        .max()
        .unwrap_or(1)
}
