//! The element-wise formulas of every fused activation and the loops that run them over slices.
//!
//! Each formula is written once, as a scalar `f32` function with selects instead of branches;
//! [`for_each`] and friends run it over a slice split across rayon's threads, each chunk
//! compiled three times (AVX-512, AVX2+FMA, baseline) and picked at run time, so LLVM turns the
//! scalar code into 16- or 8-lane SIMD. The formulas, their order of operations and their
//! special values follow PyTorch's CPU kernels (`aten/src/ATen/native/cpu/Activation.cpp`).

use super::Pointwise;
use super::math::{erf, erf_given_gaussian, exp, exp_nonpositive, log1p_unit, sigmoid, tanh};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per parallel task: large enough to amortise rayon's scheduling, small enough to
/// balance two to sixteen cores on the tensors an activation sees in training.
const CHUNK: usize = 1 << 15;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / √(2π)`, the normal density's constant (PyTorch's `kAlpha` in the GELU backward).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
/// `√(2/π)` and the cubic coefficient of GELU's tanh form.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;
/// Multiplying by these instead of dividing by 6 and 3 (as PyTorch writes it) differs by at most
/// an ulp and avoids a division, the slowest instruction in these loops.
const ONE_SIXTH: f32 = 1.0 / 6.0;
const ONE_THIRD: f32 = 1.0 / 3.0;

/// One activation's forward and backward formulas. Each implementation is its own type so that
/// the loops below are compiled for one formula at a time (a runtime `match` inside the loop
/// would keep LLVM from vectorising it).
pub(crate) trait Formula: Copy + Send + Sync {
    /// `f(x)`.
    fn value(self, x: f32) -> f32;
    /// `grad · f'(x)`, from `saved` = the output when [`Pointwise::saves_output`], else the input.
    fn backward(self, saved: f32, grad: f32) -> f32;
}

macro_rules! formula {
    ($name:ident { $($field:ident),* }, |$s:ident, $x:ident| $value:block, |$s2:ident, $saved:ident, $grad:ident| $backward:block) => {
        #[derive(Clone, Copy)]
        pub(crate) struct $name { $(pub $field: f32),* }
        impl Formula for $name {
            #[inline(always)]
            #[allow(unused_variables)]
            fn value(self, $x: f32) -> f32 {
                let $s = self;
                $value
            }
            #[inline(always)]
            #[allow(unused_variables)]
            fn backward(self, $saved: f32, $grad: f32) -> f32 {
                let $s2 = self;
                $backward
            }
        }
    };
}

formula!(Sigmoid {}, |s, x| { sigmoid(x) }, |s, y, grad| {
    grad * (1.0 - y) * y
});

formula!(Tanh {}, |s, x| { tanh(x) }, |s, y, grad| {
    grad * (1.0 - y * y)
});

formula!(
    ExponentialLinear {
        negative_coef,
        positive_coef,
        input_scale
    },
    |s, x| {
        // The positive side never reaches `exp` (its value is discarded; NaN stays NaN).
        let negative_input = if x > 0.0 { 0.0 } else { x };
        let negative = (exp_nonpositive(negative_input * s.input_scale) - 1.0) * s.negative_coef;
        if x <= 0.0 {
            negative
        } else {
            x * s.positive_coef
        }
    },
    // From the output: y > 0 exactly when x > 0 for positive α. NaN takes the exponential
    // side, whose formula gives NaN, as PyTorch's vectorised `x > 0 ? ... : ...` blend does.
    |s, y, grad| {
        let negative = grad * s.input_scale * (y + s.negative_coef);
        if y > 0.0 {
            grad * s.positive_coef
        } else {
            negative
        }
    }
);

formula!(
    Gelu {},
    |s, x| { x * 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)) },
    |s, x, grad| {
        // One exponential serves both: erf(x/√2) needs e^{-x²/2}, and so does the density.
        let gaussian = exp_nonpositive(-0.5 * x * x);
        let cdf = 0.5 * (1.0 + erf_given_gaussian(x * FRAC_1_SQRT_2, gaussian));
        let pdf = FRAC_1_SQRT_2PI * gaussian;
        grad * (cdf + x * pdf)
    }
);

