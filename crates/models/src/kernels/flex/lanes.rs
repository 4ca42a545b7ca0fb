//! Branch-free selects on f32 lanes and an AVX2 switch, shared by the pooling kernels, and
//! the AVX-512 switch of the convolutions.

/// PyTorch's comparison for max-pooling: `candidate` wins when greater or NaN.
#[inline(always)]
pub(super) fn max_nan(best: f32, candidate: f32) -> f32 {
    select(
        mask((candidate > best) | candidate.is_nan()),
        candidate,
        best,
    )
}

/// All ones when `condition`, else zero.
#[inline(always)]
pub(super) fn mask(condition: bool) -> u32 {
    (condition as u32).wrapping_neg()
}

/// `when_set` where `mask` is all ones, else `otherwise`, by bits: no branch, and LLVM turns a
/// loop of these into vector blends.
#[inline(always)]
pub(super) fn select(mask: u32, when_set: f32, otherwise: f32) -> f32 {
    f32::from_bits((when_set.to_bits() & mask) | (otherwise.to_bits() & !mask))
}

/// Runs `$body` compiled for AVX2 + FMA when the CPU has them (the crate is built for baseline
/// x86-64, where these loops stay scalar), else as built.
macro_rules! with_avx2 {
    ($vis:vis $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(super) use with_avx2;

/// Whether the AVX-512 paths run: the CPU has it and the activation kernels use it
/// (`ACTIVATIONS_ISA=avx2` or `baseline` turns these off too).
pub(super) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        activations::fused::kernel_isa() == "avx512" && is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
