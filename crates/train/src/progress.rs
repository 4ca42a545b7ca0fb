//! A progress bar on a terminal (`indicatif`), plain log lines otherwise (CI logs, pipes).
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bar positions: the fraction done in thousandths.
const STEPS: u64 = 1000;
/// Without a terminal, one log line at most this often.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// One task's progress.
pub struct Progress {
    label: String,
    /// `None` when stderr is not a terminal.
    bar: Option<ProgressBar>,
    last_logged: Instant,
}

impl Progress {
    /// Starts a progress report for `label`.
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg}")
                    .expect("a valid template")
                    .progress_chars("#>-"),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Self {
            label: label.into(),
            bar,
            last_logged: Instant::now(),
        }
    }

    /// Reports `fraction` ∈ [0, 1] done, with a short status.
    pub fn update(&mut self, fraction: f64, status: &str) {
        let fraction = fraction.clamp(0.0, 1.0);
        match &self.bar {
            Some(bar) => {
                bar.set_position((fraction * STEPS as f64).round() as u64);
                bar.set_message(status.to_string());
            }
            None if self.last_logged.elapsed() >= LOG_EVERY => {
                eprintln!("{}: {:.0}% {status}", self.label, fraction * 100.0);
                self.last_logged = Instant::now();
            }
            None => {}
        }
    }

    /// Ends the bar with a last line.
    pub fn finish(&mut self, status: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            eprintln!(
                "{} done in {:.1}s {status}",
                self.label,
                bar.elapsed().as_secs_f64()
            );
        }
    }
}
