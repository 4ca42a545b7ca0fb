//! AVX-512 forms of the two pooling-row loops (`pool_rows.rs`), sixteen 2×2 windows per
//! step and a row's last few through masked loads and stores. The scalar loops in `pool_rows.rs`
//! stay the reference (and the path on CPUs without AVX-512): LLVM does not vectorise their
//! stride-2 loads with the select chain, and the scalar forward took a fifth of a training
//! step. A test in `pool_rows.rs` runs both on rows with ties, NaNs and infinities.

/// Whether the CPU runs these kernels (AVX-512 F, and BW for the winners' masked loads).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The rows of windows `pool_rows_keeping` reads and writes, `windows` long.
pub(super) struct KeepRowPtrs {
    pub(super) post: [*const f32; 2],
    pub(super) pre: [*const f32; 2],
    pub(super) pooled: *mut f32,
    pub(super) winners: *mut u8,
    pub(super) saved: *mut f32,
    pub(super) windows: usize,
}

/// `pool_rows::pool_rows_keeping` with AVX-512.
///
/// # Safety
/// [`available`]; `post` and `pre` rows hold `2 · windows` elements, the outputs `windows`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pool_rows_keeping(row: KeepRowPtrs, saves_output: bool) {
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mut done = 0;
    while done < row.windows {
        let count = (row.windows - done).min(16);
        let (low_mask, high_mask, out_mask) = masks(count);
        // SAFETY (block): every access is masked to the caller's `2 · windows` / `windows`.
        unsafe {
            // Even and odd elements of the next 2·count: the windows' left and right columns.
            let split = |row: *const f32| {
                let start = row.add(2 * done);
                let low = _mm512_maskz_loadu_ps(low_mask, start);
                let high = _mm512_maskz_loadu_ps(high_mask, start.add(16));
                (
                    _mm512_permutex2var_ps(low, even, high),
                    _mm512_permutex2var_ps(low, odd, high),
                )
            };
            let (a, b) = split(row.post[0]);
            let (c, d) = split(row.post[1]);
            let (pre_a, pre_b) = split(row.pre[0]);
            let (pre_c, pre_d) = split(row.pre[1]);
            // Max-pooling's rule: a later element wins when greater or NaN.
            let wins = |candidate: __m512, best: __m512| {
                _mm512_cmp_ps_mask::<_CMP_GT_OQ>(candidate, best)
                    | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(candidate, candidate)
            };
            let takes_b = wins(b, a);
            let best = _mm512_mask_blend_ps(takes_b, a, b);
            let at = _mm512_mask_blend_ps(takes_b, pre_a, pre_b);
            let index = _mm512_maskz_mov_epi32(takes_b, _mm512_set1_epi32(1));
            let takes_c = wins(c, best);
            let best = _mm512_mask_blend_ps(takes_c, best, c);
            let at = _mm512_mask_blend_ps(takes_c, at, pre_c);
            let index = _mm512_mask_mov_epi32(index, takes_c, _mm512_set1_epi32(2));
            let takes_d = wins(d, best);
            let best = _mm512_mask_blend_ps(takes_d, best, d);
            let at = _mm512_mask_blend_ps(takes_d, at, pre_d);
            let index = _mm512_mask_mov_epi32(index, takes_d, _mm512_set1_epi32(3));
            _mm512_mask_storeu_ps(row.pooled.add(done), out_mask, best);
            let saved = if saves_output { best } else { at };
            _mm512_mask_storeu_ps(row.saved.add(done), out_mask, saved);
            _mm512_mask_cvtepi32_storeu_epi8(row.winners.add(done).cast(), out_mask, index);
        }
        done += count;
    }
}

/// `pool_rows::unpool_rows` with AVX-512: `grad` (`windows` long) to each window's winner in the
/// `top` and `bottom` rows (`2 · windows` each), zero to the other three.
///
/// # Safety
/// [`available`]; the pointers hold those many elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn unpool_rows(
    grad: *const f32,
    winners: *const u8,
    top: *mut f32,
    bottom: *mut f32,
    windows: usize,
) {
    use std::arch::x86_64::*;
    let first_half = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let second_half =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    let mut done = 0;
    while done < windows {
        let count = (windows - done).min(16);
        let (low_mask, high_mask, in_mask) = masks(count);
        // SAFETY (block): every access is masked or copied to the caller's lengths.
        unsafe {
            let g = _mm512_maskz_loadu_ps(in_mask, grad.add(done));
            // A masked byte load (AVX-512 BW): a copy of a variable count into a buffer was a
            // `memcpy` call per row of 7 or 14 windows (3–6% of a FReLU CNN step).
            let packed = _mm512_castsi512_si128(_mm512_maskz_loadu_epi8(
                u64::from(in_mask),
                winners.add(done).cast(),
            ));
            let winner = _mm512_cvtepu8_epi32(packed);
            let to = |position: i32| {
                let wins = _mm512_cmpeq_epi32_mask(winner, _mm512_set1_epi32(position));
                _mm512_maskz_mov_ps(wins, g)
            };
            let (to_a, to_b, to_c, to_d) = (to(0), to(1), to(2), to(3));
            let store = |row: *mut f32, left: __m512, right: __m512| {
                let start = row.add(2 * done);
                let low = _mm512_permutex2var_ps(left, first_half, right);
                let high = _mm512_permutex2var_ps(left, second_half, right);
                _mm512_mask_storeu_ps(start, low_mask, low);
                _mm512_mask_storeu_ps(start.add(16), high_mask, high);
            };
            store(top, to_a, to_b);
            store(bottom, to_c, to_d);
        }
        done += count;
    }
}

/// For `count` ≤ 16 windows: the masks of the first and second 16 of their `2 · count` row
/// elements, and of the `count` windows.
fn masks(count: usize) -> (u16, u16, u16) {
    let bits = |n: usize| if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
    (
        bits(2 * count),
        bits((2 * count).saturating_sub(16)),
        bits(count),
    )
}
