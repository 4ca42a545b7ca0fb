//! The Cube lowering of a [`Formula`]: [`Real`] for traced CubeCL vectors.
//!
//! A [`Traced`] value is either a constant known while the kernel is built or a vector in the
//! kernel being built. Arithmetic on it emits the CubeCL instruction (through the small
//! `#[cube]` functions below, whose generated `expand` does the emitting); arithmetic on two
//! constants folds on the host. [`value`] and [`backward`] are what the kernel calls: CubeCL
//! turns the call `trace::value::<F, N, O>(x, ...)` inside a `#[cube]` body into
//! `trace::value::expand::<F, N, O>(scope, x, ...)`, which runs `O`'s formula on traced values.

use super::super::formula::{Formula, LearnedFormula, MAX_PARAMETERS, SCALAR_PARAMETERS};
use super::super::math;
use super::super::real::Real;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::ir::Scope;
use burn_cubecl::cubecl::prelude::*;
use std::ops::{Add, BitAnd, Div, Mul, Neg, Sub};

type Lanes<F, N> = NativeExpand<Vector<F, N>>;
type MaskLanes<N> = NativeExpand<Vector<bool, N>>;

#[cube]
fn add<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>) -> Vector<F, N> {
    a + b
}
#[cube]
fn sub<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>) -> Vector<F, N> {
    a - b
}
#[cube]
fn mul<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>) -> Vector<F, N> {
    a * b
}
#[cube]
fn div<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>) -> Vector<F, N> {
    a / b
}
#[cube]
fn abs<F: Float, N: Size>(a: Vector<F, N>) -> Vector<F, N> {
    Vector::abs(a)
}
#[cube]
fn exp<F: Float, N: Size>(a: Vector<F, N>) -> Vector<F, N> {
    Vector::exp(a)
}
#[cube]
fn log1p<F: Float, N: Size>(a: Vector<F, N>) -> Vector<F, N> {
    Vector::log1p(a)
}
#[cube]
fn tanh<F: Float, N: Size>(a: Vector<F, N>) -> Vector<F, N> {
    Vector::tanh(a)
}
#[cube]
fn erf<F: Float, N: Size>(a: Vector<F, N>) -> Vector<F, N> {
    Vector::erf(a)
}
#[cube]
fn greater<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>) -> Vector<bool, N> {
    a.greater_than(&b)
}
#[cube]
fn greater_eq<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>) -> Vector<bool, N> {
    a.greater_equal(&b)
}
#[cube]
fn less<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>) -> Vector<bool, N> {
    a.less_than(&b)
}
#[cube]
fn less_eq<F: Float, N: Size>(a: Vector<F, N>, b: Vector<F, N>) -> Vector<bool, N> {
    a.less_equal(&b)
}
#[cube]
fn and<N: Size>(a: Vector<bool, N>, b: Vector<bool, N>) -> Vector<bool, N> {
    a.vec_and(b)
}
#[cube]
fn select<F: Float, N: Size>(
    mask: Vector<bool, N>,
    when_true: Vector<F, N>,
    when_false: Vector<F, N>,
) -> Vector<F, N> {
    select_many(mask, when_true, when_false)
}
#[cube]
fn splat<F: Float, N: Size>(value: F) -> Vector<F, N> {
    Vector::<F, N>::new(value)
}
#[cube]
fn constant<F: Float, N: Size>(#[comptime] value: f32) -> Vector<F, N> {
    Vector::<F, N>::new(F::new(value))
}

/// A number in a kernel being built: a constant, or a vector of `N` lanes of `F`.
pub(super) enum Traced<'a, F: Float, N: Size> {
    Constant(f32),
    Lanes(&'a Scope, Lanes<F, N>),
}

impl<F: Float, N: Size> Clone for Traced<'_, F, N> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F: Float, N: Size> Copy for Traced<'_, F, N> {}

/// A comparison's result: a constant, or one bool per lane.
pub(super) enum TracedMask<'a, N: Size> {
    Constant(bool),
    Lanes(&'a Scope, MaskLanes<N>),
}

impl<N: Size> Clone for TracedMask<'_, N> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<N: Size> Copy for TracedMask<'_, N> {}

