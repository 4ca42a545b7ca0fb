//! `fmnist verify`: whether a run directory, or every run of a study, is what its runs wrote.
//! A finished run is checked against the SHA-256s its `summary.json` records (weights, config,
//! metrics); an unfinished one by its newest checkpoint's manifest; a study's config, when
//! given, names the runs that should be there.
use std::fmt;
use std::path::{Path, PathBuf};

use crate::run::checkpoint;
use crate::run::{RunDir, RunError};

/// What [`verify_run`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum RunHealth {
    /// Finished, and every file matches the hashes in its `summary.json`.
    Intact {
        /// Epochs trained.
        epochs: usize,
    },
    /// Not finished (stopped, interrupted, or still training); `--resume` or re-running the
    /// study continues from the newest checkpoint that verifies, if there is one.
    Incomplete {
        /// Where that checkpoint was taken.
        resumable_from: Option<crate::run::Position>,
    },
    /// A file that is not what the run wrote: the error names it.
    Damaged {
        /// Which file, and why.
        reason: String,
    },
    /// Planned by the study's config, but not in the directory.
    Missing,
}

impl RunHealth {
    /// Whether the run is finished and whole.
    pub fn is_intact(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }

    /// `intact`, `incomplete`, `damaged` or `missing`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Intact { .. } => "intact",
            Self::Incomplete { .. } => "incomplete",
            Self::Damaged { .. } => "damaged",
            Self::Missing => "missing",
        }
    }
}

impl RunHealth {
    /// What there is to say beyond [`word`](Self::word): the epochs, where a resume starts,
    /// or which file is damaged and why.
    pub fn detail(&self) -> String {
        match self {
            Self::Intact { epochs } => format!("{epochs} epochs"),
            Self::Incomplete {
                resumable_from: Some(position),
            } => format!("resumes {position}"),
            Self::Incomplete {
                resumable_from: None,
            } => "no checkpoint yet: starts afresh".into(),
            Self::Damaged { reason } => reason.clone(),
            Self::Missing => "not trained yet".into(),
        }
    }
}

impl fmt::Display for RunHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.word(), self.detail())
    }
}

/// One run's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct RunVerdict {
    /// The run directory.
    pub dir: PathBuf,
    /// What was found.
    pub health: RunHealth,
}

/// Whether `dir` holds a run (finished or not) rather than a study of runs.
pub fn is_run(dir: &Path) -> bool {
    let run = RunDir::at(dir);
    run.config_path().is_file() || run.metrics_path().is_file() || checkpoint::exists(&run)
}

/// Checks one run directory.
pub fn verify_run(dir: &Path) -> RunHealth {
    let run = RunDir::at(dir);
    let damaged = |error: &dyn std::error::Error| RunHealth::Damaged {
        reason: crate::error_chain(error),
    };
    let unfinished = || match checkpoint::newest_verified(&run) {
        Ok(resumable_from) => RunHealth::Incomplete { resumable_from },
        Err(error) => damaged(&error),
    };
    if !run.summary_path().is_file() {
        return unfinished();
    }
    let summary = match run.read_summary() {
        Ok(summary) => summary,
        Err(error) => return damaged(&error),
    };
    if !summary.complete {
        return unfinished();
    }
    match run.verify_files() {
        Ok(()) => RunHealth::Intact {
            epochs: summary.epochs,
        },
        Err(error) => damaged(&error),
    }
}

/// Checks `dir`: one run, or every run directory in it (a study); with `planned` (the run
/// directory names a study's config plans), the planned ones that are absent are
/// [`RunHealth::Missing`]. Sorted by directory name.
pub fn verify(dir: &Path, planned: Option<&[String]>) -> Result<Vec<RunVerdict>, RunError> {
    if !dir.is_dir() {
        return Err(RunError::Io {
            action: "verify",
            path: dir.into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    if is_run(dir) {
        return Ok(vec![RunVerdict {
            dir: dir.into(),
            health: verify_run(dir),
        }]);
    }
    let mut verdicts: Vec<RunVerdict> = std::fs::read_dir(dir)
        .map_err(RunError::io("read", dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir() && is_run(path))
        .map(|path| RunVerdict {
            health: verify_run(&path),
            dir: path,
        })
        .collect();
    for name in planned.unwrap_or_default() {
        let path = dir.join(name);
        if !verdicts.iter().any(|v| v.dir == path) {
            verdicts.push(RunVerdict {
                dir: path,
                health: RunHealth::Missing,
            });
        }
    }
    verdicts.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(verdicts)
}
