//! A sample's four phase planes, which a stride-2 convolution's taps read as shifted planes
//! (`direct3x3.rs`): input row `2r + dr` is row `r` of the even phase (dr = 0) or row `r` or
//! `r − 1` of the odd one; columns likewise.

use super::super::lanes::avx512;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Splits `x` (planes `width` wide, an even number of rows each, `width` even) into its four
/// phase planes `[phase, C_in, rows / 2, width / 2]` in `phases`, phase
/// `2 · (row % 2) + column % 2`.
pub(super) fn split_phases(x: &[f32], width: usize, phases: &mut [f32]) {
    assert!(
        width.is_multiple_of(2) && x.len().is_multiple_of(2 * width),
        "split_phases: even planes"
    );
    assert_eq!(
        phases.len(),
        x.len(),
        "split_phases: one value per input value"
    );
    #[cfg(target_arch = "x86_64")]
    if width <= 32 && avx512() {
        // SAFETY: the CPU has AVX-512.
        return unsafe { split_rows_avx512(x, width, phases) };
    }
    let (half, phase_len) = (width / 2, x.len() / 4);
    for (row_index, row) in x.chunks_exact(width).enumerate() {
        // Input row `y` (over all channels) is row `y / 2` of phases `2 · (y % 2) + 0 / 1`.
        let start = row_index / 2 * half;
        let parity = row_index % 2;
        let even = &mut phases[2 * parity * phase_len + start..][..half];
        for (value, pair) in even.iter_mut().zip(row.chunks_exact(2)) {
            *value = pair[0];
        }
        let odd = &mut phases[(2 * parity + 1) * phase_len + start..][..half];
        for (value, pair) in odd.iter_mut().zip(row.chunks_exact(2)) {
            *value = pair[1];
        }
    }
}

/// [`split_phases`] for rows of at most 32 values: each row's even and odd values picked from
/// two vectors by one permutation each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn split_rows_avx512(x: &[f32], width: usize, phases: &mut [f32]) {
    const LANES: usize = 16;
    let (half, phase_len) = (width / 2, x.len() / 4);
    let lanes = |count: usize| (((1u32 << count.min(LANES)) - 1) & 0xffff) as u16;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let (low, high, out) = (
        lanes(width),
        lanes(width.saturating_sub(LANES)),
        lanes(half),
    );
    for (row_index, row) in x.chunks_exact(width).enumerate() {
        let start = row_index / 2 * half;
        let parity = row_index % 2;
        let even_row = &mut phases[2 * parity * phase_len + start..][..half];
        // SAFETY: the masks keep the loads inside `row` and the stores inside the phase rows.
        unsafe {
            let first = _mm512_maskz_loadu_ps(low, row.as_ptr());
            let second = _mm512_maskz_loadu_ps(high, row.as_ptr().wrapping_add(LANES));
            let picked = _mm512_permutex2var_ps(first, even, second);
            _mm512_mask_storeu_ps(even_row.as_mut_ptr(), out, picked);
            let odd_row = &mut phases[(2 * parity + 1) * phase_len + start..][..half];
            let picked = _mm512_permutex2var_ps(first, odd, second);
            _mm512_mask_storeu_ps(odd_row.as_mut_ptr(), out, picked);
        }
    }
}
