//! How the Flex kernels split their work and fill their buffers.

use std::mem::MaybeUninit;

/// Contiguous runs of `len` items per task: a few per thread, so a slow thread does not hold
/// the others up, and never empty.
pub(super) fn items_per_task(items: usize) -> usize {
    items.div_ceil(rayon::current_num_threads() * 2).max(1)
}

/// A vector of `len` elements, each written once by `fill` (which must write them all).
pub(super) fn filled_vec<T: Copy>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut values: Vec<T> = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised the first `len` elements (every caller writes each one).
    unsafe { values.set_len(len) };
    values
}

/// `values` as the uninitialised slice a kernel writes (`SampleConv::run`, the direct path),
/// for a buffer that is reused.
pub(super) fn as_uninit(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the callers only write initialised
    // values through the view, so `values` stays initialised.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), values.len()) }
}
