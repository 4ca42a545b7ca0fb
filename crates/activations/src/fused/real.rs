//! [`Real`]: the numbers a [`Formula`](super::formula::Formula) is written over, so that one
//! statement of an activation serves every backend.
//!
//! A formula is a generic function of `R: Real`. Each backend lowers it by choosing `R`:
//! - Flex: `R = f32`. The kernels inline the formula into their loops over slices, and LLVM
//!   turns the scalar code into 16- or 8-lane SIMD; the transcendental functions are the
//!   branch-free approximations of `math.rs`.
//! - Cube (wgpu, cuda): `R` is a traced value (`cube/trace.rs`). Running the formula emits
//!   CubeCL instructions instead of computing, so the same function becomes a GPU kernel, with
//!   the device's own `exp`, `tanh`, `erf`.
//!
//! Selects replace branches (`R::select(x.greater(0.0), x, x * slope)`): both arms are
//! evaluated, which is what SIMD and GPU lanes do anyway, and NaN takes the arm the comparison
//! sends it to, as in PyTorch's vectorised kernels.

use super::math;
use std::ops::{Add, BitAnd, Div, Mul, Neg, Sub};

/// A number a formula computes with: `f32` on the CPU, a traced vector on the Cube backends.
pub trait Real:
    Copy
    + From<f32>
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f32, Output = Self>
    + Sub<f32, Output = Self>
    + Mul<f32, Output = Self>
    + Div<f32, Output = Self>
{
    /// The result of a comparison: `bool` for `f32`, one per lane for vectors.
    type Mask: Copy + BitAnd<Output = Self::Mask>;

    /// `mask ? when_true : when_false`, lane by lane.
    fn select(mask: Self::Mask, when_true: impl Into<Self>, when_false: impl Into<Self>) -> Self;

    /// `self > other`; false for NaN.
    fn greater(self, other: impl Into<Self>) -> Self::Mask;
    /// `self >= other`; false for NaN.
    fn greater_eq(self, other: impl Into<Self>) -> Self::Mask;
    /// `self < other`; false for NaN.
    fn less(self, other: impl Into<Self>) -> Self::Mask;
    /// `self <= other`; false for NaN.
    fn less_eq(self, other: impl Into<Self>) -> Self::Mask;

    /// `|x|`.
    fn abs(self) -> Self;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// `eˣ` for `x <= 0` or NaN (a cheaper form on the CPU; the plain `exp` elsewhere).
    fn exp_nonpositive(self) -> Self {
        self.exp()
    }
    /// `ln(1 + u)` for `u` in `[0, 1]`.
    fn log1p_unit(self) -> Self;
    /// `tanh x`.
    fn tanh(self) -> Self;
    /// `erf x`.
    fn erf(self) -> Self;
    /// `erf x` given `e^{-x²}`, which the caller computed for its own use (the CPU form reuses
    /// it; the others compute `erf` directly).
    fn erf_given_gaussian(self, gaussian: Self) -> Self {
        let _ = gaussian;
        self.erf()
    }
    /// `1 / (1 + e⁻ˣ)`, from `e^-|x|` so nothing overflows.
    fn sigmoid(self) -> Self {
        let e = (-self.abs()).exp_nonpositive();
        let reciprocal = Self::from(1.0) / (e + 1.0);
        Self::select(self.greater_eq(0.0), reciprocal, e * reciprocal)
    }
}

impl Real for f32 {
    type Mask = bool;

    #[inline(always)]
    fn select(mask: bool, when_true: impl Into<f32>, when_false: impl Into<f32>) -> f32 {
        let (when_true, when_false) = (when_true.into(), when_false.into());
        if mask { when_true } else { when_false }
    }
    #[inline(always)]
    fn greater(self, other: impl Into<f32>) -> bool {
        self > other.into()
    }
    #[inline(always)]
    fn greater_eq(self, other: impl Into<f32>) -> bool {
        self >= other.into()
    }
    #[inline(always)]
    fn less(self, other: impl Into<f32>) -> bool {
        self < other.into()
    }
    #[inline(always)]
    fn less_eq(self, other: impl Into<f32>) -> bool {
        self <= other.into()
    }
    #[inline(always)]
    fn abs(self) -> f32 {
        f32::abs(self)
    }
    #[inline(always)]
    fn exp(self) -> f32 {
        math::exp(self)
    }
    #[inline(always)]
    fn exp_nonpositive(self) -> f32 {
        math::exp_nonpositive(self)
    }
    #[inline(always)]
    fn log1p_unit(self) -> f32 {
        math::log1p_unit(self)
    }
    #[inline(always)]
    fn tanh(self) -> f32 {
        math::tanh(self)
    }
    #[inline(always)]
    fn erf(self) -> f32 {
        math::erf(self)
    }
    #[inline(always)]
    fn erf_given_gaussian(self, gaussian: f32) -> f32 {
        math::erf_given_gaussian(self, gaussian)
    }
    #[inline(always)]
    fn sigmoid(self) -> f32 {
        math::sigmoid(self)
    }
}