type Emit2<F, N> = fn(&Scope, Lanes<F, N>, Lanes<F, N>) -> Lanes<F, N>;
type Compare<F, N> = fn(&Scope, Lanes<F, N>, Lanes<F, N>) -> MaskLanes<N>;

impl<'a, F: Float, N: Size> Traced<'a, F, N> {
    fn lanes(self, scope: &Scope) -> Lanes<F, N> {
        match self {
            Self::Constant(value) => constant::expand::<F, N>(scope, value),
            Self::Lanes(_, lanes) => lanes,
        }
    }

    fn binary(self, other: Self, fold: fn(f32, f32) -> f32, emit: Emit2<F, N>) -> Self {
        match (self, other) {
            (Self::Constant(a), Self::Constant(b)) => Self::Constant(fold(a, b)),
            (Self::Lanes(scope, a), b) => Self::Lanes(scope, emit(scope, a, b.lanes(scope))),
            (a, Self::Lanes(scope, b)) => Self::Lanes(scope, emit(scope, a.lanes(scope), b)),
        }
    }

    fn unary(self, fold: fn(f32) -> f32, emit: fn(&Scope, Lanes<F, N>) -> Lanes<F, N>) -> Self {
        match self {
            Self::Constant(a) => Self::Constant(fold(a)),
            Self::Lanes(scope, a) => Self::Lanes(scope, emit(scope, a)),
        }
    }

    fn compare(
        self,
        other: Self,
        fold: fn(f32, f32) -> bool,
        emit: Compare<F, N>,
    ) -> TracedMask<'a, N> {
        match (self, other) {
            (Self::Constant(a), Self::Constant(b)) => TracedMask::Constant(fold(a, b)),
            (Self::Lanes(scope, a), b) => TracedMask::Lanes(scope, emit(scope, a, b.lanes(scope))),
            (a, Self::Lanes(scope, b)) => TracedMask::Lanes(scope, emit(scope, a.lanes(scope), b)),
        }
    }
}

impl<F: Float, N: Size> From<f32> for Traced<'_, F, N> {
    fn from(value: f32) -> Self {
        Self::Constant(value)
    }
}

macro_rules! arithmetic {
    ($trait:ident, $method:ident, $emit:ident, $op:tt) => {
        impl<F: Float, N: Size> $trait for Traced<'_, F, N> {
            type Output = Self;
            fn $method(self, other: Self) -> Self {
                self.binary(other, |a, b| a $op b, $emit::expand::<F, N>)
            }
        }
        impl<F: Float, N: Size> $trait<f32> for Traced<'_, F, N> {
            type Output = Self;
            fn $method(self, other: f32) -> Self {
                self.binary(Self::Constant(other), |a, b| a $op b, $emit::expand::<F, N>)
            }
        }
    };
}

arithmetic!(Add, add, add, +);
arithmetic!(Sub, sub, sub, -);
arithmetic!(Mul, mul, mul, *);
arithmetic!(Div, div, div, /);

impl<F: Float, N: Size> Neg for Traced<'_, F, N> {
    type Output = Self;
    fn neg(self) -> Self {
        // 0 - x, as the kernels wrote it before (a negation would keep -0.0's sign apart).
        Self::Constant(0.0) - self
    }
}

impl<'a, N: Size> BitAnd for TracedMask<'a, N> {
    type Output = Self;
    fn bitand(self, other: Self) -> Self {
        match (self, other) {
            (Self::Constant(true), mask) | (mask, Self::Constant(true)) => mask,
            (Self::Constant(false), _) | (_, Self::Constant(false)) => Self::Constant(false),
            (Self::Lanes(scope, a), Self::Lanes(_, b)) => {
                Self::Lanes(scope, and::expand::<N>(scope, a, b))
            }
        }
    }
}

impl<'a, F: Float, N: Size> Real for Traced<'a, F, N> {
    type Mask = TracedMask<'a, N>;

