//! The element-wise kernels on slices, on the calling thread (SIMD, no rayon), for fused ops of
//! other crates that already spread their work over threads: the `models` crate's conv blocks
//! apply the activation to one sample's convolution output while it is in cache.

use super::kernels::{loops, squeeze};
use super::op::Pointwise;

/// `dst.copy_from_slice(src)` for short runs (rows of small images) without a `memcpy` call per
/// run: in blocks of 8 in registers. For kernels that copy many short rows (im2col).
///
/// # Panics
/// When the slices differ in length.
#[inline(always)]
pub fn copy_short(dst: &mut [f32], src: &[f32]) {
    loops::copy_short(dst, src);
}

/// `output[i] = op(input[i])`.
///
/// # Panics
/// When the slices differ in length.
pub fn forward(op: Pointwise, input: &[f32], output: &mut [f32]) {
    (op.lowering().forward_on_thread)(op.parameters(), input, output)
}

/// `output[i] = op((input[i] − mean)·scale + shift)`, with `affine` = `[mean, scale, shift]`:
/// a BatchNorm's output through the activation in one pass, the same values as the
/// normalisation written out (in that order of operations, without fused multiply-adds) and
/// [`forward`] on it.
///
/// # Panics
/// When the slices differ in length.
pub fn forward_normalised(op: Pointwise, input: &[f32], output: &mut [f32], affine: [f32; 3]) {
    (op.lowering().forward_normalised_on_thread)(op.parameters(), input, output, affine)
}

/// `grad[i] = grad[i] · op'(x[i])`, from `saved[i]`: the input `x[i]`, or the output when
/// [`Pointwise::saves_output`].
///
/// # Panics
/// When the slices differ in length.
pub fn backward(op: Pointwise, saved: &[f32], grad: &mut [f32]) {
    (op.lowering().backward_on_thread)(op.parameters(), saved, grad)
}

/// APReLU's squeeze of one sample's channel plane: the means of `max(x, 0)` and
/// `min(x, 0)` (x = 0 and NaN count as negative), as [`super::aprelu_squeeze`] computes
/// each entry of its `[N, 2C]` summary.
pub fn aprelu_plane_means(plane: &[f32]) -> (f32, f32) {
    squeeze::plane_means(plane)
}

/// Adds the squeeze's input gradient for one channel plane to `grad`: `(x > 0 ?
/// grad_positive : grad_negative) / plane.len()`, from the gradients of the plane's two
/// means.
///
/// # Panics
/// When the slices differ in length.
pub fn aprelu_plane_squeeze_backward_add(
    plane: &[f32],
    grad_positive: f32,
    grad_negative: f32,
    grad: &mut [f32],
) {
    squeeze::plane_squeeze_backward_add(plane, grad_positive, grad_negative, grad)
}
