//! Where a training loop runs relative to the kernels' thread pool.
//!
//! The fused kernels, the models' convolutions and Burn's Flex ops split their work over
//! rayon's global pool. Called from a thread outside the pool, every parallel section is
//! handed over: the caller queues the work, wakes the pool's threads and sleeps until they are
//! done, then is woken itself — a few hundred sections in a ResNet training step, each paying
//! those wake-ups (on the project's 2-core VM the scheduler's own functions took 3.6% of the
//! step's samples). Called from one of the pool's threads, the caller takes its share of the
//! work at once and only the other threads are woken.

/// Runs `work` on a thread of rayon's global pool and returns what it returns; the calling
/// thread waits for it, and a panic in `work` resumes on the calling thread. Where no pool
/// exists yet, it builds the global pool first as rayon would (`RAYON_NUM_THREADS`, else one
/// thread per core) but with 8 MiB stacks, a main thread's usual size. From a pool thread it
/// just runs `work`.
///
/// `fmnist` runs every command this way (ResNet training 4% faster on 2 cores). Wrap your own
/// training loop in it when it runs these kernels on Flex.
///
/// ```
/// let on_pool_thread = actlab_activations::in_thread_pool(|| rayon::current_thread_index().is_some());
/// assert!(on_pool_thread);
/// ```
pub fn in_thread_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    // An error only says that the global pool exists already; it is used as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global();
    rayon::scope(|_| work())
}

#[cfg(test)]
mod tests {
    use super::in_thread_pool;

    #[test]
    fn work_runs_on_a_pool_thread_and_its_panic_reaches_the_caller() {
        assert_eq!(rayon::current_thread_index(), None, "a test thread");
        let (index, value) = in_thread_pool(|| (rayon::current_thread_index(), 7));
        assert!(index.is_some(), "not on a pool thread");
        assert_eq!(value, 7);
        // From a pool thread it runs in place.
        assert_eq!(in_thread_pool(|| in_thread_pool(|| 3) + 1), 4);
        let panic = std::panic::catch_unwind(|| in_thread_pool(|| panic!("in the pool")));
        let message = panic.expect_err("the panic was lost");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"in the pool"));
    }
}
