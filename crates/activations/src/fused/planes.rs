//! FReLU's spatial max ([`super::spatial_max`]) on slices, for fused layers of other crates
//! that consume its output, or produce its output gradient, one plane at a time while the
//! plane is in cache: the models' FReLU + 2×2 max-pool, whose forward pools each output plane
//! as it is made and whose backward rebuilds each plane's gradient from the pooled one, so that
//! neither FReLU's output nor its dense gradient goes to memory. Both spread the planes over
//! rayon's threads; the callbacks run on those threads.

use super::kernels::spatial_max;
pub use super::kernels::spatial_max::{PlaneGrads, Planes, ROW};
use rayon::iter::IndexedParallelIterator;
use std::mem::MaybeUninit;

/// The forward of [`super::spatial_max`] on `input` `[N, C, H, W]` with `parameters`
/// `[C, ROW]`, each output plane handed to `each` together with the item of `outputs` for that
/// plane (in plane order, `N·C` items). The statistics are `running` `[C, 2]` (mean, variance)
/// or, without them, the batch's own; with `conv` (as long as `input`) the depthwise
/// convolution is kept there for [`spatial_max_backward`], every element written. Returns the
/// statistics used, `[C, 2]` row-major (the batch's mean and biased variance when computed).
///
/// # Panics
/// When the lengths do not match `planes`.
#[allow(clippy::too_many_arguments)]
pub fn spatial_max_forward_each<T: Send>(
    input: &[f32],
    parameters: &[f32],
    running: Option<&[f32]>,
    planes: Planes,
    epsilon: f32,
    conv: Option<&mut [MaybeUninit<f32>]>,
    outputs: impl IndexedParallelIterator<Item = T>,
    each: impl Fn(T, &[f32]) + Sync,
) -> Vec<f32> {
    check(input, parameters, planes);
    assert!(conv.as_ref().is_none_or(|conv| conv.len() == input.len()));
    assert!(running.is_none_or(|running| running.len() == 2 * planes.channels));
    spatial_max::forward_each(
        input, parameters, running, planes, epsilon, conv, outputs, each,
    )
}

/// The backward of [`super::spatial_max`]: the input gradient into `input_grad` (every element
/// written), and returns the parameters' gradient `[C, ROW]`, from the input, the convolution
/// [`spatial_max_forward_each`] kept, the statistics it returned and the output gradient plane
/// by plane (`grad`). With `batch_statistics` the gradient flows through the batch statistics
/// as through a training-mode BatchNorm. Reduced in a fixed order: bit-identical across runs.
///
/// # Panics
/// When the lengths do not match `planes`.
#[allow(clippy::too_many_arguments)]
pub fn spatial_max_backward(
    input: &[f32],
    conv: &[f32],
    parameters: &[f32],
    statistics: &[f32],
    grad: &(impl PlaneGrads + ?Sized),
    planes: Planes,
    epsilon: f32,
    batch_statistics: bool,
    input_grad: &mut [MaybeUninit<f32>],
) -> Vec<f32> {
    check(input, parameters, planes);
    assert!(conv.len() == input.len() && input_grad.len() == input.len());
    assert_eq!(statistics.len(), 2 * planes.channels);
    spatial_max::backward(
        input,
        conv,
        parameters,
        statistics,
        grad,
        planes,
        epsilon,
        batch_statistics,
        input_grad,
    )
}

fn check(input: &[f32], parameters: &[f32], planes: Planes) {
    let Planes {
        samples,
        channels,
        height,
        width,
    } = planes;
    assert_eq!(
        input.len(),
        samples * channels * height * width,
        "[N, C, H, W]"
    );
    assert_eq!(parameters.len(), channels * ROW, "[C, ROW] parameters");
}
