//! The 2×2 stride-2 max-pooling of one row of windows (two input rows), shared by the conv
//! block (`block.rs`) and the plain max-pool (`pool.rs`): the maximum, each window's winner
//! (0–3, row-major) and a value saved at it; and the gradient sent back to the winners. Scalar
//! loops (the reference, and the path on CPUs without AVX-512) and their AVX-512 forms
//! (`pool_rows_avx512.rs`).

use super::lanes::{mask, max_nan, select, with_avx2};
use super::pool_rows_avx512;
use std::mem::MaybeUninit;

with_avx2!(pool_rows(post_top: &[f32], post_bottom: &[f32], pooled: &mut [MaybeUninit<f32>]) {
    let windows = pooled.len();
    let (top, bottom) = (&post_top[..2 * windows], &post_bottom[..2 * windows]);
    for (col, out) in pooled.iter_mut().enumerate() {
        let (left, right) = (2 * col, 2 * col + 1);
        out.write(max_nan(max_nan(max_nan(top[left], top[right]), bottom[left]), bottom[right]));
    }
});

/// A row of windows for [`pool_rows_keeping`]: the activation's output and input rows, and
/// where the maxima, winners and saved values go.
pub(super) struct KeepRow<'a> {
    pub(super) post: [&'a [f32]; 2],
    pub(super) pre: [&'a [f32]; 2],
    pub(super) pooled: &'a mut [MaybeUninit<f32>],
    pub(super) winners: &'a mut [MaybeUninit<u8>],
    pub(super) saved: &'a mut [MaybeUninit<f32>],
}

// Each window's maximum of `post`, its winner's position (0–3, row-major) and the value the
// backward reads there (`post` when `saves_output`, else `pre`), by max-pooling's rule: a later
// element wins when greater or NaN, so ties go to the first.
with_avx2!(pool_rows_keeping(row: KeepRow, saves_output: bool) {
    let windows = row.pooled.len();
    let [post_top, post_bottom] = row.post.map(|r| &r[..2 * windows]);
    let [pre_top, pre_bottom] = row.pre.map(|r| &r[..2 * windows]);
    let (winners, saved) = (&mut row.winners[..windows], &mut row.saved[..windows]);
    let keep_output = mask(saves_output);
    for (col, out) in row.pooled.iter_mut().enumerate() {
        let (left, right) = (2 * col, 2 * col + 1);
        let (a, b, c, d) = (post_top[left], post_top[right], post_bottom[left], post_bottom[right]);
        let takes_b = mask((b > a) | b.is_nan());
        let best = select(takes_b, b, a);
        let at = select(takes_b, pre_top[right], pre_top[left]);
        let index = takes_b & 1;
        let takes_c = mask((c > best) | c.is_nan());
        let best = select(takes_c, c, best);
        let at = select(takes_c, pre_bottom[left], at);
        let index = (takes_c & 2) | (!takes_c & index);
        let takes_d = mask((d > best) | d.is_nan());
        let best = select(takes_d, d, best);
        let at = select(takes_d, pre_bottom[right], at);
        let index = (takes_d & 3) | (!takes_d & index);
        out.write(best);
        winners[col].write(index as u8);
        saved[col].write(select(keep_output, best, at));
    }
});

// Each window's gradient to its winner, zero to the other three.
with_avx2!(unpool_rows(grad: &[f32], winners: &[u8], top: &mut [f32], bottom: &mut [f32]) {
    let windows = grad.len();
    let winners = &winners[..windows];
    let (top, bottom) = (&mut top[..2 * windows], &mut bottom[..2 * windows]);
    for (col, &g) in grad.iter().enumerate() {
        let winner = winners[col];
        let to = |position: u8| select(mask(winner == position), g, 0.0);
        top[2 * col] = to(0);
        top[2 * col + 1] = to(1);
        bottom[2 * col] = to(2);
        bottom[2 * col + 1] = to(3);
    }
});

/// [`pool_rows_keeping`], with AVX-512 when `simd` ([`pool_rows_avx512::available`]).
pub(super) fn keep_row(simd: bool, row: KeepRow, saves_output: bool) {
    let windows = row.pooled.len();
    assert!(row.winners.len() >= windows && row.saved.len() >= windows);
    assert!(
        row.post
            .iter()
            .chain(&row.pre)
            .all(|r| r.len() >= 2 * windows)
    );
    #[cfg(target_arch = "x86_64")]
    if simd {
        let pointers = pool_rows_avx512::KeepRowPtrs {
            post: row.post.map(<[f32]>::as_ptr),
            pre: row.pre.map(<[f32]>::as_ptr),
            pooled: row.pooled.as_mut_ptr().cast(),
            winners: row.winners.as_mut_ptr().cast(),
            saved: row.saved.as_mut_ptr().cast(),
            windows,
        };
        // SAFETY: the CPU has AVX-512 (`simd`), and the lengths were checked above.
        return unsafe { pool_rows_avx512::pool_rows_keeping(pointers, saves_output) };
    }
    let _ = simd;
    pool_rows_keeping(row, saves_output)
}

/// [`unpool_rows`], with AVX-512 when `simd`.
pub(super) fn unpool_row(
    simd: bool,
    grad: &[f32],
    winners: &[u8],
    top: &mut [f32],
    bottom: &mut [f32],
) {
    let windows = grad.len();
    assert!(winners.len() >= windows && top.len() >= 2 * windows && bottom.len() >= 2 * windows);
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has AVX-512 (`simd`), and the lengths were checked above.
        return unsafe {
            pool_rows_avx512::unpool_rows(
                grad.as_ptr(),
                winners.as_ptr(),
                top.as_mut_ptr(),
                bottom.as_mut_ptr(),
                windows,
            )
        };
    }
    let _ = simd;
    unpool_rows(grad, winners, top, bottom)
}

