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
                let mut sum = 0.0f64;
                prelu_backward_run(
                    isa,
                    &x[s..e],
                    &mut g[s..e],
                    &mut sum,
                    Closure(move |gv| gv * w),
                );
                sums[channel] += sum;
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

// One channel's run of PReLU's backward in a single pass over `x` and `grad`: `grad` becomes
// `x > 0 ? grad : scale(grad)` in place, and `total` gains `Σ_{x <= 0} x · grad` (the slope's
// gradient), summed in 16 f32 lanes over blocks of 1024 and the blocks in f64. Reading both
// tensors once, with the sum vectorised, is what keeps PReLU near leaky_relu's cost.
simd_loop!(prelu_backward_run, (x: &[f32], grad: &mut [f32], total: &mut f64), scale: Unary, {
    const LANES: usize = 16;
    for (xb, gb) in x.chunks(1024).zip(grad.chunks_mut(1024)) {
        let mut lanes = [0.0f32; LANES];
        let mut xs = xb.chunks_exact(LANES);
        let mut gs = gb.chunks_exact_mut(LANES);
        for (xl, gl) in (&mut xs).zip(&mut gs) {
            // Fixed-size arrays: no bounds checks, so the lane loop vectorises.
            let xl: &[f32; LANES] = xl.try_into().expect("exact chunk");
            let gl: &mut [f32; LANES] = gl.try_into().expect("exact chunk");
            for j in 0..LANES {
                let (v, gv) = (xl[j], gl[j]);
                // Where x > 0 the term is -0.0, which leaves every sum unchanged (+0.0 would
                // turn a -0.0 sum into +0.0): then LLVM needs no blend of two sums and keeps
                // the lanes in a register, not on the stack behind masked stores (3× slower).
                let positive = v > 0.0;
                lanes[j] += if positive { -0.0 } else { v * gv };
                let scaled = scale.call(gv);
                gl[j] = if positive { gv } else { scaled };
            }
        }
        let mut block = lanes.iter().map(|&l| l as f64).sum::<f64>();
        for (&v, gv) in xs.remainder().iter().zip(gs.into_remainder()) {
            // `x > 0` is false for NaN: it takes the slope, as in PyTorch.
            if v > 0.0 {
                continue;
            }
            block += (v * *gv) as f64;
            *gv = scale.call(*gv);
        }
        *total += block;
    }
});

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
