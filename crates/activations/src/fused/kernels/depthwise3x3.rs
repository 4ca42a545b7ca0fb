//! One plane's 3×3 convolution with zero padding 1 (FReLU's depthwise condition), its transpose
//! and its weight-gradient sums. With AVX-512 or AVX2 they run `depthwise3x3_simd.rs`'s
//! row-blocked kernels, which read the planes as they are. Elsewhere they are plane kernels
//! (`simd_loop!`) over a "wide" layout: each row [`stride`] values, the plane inside a border
//! of zeros one pixel wide, so every tap of the kernel is one flat slice and each output's nine
//! taps are gathered in one vectorised pass (three short axpys per row left 14-pixel rows
//! scalar). Both give the convolution and its transpose the same bits (a test compares them).
//!
//! The buffers of that layout live in a per-thread [`Scratch`], kept across calls, so the
//! per-plane passes allocate nothing: allocating, zeroing and freeing them per plane (and the
//! page faults of fresh ones) were about a fifth of a FReLU training step.

use super::block_sums::dot;
#[cfg(target_arch = "x86_64")]
use super::depthwise3x3_simd::{self as simd, Registers};
use super::loops::{Isa, Plain, as_uninit, assume_init, copy_short, simd_loop};
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// One thread's buffers for the wide layout, reused plane after plane.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The input plane inside its zero border ([`Scratch::pad`]).
    padded: Vec<f32>,
    /// A plane laid out wide: the convolution's output (the flat loop's).
    wide: Vec<f32>,
    /// The gradient reaching the convolution's output, laid out wide, inside the zero margin
    /// the transpose's taps reach into ([`Scratch::gradient`]), and its length.
    margin: Vec<f32>,
    gradient_len: usize,
    /// The gradient's row stride: `width` (a plane) or [`stride`] (laid out wide).
    gradient_stride: usize,
    /// The gradient as a plane, for the row-blocked kernels.
    plane_gradient: Vec<f32>,
    /// The transpose's gathered taps.
    gathered: Vec<f32>,
    /// Two planes for a caller's own per-plane values ([`Scratch::planes`]).
    planes: [Vec<f32>; 2],
    /// A convolution a caller works on in place ([`Scratch::convolve_in_scratch`]).
    output: Vec<MaybeUninit<f32>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Runs `f` with this thread's scratch. `f` must not start parallel work (a task of the same
/// thread could then borrow it again).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|scratch| f(&mut scratch.borrow_mut()))
}

/// `buffer` as `len` values whose borders are zero: zeroed only when its length changes. Every
/// user of such a buffer overwrites the same interior on each use and never writes its border,
/// so the border stays zero from plane to plane (zeroing all of it per plane was a memset of
/// every plane).
fn bordered(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() != len {
        buffer.clear();
        buffer.resize(len, 0.0);
    }
    buffer
}

/// Values per row of the wide layout: the row and its two border columns.
pub(crate) fn stride(width: usize) -> usize {
    width + 2
}

/// Values in a plane `height × width` laid out wide (see the module).
pub(crate) fn wide_len(plane: usize, width: usize) -> usize {
    plane / width * stride(width)
}

impl Scratch {
    /// Puts plane `x` (`width` wide) inside a border of zeros into the padded buffer:
    /// `(height + 2)` rows of [`stride`] values, row `i + 1` holding `x`'s row `i` from column 1,
    /// plus two spare zeros for the last taps' reach.
    fn pad(&mut self, x: &[f32], width: usize) {
        let (height, wide) = (x.len() / width, stride(width));
        let out = bordered(&mut self.padded, (height + 2) * wide + 2);
        for (i, row) in x.chunks_exact(width).enumerate() {
            copy_short(&mut out[(i + 1) * wide + 1..][..width], row);
        }
    }

