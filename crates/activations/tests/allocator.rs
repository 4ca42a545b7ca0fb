//! `keep_freed_memory`: a freed buffer, even one over glibc's largest mmap threshold (an
//! evaluation batch's 50 MiB activations), is reused by the next allocation of its size
//! instead of coming back from the OS as fresh pages (one page fault each).
//!
//! Its own `main` (`harness = false`): `keep_freed_memory` gives every thread the main arena
//! only for threads made after it, as in `fmnist`, which calls it first. Under the test
//! harness, its threads already had arenas of their own, and the second test's thread was
//! sometimes given one of those (about one run in eight, or one in 140 with the tests taking
//! turns), where the 40 MiB block got a heap of its own again.

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        actlab_activations::keep_freed_memory();
        for (name, test) in [
            (
                "a_freed_large_buffer_is_reused_without_page_faults",
                a_freed_large_buffer_is_reused_without_page_faults as fn(),
            ),
            (
                "a_freed_large_buffer_is_reused_on_another_thread",
                a_freed_large_buffer_is_reused_on_another_thread,
            ),
        ] {
            test();
            println!("test {name} ... ok");
        }
    }
}

/// Page faults the calling thread has taken so far (minor ones: fresh pages, no disk); per
/// thread, so the tests running beside it do not count.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn page_faults() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    usage.ru_minflt
}

/// Allocates `bytes`, writes every page, frees it; the page faults that took.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn touch(bytes: usize) -> i64 {
    let before = page_faults();
    let buffer = std::hint::black_box(vec![1u8; bytes]);
    drop(buffer);
    page_faults() - before
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn a_freed_large_buffer_is_reused_without_page_faults() {
    // Over the 32 MiB threshold, under the 64 MiB a thread's malloc heap can hold (the test
    // runs on a thread of the harness).
    const BYTES: usize = 48 << 20;
    let pages = (BYTES / 4096) as i64;
    // The first allocation gets its pages from the OS, one fault each, unless the kernel backs
    // them with transparent huge pages (`enabled = always`), where faults cannot tell reuse.
    let first = touch(BYTES);
    if first < pages / 2 {
        return eprintln!("skipped: {first} page faults for {pages} fresh pages (huge pages?)");
    }
    // The second reuses them: glibc would otherwise map 48 MiB afresh (12,288 faults).
    let second = touch(BYTES);
    assert!(
        second < pages / 20,
        "{second} page faults for a buffer freed just before (of {pages} pages)"
    );
}

/// On a thread other than the main one, a block too large for the room left in its malloc heap
/// (64 MiB at most per heap of a thread's own arena) got a heap of its own, unmapped again when
/// it was freed: fresh pages every time. With one arena for every thread it is reused.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn a_freed_large_buffer_is_reused_on_another_thread() {
    const BYTES: usize = 40 << 20;
    let pages = (BYTES / 4096) as i64;
    let (first, second) = std::thread::spawn(|| {
        // Most of the thread's first heap in use, so the next 40 MiB does not fit beside it.
        let held = std::hint::black_box(vec![1u8; BYTES]);
        let faults = (touch(BYTES), touch(BYTES));
        drop(held);
        faults
    })
    .join()
    .unwrap();
    if first < pages / 2 {
        return eprintln!("skipped: {first} page faults for {pages} fresh pages (huge pages?)");
    }
    assert!(
        second < pages / 20,
        "{second} page faults for a buffer freed just before on the same thread (of {pages} pages)"
    );
}
