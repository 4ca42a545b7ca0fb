//! The loops that run the fused activations' formulas over slices.
//!
//! Each formula is written once, as a scalar `f32` [`Formula`] in its activation's own file;
//! [`for_each`] and friends run it over a slice split across rayon's threads, each chunk
//! compiled three times (AVX-512, AVX2+FMA, baseline) and picked at run time, so LLVM turns the
//! scalar code into 16- or 8-lane SIMD. The formulas, their order of operations and their
//! special values follow PyTorch's CPU kernels (`aten/src/ATen/native/cpu/Activation.cpp`).

use super::{Formula, Pointwise};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per parallel task: large enough to amortise rayon's scheduling, small enough to
/// balance two to sixteen cores on the tensors an activation sees in training.
const CHUNK: usize = 1 << 15;

/// Runs `$body` with `$f` bound to the [`Formula`] of `$op`, one arm per variant. The
/// formulas live in the activations' own files.
macro_rules! with_formula {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            Pointwise::Relu => {
                let $f = crate::relu::ReluFormula {};
                $body
            }
            Pointwise::Sigmoid => {
                let $f = crate::sigmoid::SigmoidFormula {};
                $body
            }
            Pointwise::Tanh => {
                let $f = crate::tanh::TanhFormula {};
                $body
            }
            Pointwise::ExponentialLinear {
                alpha,
                scale,
                input_scale,
            } => {
                let $f = crate::elu::ExponentialLinearFormula::new(alpha, scale, input_scale);
                $body
            }
            Pointwise::Gelu => {
                let $f = crate::gelu::GeluFormula {};
                $body
            }
            Pointwise::GeluTanh => {
                let $f = crate::gelu::GeluTanhFormula {};
                $body
            }
            Pointwise::Silu { beta } => {
                let $f = crate::silu::SiluFormula { beta: beta as f32 };
                $body
            }
            Pointwise::Mish => {
                let $f = crate::mish::MishFormula {};
                $body
            }
            Pointwise::Softplus { beta, threshold } => {
                let $f = crate::softplus::SoftplusFormula::new(beta, threshold);
                $body
            }
            Pointwise::Softsign => {
                let $f = crate::softsign::SoftsignFormula {};
                $body
            }
            Pointwise::LogSigmoid => {
                let $f = crate::logsigmoid::LogSigmoidFormula {};
                $body
            }
            Pointwise::HardSwish => {
                let $f = crate::hardswish::HardSwishFormula {};
                $body
            }
            Pointwise::HardSigmoid => {
                let $f = crate::hardsigmoid::HardSigmoidFormula {};
                $body
            }
            Pointwise::LeakyRelu { negative_slope } => {
                let $f = crate::leaky_relu::LeakyReluFormula {
                    negative_slope: negative_slope as f32,
                };
                $body
            }
        }
    };
}

impl Pointwise {
    /// `f(x)` for one element (the loops below use the formulas directly).
    pub fn value(self, x: f32) -> f32 {
        with_formula!(self, |f| f.value(x))
    }

    /// `grad · f'(x)` for one element, from the saved input or output.
    pub fn backward(self, saved: f32, grad: f32) -> f32 {
        with_formula!(self, |f| f.backward(saved, grad))
    }

    /// Whether the backward pass needs only the output. Then the forward can overwrite its
    /// input when nothing else holds it, and the graph keeps one tensor instead of two.
    pub fn saves_output(self) -> bool {
        with_formula!(self, |f| f.saves_output())
    }
}

/// An element-wise function that the loops below inline into their SIMD bodies. Closures are
/// not enough: LLVM declines to inline a large closure (two exponentials, say) into the loop,
/// and then nothing vectorises, while `#[inline(always)]` on these methods is honoured.
pub(crate) trait Unary: Copy + Send + Sync {
    fn call(self, x: f32) -> f32;
}

pub(crate) trait Binary: Copy + Send + Sync {
    fn call(self, a: f32, b: f32) -> f32;
}

pub(crate) trait Ternary: Copy + Send + Sync {
    fn call(self, a: f32, b: f32, c: f32) -> f32;
}

