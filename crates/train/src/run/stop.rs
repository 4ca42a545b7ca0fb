//! Stopping a run cleanly when asked: SIGTERM (SLURM preemption, spot machines, `kill`) or
//! SIGINT (Ctrl-C).
//!
//! The first signal only sets a [`StopRequest`]. The training loop polls it after every step;
//! when it is set, the loop writes a verified checkpoint at that step (weights, optimiser
//! state, the position in the epoch's data order, the epoch's running sums; each step's random
//! numbers are seeded from its position, so nothing else is needed) and returns
//! [`TrainError::Stopped`](crate::run::TrainError::Stopped). `--resume` then ends bit-identical
//! to a run that was never stopped. A second signal ends the process at once with the signal's
//! default action (exit status 128 + its number); that loses nothing already checkpointed,
//! because a checkpoint is switched into place by one rename.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The exit status of `fmnist train` and `fmnist compare` after a signal stopped them with a
/// checkpoint: `EX_TEMPFAIL` of sysexits.h ("try again later"), distinct from 1 (an error) and
/// from 128 + N (killed by signal N). A job script requeues on it.
pub const EXIT_STOPPED: u8 = 75;

/// Whether someone asked the run to stop, and with which signal. Cloning shares the request;
/// the default is never set (until [`request`](Self::request) or a signal sets it).
#[derive(Clone, Debug, Default)]
pub struct StopRequest {
    /// 0: not requested; otherwise the signal number (or [`BY_CALL`]).
    signal: Arc<AtomicUsize>,
    /// Set with `signal`; arms the immediate exit on a second signal.
    armed: Arc<AtomicBool>,
}

/// The value of a request made by [`StopRequest::request`] rather than a signal.
const BY_CALL: usize = usize::MAX;

impl StopRequest {
    /// A request no one has made yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request that SIGTERM and SIGINT make: the first one sets it, a second one ends the
    /// process at once with the signal's default action. Call it once per process (each call
    /// adds handlers).
    #[cfg(unix)]
    pub fn on_signals() -> std::io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let request = Self::new();
        for signal in [SIGTERM, SIGINT] {
            // The order matters: the default action runs only when an earlier signal already
            // armed it, and the flag is set after that check.
            flag::register_conditional_default(signal, Arc::clone(&request.armed))?;
            flag::register_usize(signal, Arc::clone(&request.signal), signal as usize)?;
            flag::register(signal, Arc::clone(&request.armed))?;
        }
        Ok(request)
    }

    /// Without Unix signals there is nothing to listen to: a request only [`request`] sets.
    #[cfg(not(unix))]
    pub fn on_signals() -> std::io::Result<Self> {
        Ok(Self::new())
    }

    /// Asks the run to stop at its next step (what a program embedding the library calls from
    /// its own handler or thread).
    pub fn request(&self) {
        self.signal.store(BY_CALL, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Why the run should stop, or `None` to go on.
    pub fn requested(&self) -> Option<StopReason> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            BY_CALL => Some(StopReason::Requested),
            signal => Some(StopReason::Signal(signal as i32)),
        }
    }
}

/// What asked a run to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A signal, by number.
    Signal(i32),
    /// [`StopRequest::request`].
    Requested,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            #[cfg(unix)]
            Self::Signal(signal_hook::consts::SIGTERM) => f.write_str("SIGTERM"),
            #[cfg(unix)]
            Self::Signal(signal_hook::consts::SIGINT) => f.write_str("SIGINT"),
            Self::Signal(number) => write!(f, "signal {number}"),
            Self::Requested => f.write_str("a stop request"),
        }
    }
}

/// Test hook for the signal tests: `FMNIST_SIGNAL_AT=STEP@EPOCH` makes the process send itself
/// SIGTERM after step STEP (0-based) of epoch EPOCH, through the real handlers;
/// `STEP@EPOCHx2` sends it twice. Read once per process.
pub(crate) fn signal_point(epoch: usize, step: usize) {
    #[cfg(unix)]
    {
        static TARGET: std::sync::OnceLock<Option<(usize, usize, usize)>> =
            std::sync::OnceLock::new();
        let target = TARGET.get_or_init(|| {
            let text = std::env::var("FMNIST_SIGNAL_AT").ok()?;
            let (position, times) = text.split_once('x').unwrap_or((&text, "1"));
            let (step, epoch) = position.split_once('@')?;
            Some((step.parse().ok()?, epoch.parse().ok()?, times.parse().ok()?))
        });
        if let Some((at_step, at_epoch, times)) = *target
            && (at_step, at_epoch) == (step, epoch)
        {
            eprintln!(
                "FMNIST_SIGNAL_AT: sending SIGTERM {times} time(s) after step {step} of epoch {epoch}"
            );
            for _ in 0..times {
                signal_hook::low_level::raise(signal_hook::consts::SIGTERM).expect("raise SIGTERM");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (epoch, step);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_shared_by_clones_and_says_why() {
        let request = StopRequest::new();
        let seen_by_loop = request.clone();
        assert_eq!(seen_by_loop.requested(), None);
        request.request();
        assert_eq!(seen_by_loop.requested(), Some(StopReason::Requested));
        assert_eq!(StopReason::Signal(15).to_string(), "SIGTERM");
        assert_eq!(StopReason::Signal(2).to_string(), "SIGINT");
        assert_eq!(StopReason::Signal(10).to_string(), "signal 10");
    }
}
