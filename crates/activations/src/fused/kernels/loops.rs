//! The loops the Flex kernels are made of: a function of one or two `f32`s ([`Unary`],
//! [`Binary`]) run over slices split across rayon's threads, each chunk compiled
//! three times (AVX-512, AVX2+FMA, baseline) and picked at run time, so that LLVM turns the
//! scalar code into 16- or 8-lane SIMD.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per parallel task: large enough to amortise rayon's scheduling, small enough to
/// balance two to sixteen cores on the tensors an activation sees in training.
pub(crate) const CHUNK: usize = 1 << 15;

/// An element-wise function that the loops below inline into their SIMD bodies. Closures are
/// not enough: LLVM declines to inline a large closure (two exponentials, say) into the loop,
/// and then nothing vectorises, while `#[inline(always)]` on these methods is honoured.
pub(crate) trait Unary: Copy + Send + Sync {
    fn call(self, x: f32) -> f32;
}

pub(crate) trait Binary: Copy + Send + Sync {
    fn call(self, a: f32, b: f32) -> f32;
}

/// A small closure (the squeeze's selects), which LLVM inlines by itself.
#[derive(Clone, Copy)]
pub(crate) struct Closure<C>(pub C);
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

/// Which instruction set a chunk is compiled for ([`isa`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Baseline,
}

/// The environment variable that picks a lower instruction set than the best one detected.
pub(crate) const ISA_VARIABLE: &str = "ACTIVATIONS_ISA";

/// The instruction set the Flex kernels run: the best this CPU has, or a lower one named by
/// `ACTIVATIONS_ISA` (`avx2`, `baseline`), so that the tests and benchmarks can run every path on one
/// machine. Chosen once per process; unset or empty: the detected set; a name this CPU cannot
/// run, or an unknown one, is reported once on stderr and the detected set is used.
pub(crate) fn isa() -> Isa {
    static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let detected = detect();
        let name = std::env::var_os(ISA_VARIABLE).unwrap_or_default();
        let name = name.to_string_lossy().to_ascii_lowercase();
        if name.is_empty() {
            return detected;
        }
        match choose(&name, detected) {
            Ok(isa) => isa,
            Err(why) => {
                eprintln!("{ISA_VARIABLE}={name}: {why}; using {}", isa_name(detected));
                detected
            }
        }
    })
}

fn detect() -> Isa {
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

/// The instruction sets from the best down, with their names.
fn ladder() -> Vec<(Isa, &'static str)> {
    #[allow(unused_mut)]
    let mut ladder = Vec::new();
    #[cfg(target_arch = "x86_64")]
    ladder.extend([(Isa::Avx512, "avx512"), (Isa::Avx2, "avx2")]);
    ladder.push((Isa::Baseline, "baseline"));
    ladder
}

pub(crate) fn isa_name(isa: Isa) -> &'static str {
    ladder()
        .into_iter()
        .find(|&(rung, _)| rung == isa)
        .map_or("baseline", |(_, name)| name)
}

/// The set named `name` if `detected` includes it (it is `detected` or below it).
fn choose(name: &str, detected: Isa) -> Result<Isa, String> {
    let ladder = ladder();
    let names: Vec<&str> = ladder.iter().map(|&(_, name)| name).collect();
    let wanted = ladder
        .iter()
        .position(|&(_, rung)| rung == name)
        .ok_or_else(|| format!("unknown instruction set (one of {})", names.join(", ")))?;
    let best = ladder
        .iter()
        .position(|&(rung, _)| rung == detected)
        .unwrap_or(0);
    if wanted < best {
        return Err("this CPU does not have it".into());
    }
    Ok(ladder[wanted].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_instruction_set_can_be_chosen_and_a_higher_or_unknown_one_cannot() {
        assert_eq!(choose("baseline", Isa::Baseline), Ok(Isa::Baseline));
        assert!(
            choose("avx", Isa::Baseline)
                .unwrap_err()
                .contains("unknown")
        );
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(choose("avx2", Isa::Avx512), Ok(Isa::Avx2));
            assert_eq!(choose("baseline", Isa::Avx2), Ok(Isa::Baseline));
            assert!(
                choose("avx512", Isa::Avx2)
                    .unwrap_err()
                    .contains("does not have")
            );
            assert_eq!(choose("avx512", Isa::Avx512), Ok(Isa::Avx512));
        }
    }
}

/// Lets `simd_loop!` compile the plane kernels, which have no formula, for each ISA.
pub(crate) trait Plain: Copy {}
impl Plain for () {}