    /// Where the gradient reaching the convolution's output goes, for
    /// [`convolve_transposed`](Self::convolve_transposed) and
    /// [`weight_sums`](Self::weight_sums), and its row stride: a plane of `plane` values `width`
    /// wide whose every value the caller writes. For the row-blocked kernels the plane itself
    /// (stride `width`); otherwise laid out wide, the junk columns for the caller to zero, inside the
    /// zero margin the transpose's taps reach into (no copy into it).
    pub(crate) fn gradient(&mut self, isa: Isa, plane: usize, width: usize) -> (&mut [f32], usize) {
        if in_place(isa) {
            self.gradient_len = plane;
            self.gradient_stride = width;
            self.plane_gradient.resize(plane, 0.0);
            return (&mut self.plane_gradient[..plane], width);
        }
        let len = wide_len(plane, width);
        self.gradient_len = len;
        self.gradient_stride = stride(width);
        let margin = bordered(&mut self.margin, margin_len(len, width));
        (&mut margin[margin_front(width)..][..len], stride(width))
    }

    /// Two planes of `len` values (their contents left from the last use).
    pub(crate) fn planes(&mut self, len: usize) -> [&mut [f32]; 2] {
        self.planes.each_mut().map(|plane| {
            plane.resize(len, 0.0);
            &mut plane[..]
        })
    }

    /// The depthwise convolution of plane `x` (`height × width`) into `out` (as large, every
    /// element written): `out[i][j] = bias + Σ w[a][b]·x[i + a − 1][j + b − 1]`, `x` zero
    /// outside the plane, the taps added in row-major order.
    pub(crate) fn convolve(
        &mut self,
        isa: Isa,
        x: &[f32],
        width: usize,
        weights: &[f32; 9],
        bias: f32,
        out: &mut [MaybeUninit<f32>],
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(registers) = Registers::of(isa) {
            simd::correlate(registers, x, width, weights, bias, out);
            return;
        }
        self.pad(x, width);
        self.wide.resize(wide_len(out.len(), width), 0.0);
        convolve(
            isa,
            &self.padded,
            width,
            weights,
            bias,
            &mut self.wide,
            out,
            (),
        );
    }

    /// A plane of `len` values for a caller to write (the one
    /// [`convolve_in_scratch`](Self::convolve_in_scratch) uses), and the first of
    /// [`planes`](Self::planes) beside it.
    pub(crate) fn output_plane(&mut self, len: usize) -> (&mut [MaybeUninit<f32>], &mut [f32]) {
        self.output.resize(len, MaybeUninit::uninit());
        self.planes[0].resize(len, 0.0);
        (&mut self.output[..len], &mut self.planes[0][..len])
    }

    /// [`convolve`](Self::convolve) into a plane of the scratch, returned: for a caller that
    /// works on the convolution in place and keeps nothing of it.
    pub(crate) fn convolve_in_scratch(
        &mut self,
        isa: Isa,
        x: &[f32],
        width: usize,
        weights: &[f32; 9],
        bias: f32,
    ) -> &mut [f32] {
        let len = x.len();
        let mut plane = std::mem::take(&mut self.output);
        plane.resize(len, MaybeUninit::uninit());
        self.convolve(isa, x, width, weights, bias, &mut plane[..len]);
        self.output = plane;
        // SAFETY: `convolve` wrote every element of the plane.
        unsafe { assume_init(&mut self.output[..len]) }
    }

    /// The transpose of [`convolve`](Self::convolve) (without the bias) of the
    /// [`gradient`](Self::gradient), added into `out` (`height × width`): the convolution's
    /// input gradient.
    pub(crate) fn convolve_transposed(
        &mut self,
        isa: Isa,
        width: usize,
        weights: &[f32; 9],
        out: &mut [f32],
    ) {
        let len = self.gradient_len;
        #[cfg(target_arch = "x86_64")]
        if let Some(registers) = Registers::of(isa) {
            debug_assert_eq!(self.gradient_stride, width, "`gradient` with another ISA");
            // Each input's taps are the outputs' it reached: the convolution's correlation of
            // the gradient with the kernel turned around, in the descending order that adds the
            // weights in their own order (the flat loop's).
            let gradient = &self.plane_gradient[..len];
            simd::correlate_descending_add(registers, gradient, width, weights, 0.0, out);
            return;
        }
        debug_assert_eq!(
            self.gradient_stride,
            stride(width),
            "`gradient` with another ISA"
        );
        let margin = &self.margin[..margin_len(len, width)];
        self.gathered.resize(len, 0.0);
        convolve_transposed(isa, margin, width, weights, &mut self.gathered, out, ());
    }

