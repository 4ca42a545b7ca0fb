//! `depthwise3x3.rs`'s convolution, its transpose and its weight sums in AVX-512 or AVX2
//! registers, straight from the caller's planes: masked loads read the zero border (a lane
//! outside the plane loads 0.0, a row outside it is a vector of zeros), so nothing is padded or
//! laid out wide, and the valid columns are stored with masks. The rows are blocked: each
//! loaded input vector serves the three output rows it is a tap of, where the flat loop loads
//! nine (mostly cache-line splitting) vectors per output vector. One generic body ([`Lanes`])
//! for both instruction sets.
//!
//! The convolution and the transpose add the flat loop's products in its order (a multiply,
//! then an add, border zeros included: no fused multiply-add, no skipped term), so they give
//! its bits; the weight sums have an order of their own per instruction set, fixed
//! (`depthwise3x3.rs`'s tests compare both).

use super::loops::Isa;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// The instruction sets with these kernels, from a detected [`Isa`].
#[derive(Clone, Copy)]
pub(super) enum Registers {
    Avx512,
    Avx2,
}

impl Registers {
    pub(super) fn of(isa: Isa) -> Option<Self> {
        match isa {
            Isa::Avx512 => Some(Self::Avx512),
            Isa::Avx2 => Some(Self::Avx2),
            Isa::Baseline => None,
        }
    }
}

/// The convolution: `out[q][j] = first + Σ kernel[3a + b]·x[q + a − 1][j + b − 1]`, `x` zero
/// outside the plane, for each row `q` and column `j` of `out` (`input`'s shape, `width` values
/// per row), the nine products added in ascending `(a, b)` order. Every element is written.
///
/// # Panics
/// Unless `input` and `out` are one plane of rows `width` long.
pub(super) fn correlate(
    registers: Registers,
    input: &[f32],
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    out: &mut [MaybeUninit<f32>],
) {
    check(input, width, out.len());
    let to = out.as_mut_ptr().cast();
    // SAFETY: `Registers` comes from an `Isa` that `isa()` detected; `out` is `input`'s size.
    unsafe {
        match registers {
            Registers::Avx512 => avx512_rows::<false, false>(input, width, kernel, first, to),
            Registers::Avx2 => avx2_rows::<false, false>(input, width, kernel, first, to),
        }
    }
}

/// The transpose: `out[q][j] += first + Σ kernel[8 − 3a − b]·x[q + a − 1][j + b − 1]` (the
/// kernel turned around), the products added in descending `(a, b)` order, which is the
/// kernel's own order.
///
/// # Panics
/// As [`correlate`].
pub(super) fn correlate_descending_add(
    registers: Registers,
    input: &[f32],
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    out: &mut [f32],
) {
    check(input, width, out.len());
    let to = out.as_mut_ptr();
    // SAFETY: as in `correlate`; `out` is initialised.
    unsafe {
        match registers {
            Registers::Avx512 => avx512_rows::<true, true>(input, width, kernel, first, to),
            Registers::Avx2 => avx2_rows::<true, true>(input, width, kernel, first, to),
        }
    }
}

/// The nine weight-gradient sums `Σ grad[i][j]·x[i + a − 1][j + b − 1]` over the plane, `x`
/// zero outside it (those terms included, so an infinite or NaN gradient value makes them NaN,
/// as the flat loop's row-by-row sums do): per tap, f32 lanes over a block of rows, each
/// block's lanes added to f64 lanes, those summed in a fixed order at the end.
///
/// # Panics
/// Unless `x` and `grad` are one plane of rows `width` long.
pub(super) fn weight_sums(registers: Registers, x: &[f32], grad: &[f32], width: usize) -> [f64; 9] {
    check(x, width, grad.len());
    // SAFETY: as in `correlate`.
    unsafe {
        match registers {
            Registers::Avx512 => avx512_weight_sums(x, grad, width),
            Registers::Avx2 => avx2_weight_sums(x, grad, width),
        }
    }
}