/// The maximum of each 2×2 window of one row (`top`, `bottom`) into `pooled`: through the
/// AVX-512 kernel when there is `scratch` ([`WinnerScratch::new`] gives one where the CPU has
/// AVX-512), else the scalar loop.
pub(super) fn max_row(
    scratch: Option<&mut WinnerScratch>,
    top: &[f32],
    bottom: &[f32],
    pooled: &mut [MaybeUninit<f32>],
) {
    match scratch {
        Some(scratch) => scratch.pool(top, bottom, pooled),
        None => pool_rows(top, bottom, pooled),
    }
}

/// AVX-512 pooling where nothing keeps the winners (the plain max-pool, a conv block in
/// evaluation): each call finds the row's winners again, into scratch rows.
pub(super) struct WinnerScratch {
    pooled: Vec<MaybeUninit<f32>>,
    winners: Vec<MaybeUninit<u8>>,
    saved: Vec<MaybeUninit<f32>>,
}

impl WinnerScratch {
    /// Scratch for rows of `windows` windows; `None` when the CPU lacks AVX-512.
    pub(super) fn new(windows: usize) -> Option<Self> {
        pool_rows_avx512::available().then(|| Self {
            pooled: vec![MaybeUninit::new(0.0); windows],
            winners: vec![MaybeUninit::new(0); windows],
            saved: vec![MaybeUninit::new(0.0); windows],
        })
    }

    /// Max-pools one row of windows (`top`, `bottom`) into `pooled`.
    pub(super) fn pool(&mut self, top: &[f32], bottom: &[f32], pooled: &mut [MaybeUninit<f32>]) {
        let windows = pooled.len();
        let row = KeepRow {
            post: [top, bottom],
            pre: [top, bottom],
            pooled,
            winners: &mut self.winners[..windows],
            saved: &mut self.saved[..windows],
        };
        keep_row(true, row, true);
    }

    /// Each window's gradient `grad` to its maximum in `top`/`bottom`, zero to the other three,
    /// into the first `2 · grad.len()` elements of `dx_top` and `dx_bottom`.
    pub(super) fn unpool(
        &mut self,
        [top, bottom]: [&[f32]; 2],
        grad: &[f32],
        dx_top: &mut [MaybeUninit<f32>],
        dx_bottom: &mut [MaybeUninit<f32>],
    ) {
        let windows = grad.len();
        assert!(dx_top.len() >= 2 * windows && dx_bottom.len() >= 2 * windows);
        let row = KeepRow {
            post: [top, bottom],
            pre: [top, bottom],
            pooled: &mut self.pooled[..windows],
            winners: &mut self.winners[..windows],
            saved: &mut self.saved[..windows],
        };
        keep_row(true, row, true);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `new` checked AVX-512; `keep_row` wrote the first `windows` winners; the
        // lengths were checked above.
        unsafe {
            pool_rows_avx512::unpool_rows(
                grad.as_ptr(),
                self.winners.as_ptr().cast(),
                dx_top.as_mut_ptr().cast(),
                dx_bottom.as_mut_ptr().cast(),
                windows,
            )
        };
    }
}