    /// The nine weight-gradient sums `Σ grad[i][j]·x[i + a − 1][j + b − 1]` of plane `x` and the
    /// [`gradient`](Self::gradient), `x` zero outside the plane. Row-blocked, in registers
    /// straight from both planes (an order of its own per instruction set); otherwise flat over the wide layout,
    /// and again row by row when one of them is not finite. An infinite or NaN input, the one
    /// case the flat sums get wrong, makes at least one of them non-finite (it enters every
    /// tap, times a gradient value or a junk column's 0), so this is the row-by-row result
    /// exactly then, without a pass that looks for such inputs.
    pub(crate) fn weight_sums(&mut self, isa: Isa, x: &[f32], width: usize) -> [f64; 9] {
        #[cfg(target_arch = "x86_64")]
        if let Some(registers) = Registers::of(isa) {
            debug_assert_eq!(self.gradient_stride, width, "`gradient` with another ISA");
            let gradient = &self.plane_gradient[..self.gradient_len];
            return simd::weight_sums(registers, x, gradient, width);
        }
        debug_assert_eq!(
            self.gradient_stride,
            stride(width),
            "`gradient` with another ISA"
        );
        self.pad(x, width);
        let mut sums = [0.0; 9];
        let gradient = &self.margin[margin_front(width)..][..self.gradient_len];
        weight_sums(isa, &self.padded, gradient, width, true, &mut sums, ());
        if !sums.iter().all(|sum| sum.is_finite()) {
            weight_sums(isa, &self.padded, gradient, width, false, &mut sums, ());
        }
        sums
    }
}

/// Whether the row-blocked kernels run (they read the planes as they are, without the wide
/// layout).
fn in_place(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    if Registers::of(isa).is_some() {
        return true;
    }
    let _ = isa;
    false
}

/// Zeros before the gradient in its margin, for the transpose's taps that reach back two rows
/// and two columns.
fn margin_front(width: usize) -> usize {
    2 * stride(width) + 2
}

/// The margin around a wide gradient of `len` values: the front, and after it the last row's
/// reach forward.
fn margin_len(len: usize, width: usize) -> usize {
    margin_front(width) + len + stride(width) + 1
}

/// The nine taps of a 3×3 kernel over a flat plane `wide` values wide: the slices `len` long
/// that start `shift(a, b)` values into `data`, in row-major tap order.
#[inline(always)]
fn taps(data: &[f32], len: usize, shift: impl Fn(usize, usize) -> usize) -> [&[f32]; 9] {
    std::array::from_fn(|t| &data[shift(t / 3, t % 3)..][..len])
}

/// `first + Σ weights[t]·taps[t][k]` at every `k`, the taps added in order: one pass that keeps
/// the sum in a register (nine axpys over the plane would load and store it nine times).
#[inline(always)]
fn weighted_taps(first: f32, weights: &[f32; 9], taps: [&[f32]; 9], out: &mut [f32]) {
    let [t0, t1, t2, t3, t4, t5, t6, t7, t8] = taps;
    let w = weights;
    for (k, o) in out.iter_mut().enumerate() {
        *o = first
            + w[0] * t0[k]
            + w[1] * t1[k]
            + w[2] * t2[k]
            + w[3] * t3[k]
            + w[4] * t4[k]
            + w[5] * t5[k]
            + w[6] * t6[k]
            + w[7] * t7[k]
            + w[8] * t8[k];
    }
}

