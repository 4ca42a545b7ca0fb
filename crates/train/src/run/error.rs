//! What can go wrong with a run: its directory ([`RunError`]), its checkpoints
//! ([`CheckpointError`]), its writer lock ([`LockError`]), and training as a whole
//! ([`TrainError`]). Each names the file and the fix; the underlying error is the `source`.
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::data::DataError;

/// A run directory that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A file or directory could not be read, written, created, synced or removed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `"read"`, `"write"`, `"create"`, `"sync"`, `"remove"`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The directory lacks a file a finished run has.
    #[error(
        "{} is not a finished run directory: {missing} is missing (train one with `fmnist \
         train --out {}`)",
        dir.display(),
        dir.display()
    )]
    NotFinished {
        /// The directory.
        dir: PathBuf,
        /// The missing file's name.
        missing: String,
    },
    /// A file whose bytes are not what the run wrote (checksum, size, or content).
    #[error("{} is damaged: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What does not match, and what to do.
        reason: String,
    },
    /// A JSON file of the run that does not parse.
    #[error("{} is damaged", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A CSV file of the run (`metrics.csv`, `diagnostics.csv`) that cannot be read.
    #[error(transparent)]
    Csv(#[from] crate::records::CsvError),
    /// Weights that Burn cannot read, or that do not fit the model of the run's config.
    #[error("cannot load {}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// Burn's error.
        source: burn::store::RecordError,
    },
    /// A run directory of a newer version of this program.
    #[error(
        "{} was written by a newer fmnist (run format {found}; this one reads up to \
         {supported}); use that version or a newer one",
        path.display()
    )]
    Version {
        /// The file that records the format.
        path: PathBuf,
        /// Its format.
        found: u32,
        /// The newest format this version reads.
        supported: u32,
    },
    /// The run's `config.toml` cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl RunError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// A checkpoint that cannot be resumed from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A checkpoint of the layout before checkpoint format 1.
    #[error(
        "{} was written by an older fmnist (no manifest, checkpoint format 0); finish the run \
         with that version, or delete {} to start over",
        path.display(),
        path.display()
    )]
    Legacy {
        /// The old `checkpoint/` directory.
        path: PathBuf,
    },
    /// A file of the checkpoint that is absent or cannot be read.
    #[error("{} is missing or unreadable", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file of the checkpoint whose bytes are not the ones its manifest recorded.
    #[error("{} is damaged: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A checkpoint of another checkpoint format.
    #[error(
        "{} is in checkpoint format {found}, this fmnist reads format {supported}: resume it \
         with the version that wrote it",
        dir.display()
    )]
    Format {
        /// The checkpoint directory.
        dir: PathBuf,
        /// Its format.
        found: u32,
        /// The format this version reads.
        supported: u32,
    },
    /// Every checkpoint of the run failed to verify.
    #[error(
        "cannot resume {}: no checkpoint verifies ({}); delete {} to start over",
        run.display(),
        failures.iter().map(|f| crate::error_chain(f)).collect::<Vec<_>>().join("; "),
        checkpoints.display()
    )]
    NoneVerifies {
        /// The run directory.
        run: PathBuf,
        /// Its `checkpoints/`.
        checkpoints: PathBuf,
        /// Why each checkpoint failed, newest first.
        failures: Vec<CheckpointError>,
    },
    /// A checkpoint made with a different config than the one given now.
    #[error(
        "cannot resume {}: its checkpoint was made with a different config; use a new --out \
         directory, or the same config and --set options as before",
        run.display()
    )]
    OtherConfig {
        /// The run directory.
        run: PathBuf,
    },
    /// Verified bytes that Burn still cannot load (a bug, or a model change between versions).
    #[error("cannot load the checkpoint's {what} from {}", path.display())]
    Load {
        /// `"weights"` or `"optimiser state"`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Burn's error.
        source: burn::store::RecordError,
    },
    /// The checkpoint directory itself could not be read or written.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Why a run directory could not be locked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{} is in use by another fmnist process{}: wait for it to finish, or use another \
         --out directory",
        path.parent().unwrap_or(path).display(),
        pid.map(|pid| format!(" (PID {pid})")).unwrap_or_default()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// The holder's PID, as it wrote it.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Why training stopped without a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The config cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data cannot be found or read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The run directory cannot be read or written.
    #[error(transparent)]
    Run(#[from] RunError),
    /// `--resume` found no usable checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Another process writes the run directory.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The loss became NaN or infinite.
    #[error(
        "training stopped: the loss became {loss} in epoch {epoch} (step {step}) with \
         {activation} at lr {lr}; lower train.lr (e.g. --set train.lr={}) or pick a \
         better-conditioned activation/initialisation. Checkpoints of earlier epochs are kept.",
        lr / 10.0
    )]
    Diverged {
        /// The loss.
        loss: f32,
        /// The epoch (from 1).
        epoch: usize,
        /// The step within the epoch.
        step: usize,
        /// The model's activation.
        activation: String,
        /// The learning rate.
        lr: f64,
    },
    /// A signal (or a [`StopRequest`](crate::run::StopRequest)) stopped training, after a
    /// checkpoint at that point was written.
    #[error(
        "{reason} stopped the run in {} {position}; its checkpoint is {}: continue with the \
         same command and --resume",
        run.display(),
        checkpoint.display()
    )]
    Stopped {
        /// What asked to stop.
        reason: crate::run::StopReason,
        /// Where training stopped.
        position: crate::run::Position,
        /// The run directory.
        run: PathBuf,
        /// The checkpoint to resume from.
        checkpoint: PathBuf,
    },
    /// A sweep's run directory holds a finished run of another config.
    #[error(
        "{} holds a finished run of a different config; use another --out directory for the \
         changed sweep (or delete that run to redo it)",
        dir.display()
    )]
    OtherConfig {
        /// The run directory.
        dir: PathBuf,
    },
}
