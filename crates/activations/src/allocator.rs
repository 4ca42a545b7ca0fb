//! Allocator tuning for the tensors these kernels see.
//!
//! glibc returns large blocks to the OS on `free` (blocks over the mmap threshold, and heap tops
//! over the trim threshold), so every training step pays page faults to get fresh zeroed pages
//! for its 16 MiB activations; on this project's 2-core VM that tripled the time of an
//! activation's forward+backward. PyTorch avoids the same cost with its caching allocator.

/// Keeps freed tensor buffers in the process for the next allocation of the same size: raises
/// glibc's mmap and trim thresholds so buffers come from, and go back to, malloc's free lists,
/// turns its mmap path off for the blocks over the highest threshold glibc allows (32 MiB:
/// an evaluation batch of 1,000 images holds 50 MiB activations), and puts every thread's
/// blocks in the main heap (one arena). Call it once at the start of your binary, before it
/// starts threads (`fmnist` and the examples do); it does nothing on other platforms. The same
/// without code: set `GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_max=0:glibc.malloc.arena_max=1`.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters; all values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        // Blocks over the threshold would still be mapped and unmapped each time. Without
        // mmap, glibc grows its heaps instead (and still maps where a heap cannot grow).
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // Threads other than the main one get arenas of their own, whose heaps hold at most
        // 64 MiB each: a tensor that does not fit gets a heap of its own, unmapped again when it
        // is freed (an evaluation batch's 50 MiB activations, made on the pool's threads). One
        // arena for every thread keeps them in the main heap, which only grows.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