    fn select(mask: Self::Mask, when_true: impl Into<Self>, when_false: impl Into<Self>) -> Self {
        let (when_true, when_false) = (when_true.into(), when_false.into());
        match mask {
            TracedMask::Constant(true) => when_true,
            TracedMask::Constant(false) => when_false,
            TracedMask::Lanes(scope, mask) => Self::Lanes(
                scope,
                select::expand::<F, N>(
                    scope,
                    mask,
                    when_true.lanes(scope),
                    when_false.lanes(scope),
                ),
            ),
        }
    }
    fn greater(self, other: impl Into<Self>) -> Self::Mask {
        self.compare(other.into(), |a, b| a > b, greater::expand::<F, N>)
    }
    fn greater_eq(self, other: impl Into<Self>) -> Self::Mask {
        self.compare(other.into(), |a, b| a >= b, greater_eq::expand::<F, N>)
    }
    fn less(self, other: impl Into<Self>) -> Self::Mask {
        self.compare(other.into(), |a, b| a < b, less::expand::<F, N>)
    }
    fn less_eq(self, other: impl Into<Self>) -> Self::Mask {
        self.compare(other.into(), |a, b| a <= b, less_eq::expand::<F, N>)
    }
    fn abs(self) -> Self {
        self.unary(f32::abs, abs::expand::<F, N>)
    }
    fn exp(self) -> Self {
        self.unary(f32::exp, exp::expand::<F, N>)
    }
    fn log1p_unit(self) -> Self {
        self.unary(f32::ln_1p, log1p::expand::<F, N>)
    }
    fn tanh(self) -> Self {
        self.unary(f32::tanh, tanh::expand::<F, N>)
    }
    fn erf(self) -> Self {
        self.unary(math::erf, erf::expand::<F, N>)
    }
}

/// The element-wise kernel's parameters: the first [`SCALAR_PARAMETERS`] as scalars, each in
/// every lane; the rest zero (no element-wise formula has more).
fn parameters<'a, F: Float, N: Size>(
    scope: &'a Scope,
    scalars: [NativeExpand<F>; SCALAR_PARAMETERS],
) -> [Traced<'a, F, N>; MAX_PARAMETERS] {
    std::array::from_fn(|k| match scalars.get(k) {
        Some(p) => Traced::Lanes(scope, splat::expand::<F, N>(scope, *p)),
        None => Traced::Constant(0.0),
    })
}

/// `O`'s value, called from a `#[cube]` kernel as `value::<F, N, O>(x, p0, p1, p2, p3)`; the
/// function only stands for the call (CubeCL runs the module's `expand` instead).
#[allow(unused_variables, clippy::extra_unused_type_parameters)]
pub(super) fn value<F: Float, N: Size, O: Formula>(
    x: Vector<F, N>,
    p0: F,
    p1: F,
    p2: F,
    p3: F,
) -> Vector<F, N> {
    unreachable!("CubeCL expands this call; it never runs on the host")
}

/// The expansion of [`value()`].
pub(super) mod value {
    use super::*;

    pub fn expand<F: Float, N: Size, O: Formula>(
        scope: &Scope,
        x: Lanes<F, N>,
        p0: NativeExpand<F>,
        p1: NativeExpand<F>,
        p2: NativeExpand<F>,
        p3: NativeExpand<F>,
    ) -> Lanes<F, N> {
        let parameters = parameters::<F, N>(scope, [p0, p1, p2, p3]);
        O::value(parameters, Traced::Lanes(scope, x)).lanes(scope)
    }
}

/// `O`'s backward, called from a `#[cube]` kernel as
/// `backward::<F, N, O>(saved, grad, p0, p1, p2, p3)`; the function only stands for the call.
#[allow(unused_variables, clippy::extra_unused_type_parameters)]
pub(super) fn backward<F: Float, N: Size, O: Formula>(
    saved: Vector<F, N>,
    grad: Vector<F, N>,
    p0: F,
    p1: F,
    p2: F,
    p3: F,
) -> Vector<F, N> {
    unreachable!("CubeCL expands this call; it never runs on the host")
}

/// The expansion of [`backward()`].
pub(super) mod backward {
    use super::*;

    pub fn expand<F: Float, N: Size, O: Formula>(
        scope: &Scope,
        saved: Lanes<F, N>,
        grad: Lanes<F, N>,
        p0: NativeExpand<F>,
        p1: NativeExpand<F>,
        p2: NativeExpand<F>,
        p3: NativeExpand<F>,
    ) -> Lanes<F, N> {
        let parameters = parameters::<F, N>(scope, [p0, p1, p2, p3]);
        O::backward(
            parameters,
            Traced::Lanes(scope, saved),
            Traced::Lanes(scope, grad),
        )
        .lanes(scope)
    }
}