/// Rows for the vector-against-scalar tests of the pooling loops: small integers (many ties)
/// with NaNs, infinities and zeros among them, from a seeded generator.
#[cfg(test)]
pub(super) fn special_rows(seed: u64) -> impl FnMut(usize) -> Vec<f32> {
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, 1.0, 1.0];
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    move |len| {
        (0..len)
            .map(|_| match next() % 4 {
                0 => specials[next() as usize % specials.len()],
                _ => (next() % 7) as f32 - 3.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 loops (full blocks of 16 windows and masked tails) against the scalar ones,
    /// with ties, NaNs and infinities among random values; skipped where the CPU lacks AVX-512
    /// (the scalar loops are then the ones the block tests run).
    #[test]
    fn vector_and_scalar_pooling_agree() {
        if !pool_rows_avx512::available() {
            return;
        }
        let mut row = special_rows(99);
        for windows in [1, 5, 7, 14, 16, 17, 33] {
            for _ in 0..20 {
                let (post, pre) = (
                    [row(2 * windows), row(2 * windows)],
                    [row(2 * windows), row(2 * windows)],
                );
                let grad = row(windows);
                let run = |simd: bool, saves_output: bool| {
                    let mut pooled = vec![MaybeUninit::new(-7.0f32); windows];
                    let mut winners = vec![MaybeUninit::new(9u8); windows];
                    let mut saved = vec![MaybeUninit::new(-7.0f32); windows];
                    let row = KeepRow {
                        post: [&post[0], &post[1]],
                        pre: [&pre[0], &pre[1]],
                        pooled: &mut pooled,
                        winners: &mut winners,
                        saved: &mut saved,
                    };
                    keep_row(simd, row, saves_output);
                    // SAFETY: both loops write every element.
                    let bits = |v: Vec<MaybeUninit<f32>>| -> Vec<u32> {
                        v.into_iter()
                            .map(|e| unsafe { e.assume_init() }.to_bits())
                            .collect()
                    };
                    let winners: Vec<u8> = winners
                        .into_iter()
                        .map(|e| unsafe { e.assume_init() })
                        .collect();
                    let (mut top, mut bottom) =
                        (vec![-7.0f32; 2 * windows], vec![-7.0f32; 2 * windows]);
                    unpool_row(simd, &grad, &winners, &mut top, &mut bottom);
                    let to_bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                    (
                        bits(pooled),
                        winners,
                        bits(saved),
                        to_bits(top),
                        to_bits(bottom),
                    )
                };
                // The max-only row (no winners kept), scalar and through the scratch, gives
                // the same maxima.
                let max_only = |scratch: Option<&mut WinnerScratch>| {
                    let mut pooled = vec![MaybeUninit::new(-7.0f32); windows];
                    max_row(scratch, &post[0], &post[1], &mut pooled);
                    // SAFETY: both paths write every element.
                    let bits: Vec<u32> = pooled
                        .into_iter()
                        .map(|e| unsafe { e.assume_init() }.to_bits())
                        .collect();
                    bits
                };
                let mut scratch = WinnerScratch::new(windows);
                assert_eq!(max_only(None), max_only(scratch.as_mut()), "max-only rows");
                assert_eq!(max_only(None), run(false, false).0, "max-only vs kept");
                for saves_output in [false, true] {
                    let scalar = run(false, saves_output);
                    assert!(scalar.1.iter().all(|&w| w < 4), "winners {:?}", scalar.1);
                    assert_eq!(
                        run(true, saves_output),
                        scalar,
                        "{windows} windows: {post:?} {pre:?} {grad:?}"
                    );
                }
            }
        }
    }
}
