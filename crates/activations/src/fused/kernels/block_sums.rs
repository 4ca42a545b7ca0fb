//! Sums of a plane in a fixed order that vectorises: f32 lanes within a block, the blocks in
//! f64. Inlined into the plane kernels (`simd_loop!`), so they compile for each ISA there; only
//! the lanes' total ([`lanes_total`]) is a call of its own.

/// f32 lanes of the block sums: two AVX-512 registers, so the additions of a block
/// overlap instead of waiting on one register.
pub(crate) const LANES: usize = 32;
/// Elements summed in f32 lanes before the block's total joins the f64 sum.
pub(crate) const BLOCK: usize = 1024;

/// `Σ term(a[i], b[i])` in [`LANES`] f32 lanes per [`BLOCK`]-element block, the blocks in f64:
/// a fixed order (so two runs agree to the bit) that vectorises, where an f64 sum of each
/// element waits on the previous addition. Lane `j` of the last 16 is added to lane `j` of the
/// first 16 at the end of a block, then [`lanes_total`] sums those 16.
#[inline(always)]
pub(crate) fn block_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32 + Copy) -> f64 {
    const HALF: usize = LANES / 2;
    let mut total = 0.0f64;
    for (a, b) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let (mut low, mut high) = ([0.0f32; HALF], [0.0f32; HALF]);
        let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        for (x, y) in (&mut xs).zip(&mut ys) {
            // Fixed-size arrays: no bounds checks, so the lanes stay two vector registers.
            let x: &[f32; LANES] = x.try_into().expect("exact chunk");
            let y: &[f32; LANES] = y.try_into().expect("exact chunk");
            for j in 0..HALF {
                low[j] += term(x[j], y[j]);
                high[j] += term(x[HALF + j], y[HALF + j]);
            }
        }
        // The tail in lanes of its own (indexing the lanes by its position would keep them in
        // memory through the loop above), then lane by lane into them: independent additions,
        // where a running sum of the tail is a chain of dependent ones.
        let mut tail = [0.0f32; LANES];
        for (t, (&x, &y)) in tail
            .iter_mut()
            .zip(xs.remainder().iter().zip(ys.remainder()))
        {
            *t = term(x, y);
        }
        let mut lanes = [0.0f32; HALF];
        for j in 0..HALF {
            lanes[j] = (low[j] + tail[j]) + (high[j] + tail[HALF + j]);
        }
        total += lanes_total(lanes);
    }
    total
}

/// The total of 16 f32 lanes in a fixed order: the upper half added to the lower half, in f32
/// down to four lanes (two vector additions), then those four in f64. A running sum would take
/// 16 dependent additions; this is called about fifteen times per FReLU plane.
///
/// Never inlined, on purpose: inlined, LLVM's vectoriser carried this tree's two-lane f64
/// conversions back into the caller's loop and ran its 32 lanes as 16 pairs of floats
/// (64-bit loads, no wider), and the sums of FReLU's 196- and 784-value planes cost more than
/// their arithmetic. One call per block is nothing next to that.
#[inline(never)]
pub(crate) fn lanes_total(lanes: [f32; 16]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // The same order with four 16-byte loads: written lane by lane, the compiler loaded
        // the lanes 8 bytes at a time, each load waiting on the caller's 64-byte store.
        // SAFETY: SSE2 is part of x86_64, and the four loads stay inside `lanes`.
        unsafe {
            let p = lanes.as_ptr();
            let (a, b) = (_mm_loadu_ps(p), _mm_loadu_ps(p.add(4)));
            let (c, d) = (_mm_loadu_ps(p.add(8)), _mm_loadu_ps(p.add(12)));
            let four = _mm_add_ps(_mm_add_ps(a, c), _mm_add_ps(b, d));
            let low = _mm_cvtps_pd(four);
            let high = _mm_cvtps_pd(_mm_movehl_ps(four, four));
            let pairs = _mm_add_pd(low, high);
            _mm_cvtsd_f64(_mm_add_sd(pairs, _mm_unpackhi_pd(pairs, pairs)))
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    tree(lanes)
}

/// [`lanes_total`]'s order, lane by lane: the upper half added to the lower half down to four
/// lanes, then those four in f64.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))] // the reference of the tests there
fn tree(lanes: [f32; 16]) -> f64 {
    let mut lanes = lanes;
    for half in [8, 4] {
        for j in 0..half {
            lanes[j] += lanes[j + half];
        }
    }
    let wide = |j: usize| f64::from(lanes[j]);
    (wide(0) + wide(2)) + (wide(1) + wide(3))
}

/// `Σ a·b` in the order of [`block_sum`].
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f64 {
    block_sum(a, b, |x, y| x * y)
}

/// `Σ a` in the order of [`block_sum`].
#[inline(always)]
pub(crate) fn sum(a: &[f32]) -> f64 {
    block_sum(a, a, |x, _| x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector path adds in the order written lane by lane, to the bit, for values of every
    /// size and sign, zeros and non-finite ones included.
    #[test]
    fn lanes_total_adds_in_the_order_of_the_tree() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let special = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            1e-40,
        ];
        for round in 0..20_000 {
            let lanes: [f32; 16] = std::array::from_fn(|_| {
                let bits = next();
                if round % 7 == 0 && bits % 5 == 0 {
                    special[(bits >> 8) as usize % special.len()]
                } else {
                    // A random sign and mantissa, exponents from 2^-30 to 2^30.
                    let exponent = 97 + (bits >> 32) as u32 % 61;
                    f32::from_bits(((bits as u32) & 0x807f_ffff) | (exponent << 23))
                }
            });
            let (fast, reference) = (lanes_total(lanes), tree(lanes));
            assert!(
                fast.to_bits() == reference.to_bits() || (fast.is_nan() && reference.is_nan()),
                "{lanes:?}: {fast} vs {reference}"
            );
        }
    }
}
