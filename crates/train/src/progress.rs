//! A progress line on a terminal, plain log lines otherwise (CI logs, pipes).
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// One task's progress.
pub struct Progress {
    label: String,
    terminal: bool,
    start: Instant,
    last_logged: Instant,
}

impl Progress {
    /// Starts a progress report for `label`.
    pub fn new(label: &str) -> Self {
        Self {
            label: label.into(),
            terminal: std::io::stderr().is_terminal(),
            start: Instant::now(),
            last_logged: Instant::now(),
        }
    }

    /// Reports `fraction` ∈ [0, 1] done, with a short status.
    pub fn update(&mut self, fraction: f64, status: &str) {
        let fraction = fraction.clamp(0.0, 1.0);
        if self.terminal {
            let width = 30;
            let filled = (fraction * width as f64).round() as usize;
            eprint!(
                "\r{} [{}{}] {:>3.0}% {status}   ",
                self.label,
                "#".repeat(filled),
                "-".repeat(width - filled),
                fraction * 100.0
            );
            std::io::stderr().flush().ok();
        } else if self.last_logged.elapsed().as_secs() >= 30 {
            eprintln!("{}: {:.0}% {status}", self.label, fraction * 100.0);
            self.last_logged = Instant::now();
        }
    }

    /// Ends the line.
    pub fn finish(&mut self, status: &str) {
        if self.terminal {
            eprintln!(
                "\r{} done in {:.1}s {status}{}",
                self.label,
                self.start.elapsed().as_secs_f64(),
                " ".repeat(40)
            );
        }
    }
}