fn check(input: &[f32], width: usize, len: usize) {
    assert!(width > 0 && input.len() == len && len.is_multiple_of(width));
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_rows<const DESCENDING: bool, const ADD: bool>(
    input: &[f32],
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    to: *mut f32,
) {
    // SAFETY: the caller's.
    unsafe { rows::<__m512, 7, DESCENDING, ADD>(input, width, kernel, first, to) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_rows<const DESCENDING: bool, const ADD: bool>(
    input: &[f32],
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    to: *mut f32,
) {
    // SAFETY: the caller's.
    unsafe { rows::<__m256, 4, DESCENDING, ADD>(input, width, kernel, first, to) }
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_weight_sums(x: &[f32], grad: &[f32], width: usize) -> [f64; 9] {
    // SAFETY: the caller's.
    unsafe { sums::<__m512, 7>(x, grad, width) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_weight_sums(x: &[f32], grad: &[f32], width: usize) -> [f64; 9] {
    // SAFETY: the caller's.
    unsafe { sums::<__m256, 4>(x, grad, width) }
}

/// A vector of f32 lanes and the few operations the kernels need. Every method requires its
/// instruction set (the callers run with it enabled, these being inlined into them). The
/// generic code below calls them in loops, never in closures (`array::from_fn`, `map`): a
/// closure outside the `#[target_feature]` functions compiles without the instruction set,
/// and the intrinsics in it stay calls (`_mm512_reduce_add_pd` did, 3% of a FReLU step).
trait Lanes: Copy {
    const LANES: usize;
    type Mask: Copy;
    /// f64 lanes holding a vector's values widened.
    type Wide: Copy;
    /// The lanes `from..to` (clamped to the vector).
    fn mask(from: isize, to: isize) -> Self::Mask;
    fn and(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    unsafe fn zero() -> Self;
    unsafe fn splat(value: f32) -> Self;
    /// The lanes of `mask` from `at`, 0.0 in the others (which are not read).
    unsafe fn load(at: *const f32, mask: Self::Mask) -> Self;
    /// The lanes of `mask` to `at` (the others not written).
    unsafe fn store(at: *mut f32, mask: Self::Mask, value: Self);
    unsafe fn add(a: Self, b: Self) -> Self;
    unsafe fn mul(a: Self, b: Self) -> Self;
    unsafe fn wide_zero() -> Self::Wide;
    /// `total + value`, lane by lane in f64.
    unsafe fn wide_add(total: Self::Wide, value: Self) -> Self::Wide;
    /// The f64 lanes' total, in a fixed order.
    unsafe fn wide_total(total: Self::Wide) -> f64;
}

/// The bits `from..to` of a lane mask.
fn lane_bits(from: isize, to: isize, lanes: usize) -> u32 {
    let (from, to) = (from.clamp(0, lanes as isize), to.clamp(0, lanes as isize));
    if from >= to {
        return 0;
    }
    ((1u32 << (to - from)) - 1) << from
}

impl Lanes for __m512 {
    const LANES: usize = 16;
    type Mask = __mmask16;
    type Wide = [__m512d; 2];
    #[inline(always)]
    fn mask(from: isize, to: isize) -> __mmask16 {
        lane_bits(from, to, 16) as __mmask16
    }
    #[inline(always)]
    fn and(a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> Self {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm512_set1_ps(value) }
    }
    #[inline(always)]
    unsafe fn load(at: *const f32, mask: __mmask16) -> Self {
        // SAFETY: the caller's (the masked lanes are not read).
        unsafe { _mm512_maskz_loadu_ps(mask, at) }
    }
    #[inline(always)]
    unsafe fn store(at: *mut f32, mask: __mmask16, value: Self) {
        // SAFETY: the caller's (the masked lanes are not written).
        unsafe { _mm512_mask_storeu_ps(at, mask, value) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn wide_zero() -> [__m512d; 2] {
        // SAFETY: the callers run with the instruction set.
        unsafe { [_mm512_setzero_pd(); 2] }
    }
    #[inline(always)]
    unsafe fn wide_add(total: [__m512d; 2], value: Self) -> [__m512d; 2] {
        // SAFETY: the callers run with the instruction set.
        unsafe {
            let low = _mm512_cvtps_pd(_mm512_castps512_ps256(value));
            let high = _mm512_extractf64x4_pd(_mm512_castps_pd(value), 1);
            let high = _mm512_cvtps_pd(_mm256_castpd_ps(high));
            [_mm512_add_pd(total[0], low), _mm512_add_pd(total[1], high)]
        }
    }
    #[inline(always)]
    unsafe fn wide_total(total: [__m512d; 2]) -> f64 {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm512_reduce_add_pd(_mm512_add_pd(total[0], total[1])) }
    }
}

impl Lanes for __m256 {
    const LANES: usize = 8;
    type Mask = __m256i;
    type Wide = [__m256d; 2];
    #[inline(always)]
    fn mask(from: isize, to: isize) -> __m256i {
        let bits = lane_bits(from, to, 8);
        let lane = |l: u32| if bits >> l & 1 == 1 { -1 } else { 0 };
        // SAFETY: AVX, which the callers run with.
        unsafe {
            _mm256_setr_epi32(
                lane(0),
                lane(1),
                lane(2),
                lane(3),
                lane(4),
                lane(5),
                lane(6),
                lane(7),
            )
        }
    }
    #[inline(always)]
    fn and(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2, which the callers run with.
        unsafe { _mm256_and_si256(a, b) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> Self {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm256_set1_ps(value) }
    }
    #[inline(always)]
    unsafe fn load(at: *const f32, mask: __m256i) -> Self {
        // SAFETY: the caller's (the masked lanes are not read).
        unsafe { _mm256_maskload_ps(at, mask) }
    }
    #[inline(always)]
    unsafe fn store(at: *mut f32, mask: __m256i, value: Self) {
        // SAFETY: the caller's (the masked lanes are not written).
        unsafe { _mm256_maskstore_ps(at, mask, value) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        // SAFETY: the callers run with the instruction set.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn wide_zero() -> [__m256d; 2] {
        // SAFETY: the callers run with the instruction set.
        unsafe { [_mm256_setzero_pd(); 2] }
    }
    #[inline(always)]
    unsafe fn wide_add(total: [__m256d; 2], value: Self) -> [__m256d; 2] {
        // SAFETY: the callers run with the instruction set.
        unsafe {
            let low = _mm256_cvtps_pd(_mm256_castps256_ps128(value));
            let high = _mm256_cvtps_pd(_mm256_extractf128_ps(value, 1));
            [_mm256_add_pd(total[0], low), _mm256_add_pd(total[1], high)]
        }
    }
    #[inline(always)]
    unsafe fn wide_total(total: [__m256d; 2]) -> f64 {
        // SAFETY: the callers run with the instruction set.
        unsafe {
            let sum = _mm256_add_pd(total[0], total[1]);
            let pairs = _mm_add_pd(_mm256_castpd256_pd128(sum), _mm256_extractf128_pd(sum, 1));
            _mm_cvtsd_f64(_mm_add_sd(pairs, _mm_unpackhi_pd(pairs, pairs)))
        }
    }
}

/// The three column shifts' masks of the vector at `column`: lane `l` of shift `b` reads
/// column `column + l + b − 1`, inside `0..width`.
#[inline(always)]
fn shift_masks<V: Lanes>(column: usize, width: usize) -> [V::Mask; 3] {
    let mut masks = [V::mask(0, 0); 3];
    for (b, mask) in masks.iter_mut().enumerate() {
        let start = column as isize + b as isize - 1;
        *mask = V::mask(-start, width as isize - start);
    }
    masks
}

/// Row `row` (of `height`, possibly −1 or `height`) of a plane, shifted `b − 1` columns from
/// `column`, zero outside the plane.
///
/// # Safety
/// `V`'s instruction set is available; `plane` points to `height` rows of `width` values; the
/// masks come from [`shift_masks`].
#[inline(always)]
unsafe fn shifted<V: Lanes>(
    plane: *const f32,
    row: isize,
    height: usize,
    width: usize,
    column: usize,
    masks: &[V::Mask; 3],
) -> [V; 3] {
    // SAFETY: the caller's; the masked lanes are not read, every other lane is inside the row
    // (the masks), and `wrapping_offset` keeps the address of the lane before the row free of a
    // pointer's bounds.
    unsafe {
        if row < 0 || row >= height as isize {
            return [V::zero(); 3];
        }
        let at = plane.wrapping_add(row as usize * width + column);
        let mut taps = [V::zero(); 3];
        for (b, tap) in taps.iter_mut().enumerate() {
            *tap = V::load(at.wrapping_offset(b as isize - 1), masks[b]);
        }
        taps
    }
}

/// The row blocks (`ROWS` output rows each), the products in descending order with
/// `DESCENDING`, added to `to` with `ADD` (whose values must then be initialised) and stored
/// there otherwise.
///
/// # Safety
/// `V`'s instruction set is available; `to` points to `input.len()` values.
#[inline(always)]
unsafe fn rows<V: Lanes, const ROWS: usize, const DESCENDING: bool, const ADD: bool>(
    input: &[f32],
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    to: *mut f32,
) {
    let height = input.len() / width;
    // SAFETY: the caller's (the instruction set; `to`'s length).
    unsafe {
        // Tap `t = 3a + b` of the kernel, turned around for the transpose.
        let mut weights = [V::zero(); 9];
        for (t, weight) in weights.iter_mut().enumerate() {
            *weight = V::splat(kernel[if DESCENDING { 8 - t } else { t }]);
        }
        let start = V::splat(first);
        let mut top = 0;
        while top < height {
            let rows = ROWS.min(height - top);
            for column in (0..width).step_by(V::LANES) {
                let masks = shift_masks::<V>(column, width);
                let mut sums = [start; ROWS];
                for step in 0..ROWS + 2 {
                    let r = if DESCENDING { ROWS + 1 - step } else { step };
                    if r >= rows + 2 {
                        continue;
                    }
                    let row = (top + r) as isize - 1;
                    let taps = shifted::<V>(input.as_ptr(), row, height, width, column, &masks);
                    for a_step in 0..3 {
                        let a = if DESCENDING { 2 - a_step } else { a_step };
                        // Input row `r` of the block is tap row `a` of output row `r − a`.
                        if r < a || r - a >= rows {
                            continue;
                        }
                        let sum = &mut sums[r - a];
                        for b_step in 0..3 {
                            let b = if DESCENDING { 2 - b_step } else { b_step };
                            *sum = V::add(*sum, V::mul(weights[3 * a + b], taps[b]));
                        }
                    }
                }
                // The shift-0 mask: the row's valid lanes from `column`.
                let mask = masks[1];
                for (q, &sum) in sums.iter().enumerate().take(rows) {
                    // Row `top + q < height`, the lanes of `mask` inside the row.
                    let at = to.add((top + q) * width + column);
                    let value = if ADD {
                        V::add(V::load(at, mask), sum)
                    } else {
                        sum
                    };
                    V::store(at, mask, value);
                }
            }
            top += rows;
        }
    }
}

/// [`weight_sums`] with `V`, `ROWS` gradient rows per block.
///
/// # Safety
/// `V`'s instruction set is available.
#[inline(always)]
unsafe fn sums<V: Lanes, const ROWS: usize>(x: &[f32], grad: &[f32], width: usize) -> [f64; 9] {
    let height = x.len() / width;
    // SAFETY: the caller's (the instruction set); the loads stay inside the planes (the masks).
    unsafe {
        let mut totals = [V::wide_zero(); 9];
        let mut top = 0;
        while top < height {
            let rows = ROWS.min(height - top);
            let mut sums = [V::zero(); 9];
            for column in (0..width).step_by(V::LANES) {
                // Only the lanes with a gradient: past the row's end, `x`'s next values would
                // meet its zeros (and an infinite one would make a NaN there).
                let mut masks = shift_masks::<V>(column, width);
                let valid = masks[1];
                for mask in &mut masks {
                    *mask = V::and(*mask, valid);
                }
                let mut grads = [V::zero(); ROWS];
                for (q, lanes) in grads.iter_mut().enumerate().take(rows) {
                    *lanes = V::load(grad.as_ptr().add((top + q) * width + column), masks[1]);
                }
                for r in 0..rows + 2 {
                    let row = (top + r) as isize - 1;
                    let taps = shifted::<V>(x.as_ptr(), row, height, width, column, &masks);
                    for a in 0..3 {
                        // Row `r` of `x` meets gradient row `r − a` at tap row `a`.
                        if r < a || r - a >= rows {
                            continue;
                        }
                        for b in 0..3 {
                            let product = V::mul(grads[r - a], taps[b]);
                            sums[3 * a + b] = V::add(sums[3 * a + b], product);
                        }
                    }
                }
            }
            for (total, &sum) in totals.iter_mut().zip(&sums) {
                *total = V::wide_add(*total, sum);
            }
            top += rows;
        }
        let mut result = [0.0; 9];
        for (sum, &total) in result.iter_mut().zip(&totals) {
            *sum = V::wide_total(total);
        }
        result
    }
}
