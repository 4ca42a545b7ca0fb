//! Sums of a plane in a fixed order that vectorises: f32 lanes within a block, the blocks in
//! f64. Inlined into the plane kernels (`simd_loop!`), so they compile for each ISA there.

/// f32 lanes of the block sums: two AVX-512 registers, so the additions of a block
/// overlap instead of waiting on one register.
pub(crate) const LANES: usize = 32;
/// Elements summed in f32 lanes before the block's total joins the f64 sum.
pub(crate) const BLOCK: usize = 1024;

/// `Σ term(a[i], b[i])` in [`LANES`] f32 lanes per [`BLOCK`]-element block, the blocks in f64:
/// a fixed order (so two runs agree to the bit) that vectorises, where an f64 sum of each
/// element waits on the previous addition.
#[inline(always)]
pub(crate) fn block_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32 + Copy) -> f64 {
    let mut total = 0.0f64;
    for (a, b) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let mut lanes = [0.0f32; LANES];
        let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        for (x, y) in (&mut xs).zip(&mut ys) {
            for j in 0..LANES {
                lanes[j] += term(x[j], y[j]);
            }
        }
        let rest: f32 = xs
            .remainder()
            .iter()
            .zip(ys.remainder())
            .map(|(&x, &y)| term(x, y))
            .sum();
        total += lanes.iter().map(|&l| l as f64).sum::<f64>() + rest as f64;
    }
    total
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