formula!(
    GeluTanh {},
    |s, x| {
        let inner = SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
        0.5 * x * (1.0 + tanh(inner))
    },
    |s, x, grad| {
        let x_sq = x * x;
        let inner = SQRT_2_OVER_PI * (x + GELU_CUBIC * x_sq * x);
        let t = tanh(inner);
        let left_derivative = 0.5 * (1.0 + t);
        let right_derivative =
            0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x_sq);
        grad * (left_derivative + right_derivative)
    }
);

formula!(
    Silu { beta },
    |s, x| { x * sigmoid(x * s.beta) },
    |s, x, grad| {
        let scaled = x * s.beta;
        let sig = sigmoid(scaled);
        grad * sig * (1.0 + scaled * (1.0 - sig))
    }
);

formula!(Mish {}, |s, x| { x * tanh_softplus(x) }, |s, x, grad| {
    let t = tanh_softplus(x);
    grad * (t + x * sigmoid(x) * (1.0 - t * t))
});

formula!(
    Softplus {
        beta,
        inverse_beta,
        threshold
    },
    |s, x| {
        let scaled = x * s.beta;
        let positive_part = if scaled > 0.0 { scaled } else { 0.0 };
        let smooth = (positive_part + log1p_unit(exp_nonpositive(-scaled.abs()))) * s.inverse_beta;
        if scaled > s.threshold { x } else { smooth }
    },
    |s, x, grad| {
        let scaled = x * s.beta;
        if scaled > s.threshold {
            grad
        } else {
            grad * sigmoid(scaled)
        }
    }
);

formula!(Softsign {}, |s, x| { x / (1.0 + x.abs()) }, |s, x, grad| {
    let magnitude = x.abs();
    let denominator = 1.0 + magnitude;
    // `denominator - magnitude` is 1, or NaN at ±inf as PyTorch's autograd gives.
    grad * (denominator - magnitude) / (denominator * denominator)
});

formula!(
    LogSigmoid {},
    |s, x| {
        // `min(x, 0)` that keeps NaN.
        let negative_part = if x > 0.0 { 0.0 } else { x };
        negative_part - log1p_unit(exp_nonpositive(-x.abs()))
    },
    |s, x, grad| {
        let e = exp_nonpositive(-x.abs());
        let ratio = e / (1.0 + e);
        if x < 0.0 {
            grad * (1.0 - ratio)
        } else {
            grad * ratio
        }
    }
);

formula!(
    HardSwish {},
    |s, x| { x * ramp6(x + 3.0) * ONE_SIXTH },
    |s, x, grad| {
        // NaN falls through to the middle formula (NaN), as in PyTorch's blends.
        if x <= -3.0 {
            0.0
        } else if x >= 3.0 {
            grad
        } else {
            grad * (x * ONE_THIRD + 0.5)
        }
    }
);

formula!(
    HardSigmoid {},
    |s, x| { ramp6(x + 3.0) * ONE_SIXTH },
    |s, x, grad| {
        if x > -3.0 && x < 3.0 {
            grad * ONE_SIXTH
        } else {
            0.0
        }
    }
);

formula!(
    LeakyRelu { negative_slope },
    |s, x| { if x > 0.0 { x } else { x * s.negative_slope } },
    // From the output when the slope is positive (y > 0 exactly when x > 0), else the input.
    |s, saved, grad| {
        if saved > 0.0 {
            grad
        } else {
            grad * s.negative_slope
        }
    }
);

/// `min(max(v, 0), 6)`, keeping NaN.
#[inline(always)]
fn ramp6(v: f32) -> f32 {
    let v = if v < 0.0 { 0.0 } else { v };
    if v > 6.0 { 6.0 } else { v }
}