/// `f.value(x)`.
#[derive(Clone, Copy)]
struct Forward<F>(F);
impl<F: Formula> Unary for Forward<F> {
    #[inline(always)]
    fn call(self, x: f32) -> f32 {
        self.0.value(x)
    }
}

/// `f.backward(saved, grad)` with the saved tensor first.
#[derive(Clone, Copy)]
struct BackwardSavedGrad<F>(F);
impl<F: Formula> Binary for BackwardSavedGrad<F> {
    #[inline(always)]
    fn call(self, saved: f32, grad: f32) -> f32 {
        self.0.backward(saved, grad)
    }
}

/// `f.backward(saved, grad)` with the gradient first.
#[derive(Clone, Copy)]
struct BackwardGradSaved<F>(F);
impl<F: Formula> Binary for BackwardGradSaved<F> {
    #[inline(always)]
    fn call(self, grad: f32, saved: f32) -> f32 {
        self.0.backward(saved, grad)
    }
}

/// A small closure (PReLU's selects), which LLVM inlines by itself.
#[derive(Clone, Copy)]
struct Closure<C>(C);
impl<C: Fn(f32) -> f32 + Copy + Send + Sync> Unary for Closure<C> {
    #[inline(always)]
    fn call(self, x: f32) -> f32 {
        (self.0)(x)
    }
}
impl<C: Fn(f32, f32) -> f32 + Copy + Send + Sync> Binary for Closure<C> {
    #[inline(always)]
    fn call(self, a: f32, b: f32) -> f32 {
        (self.0)(a, b)
    }
}
impl<C: Fn(f32, f32, f32) -> f32 + Copy + Send + Sync> Ternary for Closure<C> {
    #[inline(always)]
    fn call(self, a: f32, b: f32, c: f32) -> f32 {
        (self.0)(a, b, c)
    }
}

/// Which instruction set a chunk is compiled for, detected once per call.
#[derive(Clone, Copy)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Baseline,
}

fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// Defines a loop over slices and its three compilations. The body must be a plain indexed loop
/// over `&mut`/`&` slices (no aliasing), which LLVM vectorises once `f` is inlined.
macro_rules! simd_loop {
    ($name:ident, ($($arg:ident: $ty:ty),*), $f:ident: $fty:path, $body:block) => {
        #[inline(always)]
        fn $name<F: $fty>(isa: Isa, $($arg: $ty,)* $f: F) {
            #[inline(always)]
            fn body<F: $fty>($($arg: $ty,)* $f: F) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
            fn avx512<F: $fty>($($arg: $ty,)* $f: F) {
                body($($arg,)* $f)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2<F: $fty>($($arg: $ty,)* $f: F) {
                body($($arg,)* $f)
            }

            match isa {
                // SAFETY: `isa()` chose these variants only after detecting the features.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { avx512($($arg,)* $f) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { avx2($($arg,)* $f) },
                Isa::Baseline => body($($arg,)* $f),
            }
        }
    };
}

simd_loop!(map_in_place, (values: &mut [f32]), f: Unary, {
    for v in values.iter_mut() {
        *v = f.call(*v);
    }
});

simd_loop!(map_into, (input: &[f32], output: &mut [MaybeUninit<f32>]), f: Unary, {
    for (o, &x) in output.iter_mut().zip(input) {
        o.write(f.call(x));
    }
});

simd_loop!(zip_in_place, (other: &[f32], values: &mut [f32]), f: Binary, {
    for (v, &a) in values.iter_mut().zip(other) {
        *v = f.call(a, *v);
    }
});

simd_loop!(zip_into, (lhs: &[f32], rhs: &[f32], output: &mut [MaybeUninit<f32>]), f: Binary, {
    for ((o, &a), &b) in output.iter_mut().zip(lhs).zip(rhs) {
        o.write(f.call(a, b));
    }
});

simd_loop!(map_to, (input: &[f32], output: &mut [f32]), f: Unary, {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = f.call(x);
    }
});

