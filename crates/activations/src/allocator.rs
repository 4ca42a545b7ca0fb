//! Allocator tuning for the tensors these kernels see.
//!
//! glibc returns large blocks to the OS on `free` (blocks over the mmap threshold, and heap tops
//! over the trim threshold), so every training step pays page faults to get fresh zeroed pages
//! for its 16 MiB activations; on this project's 2-core VM that tripled the time of an
//! activation's forward+backward. PyTorch avoids the same cost with its caching allocator.

/// Keeps freed tensor buffers in the process for the next allocation of the same size: raises
/// glibc's mmap and trim thresholds so buffers up to 32 MiB come from, and go back to, malloc's
/// free lists. Call it once at the start of your binary (`fmnist` and the examples do); it does
/// nothing on other platforms. The same without code: set
/// `GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824`.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters; both values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