/// Runs `$body` with `$f` bound to the [`Formula`] of `$op`, one arm per variant.
macro_rules! with_formula {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            Pointwise::Sigmoid => {
                let $f = Sigmoid {};
                $body
            }
            Pointwise::Tanh => {
                let $f = Tanh {};
                $body
            }
            Pointwise::ExponentialLinear {
                alpha,
                scale,
                input_scale,
            } => {
                let $f = ExponentialLinear {
                    negative_coef: (alpha * scale) as f32,
                    positive_coef: scale as f32,
                    input_scale: input_scale as f32,
                };
                $body
            }
            Pointwise::Gelu => {
                let $f = Gelu {};
                $body
            }
            Pointwise::GeluTanh => {
                let $f = GeluTanh {};
                $body
            }
            Pointwise::Silu { beta } => {
                let $f = Silu { beta: beta as f32 };
                $body
            }
            Pointwise::Mish => {
                let $f = Mish {};
                $body
            }
            Pointwise::Softplus { beta, threshold } => {
                let $f = Softplus {
                    beta: beta as f32,
                    inverse_beta: (1.0 / beta) as f32,
                    threshold: threshold as f32,
                };
                $body
            }
            Pointwise::Softsign => {
                let $f = Softsign {};
                $body
            }
            Pointwise::LogSigmoid => {
                let $f = LogSigmoid {};
                $body
            }
            Pointwise::HardSwish => {
                let $f = HardSwish {};
                $body
            }
            Pointwise::HardSigmoid => {
                let $f = HardSigmoid {};
                $body
            }
            Pointwise::LeakyRelu { negative_slope } => {
                let $f = LeakyRelu {
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
}

/// `tanh(softplus(x))` in one exponential: with `e = eˣ`, `tanh(ln(1 + e)) = n / (n + 2)` where
/// `n = e (e + 2)`. Past x = 20 it is 1 in f32, and capping there keeps `n` finite.
#[inline(always)]
fn tanh_softplus(x: f32) -> f32 {
    let capped = if x < 20.0 { x } else { 20.0 };
    let e = exp(capped);
    let n = e * (e + 2.0);
    n / (n + 2.0)
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

/// The channel layout PReLU sees: `[outer, channels, inner]`, row-major.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelLayout {
    pub channels: usize,
    pub inner: usize,
}

impl ChannelLayout {
    fn channel(&self, flat: usize) -> usize {
        (flat / self.inner) % self.channels
    }

    /// Calls `segment(start, end, channel)` for the runs of one channel within `start..end`.
    fn segments(&self, start: usize, end: usize, mut segment: impl FnMut(usize, usize, usize)) {
        let mut pos = start;
        while pos < end {
            let stop = end.min((pos / self.inner + 1) * self.inner);
            segment(pos, stop, self.channel(pos));
            pos = stop;
        }
    }

    /// Elements per parallel task: whole rows of channels when a channel's run is short.
    fn task_len(&self) -> usize {
        if self.inner == 1 {
            self.channels * (CHUNK / self.channels).max(1)
        } else {
            CHUNK
        }
    }
}

/// PReLU forward: `x > 0 ? x : w[c] x`.
pub(crate) fn prelu_forward(
    input: &[f32],
    weight: &[f32],
    layout: ChannelLayout,
    output: &mut [MaybeUninit<f32>],
) {
    let isa = isa();
    let task = layout.task_len();
    let run = |(index, (o, x)): (usize, (&mut [MaybeUninit<f32>], &[f32]))| {
        if layout.inner == 1 {
            // Rows of all channels: zip with the weight vector.
            for (o_row, x_row) in o.chunks_mut(layout.channels).zip(x.chunks(layout.channels)) {
                zip_into(
                    isa,
                    x_row,
                    weight,
                    o_row,
                    Closure(|v: f32, w: f32| if v > 0.0 { v } else { v * w }),
                );
            }
        } else {
            let base = index * task;
            layout.segments(base, base + x.len(), |start, end, channel| {
                let w = weight[channel];
                let (s, e) = (start - base, end - base);
                let leaky = move |v: f32| if v > 0.0 { v } else { v * w };
                map_into(isa, &x[s..e], &mut o[s..e], Closure(leaky));
            });
        }
    };
    output
        .par_chunks_mut(task)
        .zip(input.par_chunks(task))
        .enumerate()
        .for_each(run);
}

/// PReLU backward: the input gradient in place of `grad`, and returns the weight gradient
/// `Σ_{x <= 0} x · grad` per channel (accumulated in f64, like a pairwise sum in accuracy).
pub(crate) fn prelu_backward(
    input: &[f32],
    weight: &[f32],
    layout: ChannelLayout,
    grad: &mut [f32],
) -> Vec<f32> {
    let isa = isa();
    let task = layout.task_len();
    let channels = layout.channels;
    let run = |mut sums: Vec<f64>, (index, (g, x)): (usize, (&mut [f32], &[f32]))| {
        let negative_part = |v: f32, gv: f32| if v > 0.0 { 0.0 } else { (v * gv) as f64 };
        if layout.inner == 1 {
            for (g_row, x_row) in g.chunks_mut(channels).zip(x.chunks(channels)) {
                for ((sum, &v), &gv) in sums.iter_mut().zip(x_row).zip(g_row.iter()) {
                    *sum += negative_part(v, gv);
                }
                zip_weight_in_place(isa, x_row, weight, g_row);
            }
        } else {
            let base = index * task;
            layout.segments(base, base + x.len(), |start, end, channel| {
                let w = weight[channel];
                let (s, e) = (start - base, end - base);
                sums[channel] += negative_part_sum(&x[s..e], &g[s..e]);
                let leaky = move |v: f32, gv: f32| if v > 0.0 { gv } else { gv * w };
                zip_in_place(isa, &x[s..e], &mut g[s..e], Closure(leaky));
            });
        }
        sums
    };
    let sums = grad
        .par_chunks_mut(task)
        .zip(input.par_chunks(task))
        .enumerate()
        .fold(|| vec![0.0f64; channels], run)
        .reduce(
            || vec![0.0f64; channels],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    sums.into_iter().map(|s| s as f32).collect()
}

/// `Σ_{x <= 0} x · grad`: 16 f32 lanes (which vectorise) over blocks of 1024, blocks summed in
/// f64.
fn negative_part_sum(x: &[f32], grad: &[f32]) -> f64 {
    const LANES: usize = 16;
    let term = |v: f32, g: f32| if v > 0.0 { 0.0 } else { v * g };
    let mut total = 0.0f64;
    for (xb, gb) in x.chunks(1024).zip(grad.chunks(1024)) {
        let mut lanes = [0.0f32; LANES];
        let (mut xs, mut gs) = (xb.chunks_exact(LANES), gb.chunks_exact(LANES));
        for (xl, gl) in (&mut xs).zip(&mut gs) {
            // Fixed-size arrays: no bounds checks, so the lane loop vectorises.
            let xl: &[f32; LANES] = xl.try_into().expect("exact chunk");
            let gl: &[f32; LANES] = gl.try_into().expect("exact chunk");
            for j in 0..LANES {
                lanes[j] += term(xl[j], gl[j]);
            }
        }
        total += lanes.iter().map(|&l| l as f64).sum::<f64>();
        total += xs
            .remainder()
            .iter()
            .zip(gs.remainder())
            .map(|(&v, &g)| term(v, g) as f64)
            .sum::<f64>();
    }
    total
}

/// `grad[c] = x[c] > 0 ? grad[c] : w[c] grad[c]` over one row of channels.
fn zip_weight_in_place(isa: Isa, x: &[f32], weight: &[f32], grad: &mut [f32]) {
    simd_loop!(rows, (x: &[f32], w: &[f32], g: &mut [f32]), f: Ternary, {
        for ((gv, &v), &wv) in g.iter_mut().zip(x).zip(w) {
            *gv = f.call(v, wv, *gv);
        }
    });
    let leaky = |v: f32, w: f32, g: f32| if v > 0.0 { g } else { g * w };
    rows(isa, x, weight, grad, Closure(leaky));
}
