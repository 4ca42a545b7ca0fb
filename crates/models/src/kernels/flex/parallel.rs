//! How the Flex kernels split their work and fill their buffers.

use std::cell::RefCell;
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

thread_local! {
    /// Work buffers given back on this thread ([`Scratch`]).
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// The most buffers a thread keeps: a backward task's two dozen at most.
const POOL_LEN: usize = 32;

/// A task's work buffer from this thread's pool ([`zeroed`]), which it goes back to when
/// dropped: the tasks then get their buffers without calling malloc, whose lock the threads
/// share (`keep_freed_memory` gives them one arena), and without fresh pages.
pub(super) struct Scratch(Vec<f32>);

impl std::ops::Deref for Scratch {
    type Target = Vec<f32>;

    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        if buffer.capacity() == 0 {
            return;
        }
        // A thread being torn down has no pool left: the buffer is freed.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_LEN {
                pool.push(buffer);
            }
        });
    }
}

/// A buffer of `len` zeros for a task's work, from this thread's pool when it has one.
pub(super) fn zeroed(len: usize) -> Scratch {
    let mut buffer = POOL
        .try_with(|pool| pool.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default();
    buffer.clear();
    buffer.resize(len, 0.0);
    Scratch(buffer)
}