// `Scratch::convolve`: computed [`stride`] wide into `wide_out` (junk columns after each row),
// then the valid columns copied out.
simd_loop!(convolve, (xp: &[f32], width: usize, weights: &[f32; 9], bias: f32,
    wide_out: &mut [f32], out: &mut [MaybeUninit<f32>]), _plain: Plain, {
    let wide = stride(width);
    let len = wide_out.len();
    weighted_taps(bias, weights, taps(xp, len, |a, b| a * wide + b), wide_out);
    for (row, source) in out.chunks_exact_mut(width).zip(wide_out.chunks_exact(wide)) {
        copy_short(row, as_uninit(&source[..width]));
    }
});

// `Scratch::convolve_transposed`, gathered: the input at flat position `m` of the padded plane
// receives `w[a][b]·grad[m − a·wide − b]`, read from the gradient inside its zero margin
// (`margin`), the taps added in row-major order from 0. Position `m'` of `gathered` is the
// padded plane's `m' + wide + 1`: row `r`, column `j` of the input at `r·wide + j`.
simd_loop!(convolve_transposed, (margin: &[f32], width: usize, weights: &[f32; 9],
    gathered: &mut [f32], out: &mut [f32]), _plain: Plain, {
    let wide = stride(width);
    let len = gathered.len();
    weighted_taps(0.0, weights, taps(margin, len, |a, b| (3 - a) * wide + 3 - b), gathered);
    for (row, source) in out.chunks_exact_mut(width).zip(gathered.chunks_exact(wide)) {
        for (o, &v) in row.iter_mut().zip(&source[..width]) {
            *o += v;
        }
    }
});