/// `values[i] = f(values[i])`, in parallel chunks.
fn for_each(values: &mut [f32], f: impl Unary) {
    let isa = isa();
    if values.len() <= CHUNK {
        return map_in_place(isa, values, f);
    }
    values
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| map_in_place(isa, chunk, f));
}

/// `output[i] = f(input[i])`, in parallel chunks.
fn map(input: &[f32], output: &mut [MaybeUninit<f32>], f: impl Unary) {
    let isa = isa();
    if input.len() <= CHUNK {
        return map_into(isa, input, output, f);
    }
    output
        .par_chunks_mut(CHUNK)
        .zip(input.par_chunks(CHUNK))
        .for_each(|(o, x)| map_into(isa, x, o, f));
}

/// `values[i] = f(other[i], values[i])`, in parallel chunks.
fn zip_with_into_second(other: &[f32], values: &mut [f32], f: impl Binary) {
    let isa = isa();
    if values.len() <= CHUNK {
        return zip_in_place(isa, other, values, f);
    }
    values
        .par_chunks_mut(CHUNK)
        .zip(other.par_chunks(CHUNK))
        .for_each(|(v, a)| zip_in_place(isa, a, v, f));
}

/// `output[i] = f(lhs[i], rhs[i])`, in parallel chunks.
fn zip_with(lhs: &[f32], rhs: &[f32], output: &mut [MaybeUninit<f32>], f: impl Binary) {
    let isa = isa();
    if lhs.len() <= CHUNK {
        return zip_into(isa, lhs, rhs, output, f);
    }
    output
        .par_chunks_mut(CHUNK)
        .zip(lhs.par_chunks(CHUNK).zip(rhs.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| zip_into(isa, a, b, o, f));
}

/// Applies `op` element-wise, in place.
pub(crate) fn forward_in_place(op: Pointwise, values: &mut [f32]) {
    with_formula!(op, |f| for_each(values, Forward(f)))
}

/// Applies `op` element-wise from `input` into `output`.
pub(crate) fn forward_into(op: Pointwise, input: &[f32], output: &mut [MaybeUninit<f32>]) {
    with_formula!(op, |f| map(input, output, Forward(f)))
}

/// `grad[i] = op.backward(saved[i], grad[i])`.
pub(crate) fn backward_into_grad(op: Pointwise, saved: &[f32], grad: &mut [f32]) {
    with_formula!(op, |f| zip_with_into_second(
        saved,
        grad,
        BackwardSavedGrad(f)
    ))
}

/// `saved[i] = op.backward(saved[i], grad[i])`.
pub(crate) fn backward_into_saved(op: Pointwise, saved: &mut [f32], grad: &[f32]) {
    with_formula!(op, |f| zip_with_into_second(
        grad,
        saved,
        BackwardGradSaved(f)
    ))
}

/// `output[i] = op.backward(saved[i], grad[i])`.
pub(crate) fn backward_new(
    op: Pointwise,
    saved: &[f32],
    grad: &[f32],
    output: &mut [MaybeUninit<f32>],
) {
    with_formula!(op, |f| zip_with(saved, grad, output, BackwardSavedGrad(f)))
}

/// `output[i] = op(input[i])` on the calling thread.
pub(crate) fn forward_on_thread(op: Pointwise, input: &[f32], output: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "one output per input");
    with_formula!(op, |f| map_to(isa(), input, output, Forward(f)))
}

/// `grad[i] = op.backward(saved[i], grad[i])` on the calling thread.
pub(crate) fn backward_on_thread(op: Pointwise, saved: &[f32], grad: &mut [f32]) {
    assert_eq!(saved.len(), grad.len(), "one gradient per saved value");
    with_formula!(op, |f| zip_in_place(
        isa(),
        saved,
        grad,
        BackwardSavedGrad(f)
    ))
}

// The per-channel kernels (PReLU, APReLU) use the loops and the `simd_loop!` macro above.
mod channel;
pub(crate) use channel::{
    ChannelLayout, SampleChannels, aprelu_apply, aprelu_apply_backward, aprelu_squeeze,
    aprelu_squeeze_backward, plane_means, plane_squeeze_backward_add, prelu_backward,
    prelu_forward,
};