#[cube]
fn load<F: Float>(parameters: &Tensor<F>, base: usize, #[comptime] offset: usize) -> F {
    parameters[base + offset]
}

#[cube]
fn accumulate<F: Float, N: Size>(sums: &mut Array<F>, #[comptime] k: usize, term: Vector<F, N>) {
    sums[k] += term.extract(0usize);
}

/// One row of a channel-wise parameter tensor, `parameters[base..base + O::PARAMETERS]`, each in
/// every lane; the entries past `O::PARAMETERS` are constant zeros (folded away).
fn row_parameters<'a, F: Float, N: Size, O: Formula>(
    scope: &'a Scope,
    parameters: &TensorArg<F>,
    base: &NativeExpand<usize>,
) -> [Traced<'a, F, N>; MAX_PARAMETERS] {
    std::array::from_fn(|k| {
        if k < O::PARAMETERS {
            let p = load::expand::<F>(scope, parameters, *base, k);
            Traced::Lanes(scope, splat::expand::<F, N>(scope, p))
        } else {
            Traced::Constant(0.0)
        }
    })
}

type TensorArg<F> = TensorExpand<F>;

/// `O`'s value with the parameter row at `base` of a channel-wise kernel's parameter tensor,
/// called as `row_value::<F, N, O>(x, parameters, base)`; it only stands for the call.
#[allow(unused_variables, clippy::extra_unused_type_parameters)]
pub(super) fn row_value<F: Float, N: Size, O: Formula>(
    x: Vector<F, N>,
    parameters: &Tensor<F>,
    base: usize,
) -> Vector<F, N> {
    unreachable!("CubeCL expands this call; it never runs on the host")
}

/// The expansion of [`row_value()`].
pub(super) mod row_value {
    use super::*;

    pub fn expand<F: Float, N: Size, O: Formula>(
        scope: &Scope,
        x: Lanes<F, N>,
        parameters: &TensorArg<F>,
        base: NativeExpand<usize>,
    ) -> Lanes<F, N> {
        let parameters = row_parameters::<F, N, O>(scope, parameters, &base);
        O::value(parameters, Traced::Lanes(scope, x)).lanes(scope)
    }
}

/// `O`'s backward with the parameter row at `base`, from the input; adds each parameter's
/// term ([`LearnedFormula::parameter_backward`]) to `sums[k]`. Called as
/// `row_backward::<F, N, O>(x, grad, parameters, base, &mut sums)` with one-lane vectors; it
/// only stands for the call. One trace serves the input gradient and every parameter term,
/// so the shader compiler sees what they share.
#[allow(unused_variables, clippy::extra_unused_type_parameters)]
pub(super) fn row_backward<F: Float, N: Size, O: LearnedFormula>(
    x: Vector<F, N>,
    grad: Vector<F, N>,
    parameters: &Tensor<F>,
    base: usize,
    sums: &mut Array<F>,
) -> Vector<F, N> {
    unreachable!("CubeCL expands this call; it never runs on the host")
}

/// The expansion of [`row_backward()`].
pub(super) mod row_backward {
    use super::*;

    pub fn expand<F: Float, N: Size, O: LearnedFormula>(
        scope: &Scope,
        x: Lanes<F, N>,
        grad: Lanes<F, N>,
        parameters: &TensorArg<F>,
        base: NativeExpand<usize>,
        sums: &mut NativeExpand<Array<F>>,
    ) -> Lanes<F, N> {
        let parameters = row_parameters::<F, N, O>(scope, parameters, &base);
        let (x, grad) = (Traced::Lanes(scope, x), Traced::Lanes(scope, grad));
        let terms = O::parameter_backward(parameters, x, grad);
        for (k, term) in terms.into_iter().take(O::PARAMETERS).enumerate() {
            accumulate::expand::<F, N>(scope, sums, k, term.lanes(scope));
        }
        O::backward(parameters, x, grad).lanes(scope)
    }
}
