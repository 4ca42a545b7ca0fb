//! The element-wise kernels: a [`Formula`] on `f32`, inlined into the loops of `loops.rs`.
//! The formulas, their order of operations and their special values follow PyTorch's CPU
//! kernels (`aten/src/ATen/native/cpu/Activation.cpp`).

use super::super::formula::{Formula, MAX_PARAMETERS};
use super::loops::{
    Binary, Unary, for_each, isa, map, map_to, zip_in_place, zip_with, zip_with_into_second,
};
use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// `F`'s parameters, unpacked once before the loop (the loop body then reads them from
/// registers).
type Parameters = [f32; MAX_PARAMETERS];

/// `f(x)`.
#[derive(Clone, Copy)]
struct Forward<F>(Parameters, PhantomData<F>);
impl<F: Formula> Unary for Forward<F> {
    #[inline(always)]
    fn call(self, x: f32) -> f32 {
        F::value(self.0, x)
    }
}

/// `grad · f'(x)` with the saved tensor first.
#[derive(Clone, Copy)]
struct BackwardSavedGrad<F>(Parameters, PhantomData<F>);
impl<F: Formula> Binary for BackwardSavedGrad<F> {
    #[inline(always)]
    fn call(self, saved: f32, grad: f32) -> f32 {
        F::backward(self.0, saved, grad)
    }
}

/// `grad · f'(x)` with the gradient first.
#[derive(Clone, Copy)]
struct BackwardGradSaved<F>(Parameters, PhantomData<F>);
impl<F: Formula> Binary for BackwardGradSaved<F> {
    #[inline(always)]
    fn call(self, grad: f32, saved: f32) -> f32 {
        F::backward(self.0, saved, grad)
    }
}

/// Applies `f` element-wise, in place.
pub(crate) fn forward_in_place<F: Formula>(f: F, values: &mut [f32]) {
    for_each(values, Forward(f.parameters(), PhantomData::<F>))
}

/// Applies `f` element-wise from `input` into `output`.
pub(crate) fn forward_into<F: Formula>(f: F, input: &[f32], output: &mut [MaybeUninit<f32>]) {
    map(input, output, Forward(f.parameters(), PhantomData::<F>))
}

/// `grad[i] = f.backward(saved[i], grad[i])`.
pub(crate) fn backward_into_grad<F: Formula>(f: F, saved: &[f32], grad: &mut [f32]) {
    zip_with_into_second(
        saved,
        grad,
        BackwardSavedGrad(f.parameters(), PhantomData::<F>),
    )
}

/// `saved[i] = f.backward(saved[i], grad[i])`.
pub(crate) fn backward_into_saved<F: Formula>(f: F, saved: &mut [f32], grad: &[f32]) {
    zip_with_into_second(
        grad,
        saved,
        BackwardGradSaved(f.parameters(), PhantomData::<F>),
    )
}

/// `output[i] = f.backward(saved[i], grad[i])`.
pub(crate) fn backward_new<F: Formula>(
    f: F,
    saved: &[f32],
    grad: &[f32],
    output: &mut [MaybeUninit<f32>],
) {
    zip_with(
        saved,
        grad,
        output,
        BackwardSavedGrad(f.parameters(), PhantomData::<F>),
    )
}

/// `output[i] = f(input[i])` on the calling thread.
pub(crate) fn forward_on_thread<F: Formula>(f: F, input: &[f32], output: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "one output per input");
    map_to(
        isa(),
        input,
        output,
        Forward(f.parameters(), PhantomData::<F>),
    )
}

/// `f((x − mean)·scale + shift)`: a BatchNorm's output through `f`, in one pass.
#[derive(Clone, Copy)]
struct Normalised<F>(Parameters, [f32; 3], PhantomData<F>);
impl<F: Formula> Unary for Normalised<F> {
    #[inline(always)]
    fn call(self, x: f32) -> f32 {
        let [mean, scale, shift] = self.1;
        F::value(self.0, (x - mean) * scale + shift)
    }
}

/// `output[i] = f((input[i] − mean)·scale + shift)` on the calling thread, with `affine` =
/// `[mean, scale, shift]`.
pub(crate) fn forward_normalised_on_thread<F: Formula>(
    f: F,
    input: &[f32],
    output: &mut [f32],
    affine: [f32; 3],
) {
    assert_eq!(input.len(), output.len(), "one output per input");
    map_to(
        isa(),
        input,
        output,
        Normalised(f.parameters(), affine, PhantomData::<F>),
    )
}

/// `grad[i] = f.backward(saved[i], grad[i])` on the calling thread.
pub(crate) fn backward_on_thread<F: Formula>(f: F, saved: &[f32], grad: &mut [f32]) {
    assert_eq!(saved.len(), grad.len(), "one gradient per saved value");
    zip_in_place(
        isa(),
        saved,
        grad,
        BackwardSavedGrad(f.parameters(), PhantomData::<F>),
    )
}