// `Scratch::weight_sums`: with `finite` inputs each sum is one flat dot over the wide layout
// (the junk columns add exact zeros); otherwise row by row, because a junk column's 0 times an
// infinite or NaN input would put a NaN into taps that never read that input.
simd_loop!(weight_sums, (xp: &[f32], wide_grad: &[f32], width: usize, finite: bool,
    sums: &mut [f64; 9]), _plain: Plain, {
    let wide = stride(width);
    let len = wide_grad.len();
    for a in 0..3 {
        for b in 0..3 {
            let shifted = &xp[a * wide + b..][..len];
            sums[3 * a + b] = if finite {
                dot(wide_grad, shifted)
            } else {
                wide_grad
                    .chunks_exact(wide)
                    .zip(shifted.chunks_exact(wide))
                    .map(|(g, x)| dot(&g[..width], &x[..width]))
                    .sum()
            };
        }
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set of this machine with row-blocked kernels.
    fn fast_isas() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut isas = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                isas.push(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                isas.push(Isa::Avx2);
            }
        }
        isas
    }

    /// Values in [-2, 2) from a fixed sequence, a tenth of them exactly zero.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
                if unit < 0.1 { 0.0 } else { 4.0 * unit - 2.0 }
            })
            .collect()
    }

    /// One ISA's convolution, the transpose's addition and the weight sums.
    fn run(isa: Isa, height: usize, width: usize, seed: u64) -> (Vec<f32>, Vec<f32>, [f64; 9]) {
        let plane = height * width;
        let x = values(plane, seed);
        let gradient = values(plane, seed + 1);
        let weights: [f32; 9] = values(9, seed + 2).try_into().expect("nine");
        let mut scratch = Scratch::default();
        let mut conv = vec![MaybeUninit::uninit(); plane];
        scratch.convolve(isa, &x, width, &weights, 0.375, &mut conv);
        // SAFETY: `convolve` wrote every element.
        let conv = unsafe { assume_init(&mut conv) }.to_vec();
        let (wide, stride) = scratch.gradient(isa, plane, width);
        wide.fill(0.0);
        for (row, source) in wide.chunks_mut(stride).zip(gradient.chunks(width)) {
            row[..width].copy_from_slice(source);
        }
        let mut input_grad = values(plane, seed + 3);
        scratch.convolve_transposed(isa, width, &weights, &mut input_grad);
        let sums = scratch.weight_sums(isa, &x, width);
        (conv, input_grad, sums)
    }

    #[test]
    fn every_isa_finds_the_same_non_finite_weight_sums() {
        // An infinite input at the end of a row: only the taps that read it (times a gradient
        // value, or a border's zero) are non-finite, in both orders.
        for (height, width) in [(5, 7), (14, 14), (3, 30), (4, 16)] {
            let plane = height * width;
            let mut x = values(plane, 7);
            x[2 * width - 1] = f32::INFINITY;
            let gradient = values(plane, 8);
            let sums = |isa: Isa| {
                let mut scratch = Scratch::default();
                let (wide, stride) = scratch.gradient(isa, plane, width);
                wide.fill(0.0);
                for (row, source) in wide.chunks_mut(stride).zip(gradient.chunks(width)) {
                    row[..width].copy_from_slice(source);
                }
                scratch.weight_sums(isa, &x, width)
            };
            let flat = sums(Isa::Baseline);
            let kind = |v: f64| (v.is_nan(), v.is_infinite().then_some(v));
            for isa in fast_isas() {
                assert_eq!(flat.map(kind), sums(isa).map(kind), "{height}×{width}");
            }
            assert!(flat.iter().any(|v| v.is_finite()) && !flat.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn every_isa_convolves_to_the_same_bits_as_the_flat_loop() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let shapes = [
            (1, 1),
            (2, 3),
            (5, 7),
            (14, 14),
            (28, 28),
            (9, 17),
            (3, 30),
            (13, 16),
        ];
        for (case, &(height, width)) in shapes.iter().enumerate() {
            let (conv, input_grad, sums) = run(Isa::Baseline, height, width, case as u64);
            let mut all_sums = vec![sums];
            for isa in fast_isas() {
                let (fast_conv, fast_input_grad, fast_sums) = run(isa, height, width, case as u64);
                assert_eq!(
                    bits(&conv),
                    bits(&fast_conv),
                    "convolution, {height}×{width}"
                );
                assert_eq!(
                    bits(&input_grad),
                    bits(&fast_input_grad),
                    "transpose, {height}×{width}"
                );
                all_sums.push(fast_sums);
            }
            // The weight sums in an order of their own (row-blocked): against the exact sums.
            let x = values(height * width, case as u64);
            let gradient = values(height * width, case as u64 + 1);
            for t in 0..9 {
                let (a, b) = (t as isize / 3 - 1, t as isize % 3 - 1);
                let mut exact = 0.0f64;
                for i in 0..height as isize {
                    for j in 0..width as isize {
                        let (xi, xj) = (i + a, j + b);
                        if (0..height as isize).contains(&xi) && (0..width as isize).contains(&xj) {
                            let g = gradient[i as usize * width + j as usize];
                            exact += f64::from(g) * f64::from(x[xi as usize * width + xj as usize]);
                        }
                    }
                }
                for value in all_sums.iter().map(|sums| sums[t]) {
                    assert!(
                        (value - exact).abs() <= 1e-5 * (1.0 + exact.abs()),
                        "tap {t}"
                    );
                }
            }
            // The flat loop's own sums, written out.
            let x = values(height * width, case as u64);
            let weights = values(9, case as u64 + 2);
            let at = |i: isize, j: isize| {
                let inside = (0..height as isize).contains(&i) && (0..width as isize).contains(&j);
                if inside {
                    x[i as usize * width + j as usize]
                } else {
                    0.0
                }
            };
            for i in 0..height {
                for j in 0..width {
                    let mut sum = 0.375f32;
                    for (t, weight) in weights.iter().enumerate() {
                        let (a, b) = (t as isize / 3, t as isize % 3);
                        sum += weight * at(i as isize + a - 1, j as isize + b - 1);
                    }
                    assert_eq!(sum.to_bits(), conv[i * width + j].to_bits(), "({i}, {j})");
                }
            }
        }
    }
}