/// Defines a loop over slices and its three compilations. The body must be a plain indexed loop
/// over `&mut`/`&` slices (no aliasing), which LLVM vectorises once `f` is inlined.
macro_rules! simd_loop {
    ($vis:vis $name:ident, ($($arg:ident: $ty:ty),*), $f:ident: $fty:path, $body:block) => {
        // A plane kernel takes its inputs, outputs and constants as separate slices and
        // scalars (FReLU's split has seven), which LLVM needs to see as non-aliasing.
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<F: $fty>(isa: Isa, $($arg: $ty,)* $f: F) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<F: $fty>($($arg: $ty,)* $f: F) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx512<F: $fty>($($arg: $ty,)* $f: F) {
                body($($arg,)* $f)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
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

simd_loop!(pub(crate) map_in_place, (values: &mut [f32]), f: Unary, {
    for v in values.iter_mut() {
        *v = f.call(*v);
    }
});

simd_loop!(pub(crate) map_into, (input: &[f32], output: &mut [MaybeUninit<f32>]), f: Unary, {
    for (o, &x) in output.iter_mut().zip(input) {
        o.write(f.call(x));
    }
});

simd_loop!(pub(crate) zip_in_place, (other: &[f32], values: &mut [f32]), f: Binary, {
    for (v, &a) in values.iter_mut().zip(other) {
        *v = f.call(a, *v);
    }
});

simd_loop!(pub(crate) zip_into, (lhs: &[f32], rhs: &[f32], output: &mut [MaybeUninit<f32>]), f: Binary, {
    for ((o, &a), &b) in output.iter_mut().zip(lhs).zip(rhs) {
        o.write(f.call(a, b));
    }
});

simd_loop!(pub(crate) map_to, (input: &[f32], output: &mut [f32]), f: Unary, {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = f.call(x);
    }
});

/// `values[i] = f(values[i])`, in parallel chunks.
pub(crate) fn for_each(values: &mut [f32], f: impl Unary) {
    let isa = isa();
    if values.len() <= CHUNK {
        return map_in_place(isa, values, f);
    }
    values
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| map_in_place(isa, chunk, f));
}

/// `output[i] = f(input[i])`, in parallel chunks.
pub(crate) fn map(input: &[f32], output: &mut [MaybeUninit<f32>], f: impl Unary) {
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
pub(crate) fn zip_with_into_second(other: &[f32], values: &mut [f32], f: impl Binary) {
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
pub(crate) fn zip_with(lhs: &[f32], rhs: &[f32], output: &mut [MaybeUninit<f32>], f: impl Binary) {
    let isa = isa();
    if lhs.len() <= CHUNK {
        return zip_into(isa, lhs, rhs, output, f);
    }
    output
        .par_chunks_mut(CHUNK)
        .zip(lhs.par_chunks(CHUNK).zip(rhs.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| zip_into(isa, a, b, o, f));
}

pub(crate) use simd_loop;

/// `dst.copy_from_slice(src)` for a short run (a row of a small plane, 8 to a few dozen values)
/// without a call to `memcpy`, whose fixed cost per call was 5% of a FReLU step and, in the
/// models crate's im2col, a million calls per CNN step: whole blocks of 8, moved in registers,
/// then the last 8 again (overlapping what is already copied, with the same values).
#[inline(always)]
pub(crate) fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    const BLOCK: usize = 8;
    let len = src.len();
    assert_eq!(dst.len(), len, "copy_short: lengths");
    if len < BLOCK {
        // Rare (planes under 8 wide); the loop may still become a memcpy call.
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s);
        return;
    }
    let block = |at: usize, dst: &mut [T]| {
        let from: &[T; BLOCK] = src[at..at + BLOCK].try_into().expect("a block");
        let to: &mut [T; BLOCK] = (&mut dst[at..at + BLOCK]).try_into().expect("a block");
        *to = *from;
    };
    for at in (0..len - BLOCK).step_by(BLOCK) {
        block(at, dst);
    }
    block(len - BLOCK, dst);
}

/// `values` seen as possibly uninitialised (always sound: every `f32` is a valid
/// `MaybeUninit<f32>`), to copy initialised values into uninitialised memory with
/// [`copy_short`].
#[inline(always)]
pub(crate) fn as_uninit(values: &[f32]) -> &[MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the view is read-only.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), values.len()) }
}

/// `values` once every element has been written.
///
/// # Safety
/// Every element of `values` must be initialised.
#[inline(always)]
pub(crate) unsafe fn assume_init(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: the caller guarantees initialisation; the layouts are the same.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), values.len()) }
}
