//! One training run, from data in memory to a run directory.
//!
//! - [`training`]: the loop (epochs of shuffled mini-batches, evaluation, NaN stop) and
//!   [`load_trained`] for a finished run.
//! - [`adam`]: [`adam::FusedAdam`] and [`adam::FusedAdamW`], Adam and AdamW in one pass per
//!   parameter tensor on Flex.
//! - [`checkpoint`]: checkpoints as one atomic, verified unit, and resuming from them.
//! - [`lock`]: one writer per run directory.
//! - [`stop`]: [`StopRequest`], set by SIGTERM/SIGINT; the loop checkpoints and stops.
//! - errors: [`RunError`], [`CheckpointError`], [`LockError`], [`TrainError`].
//! - [`dir`]: [`RunDir`], which owns every file name of a run directory, and [`Summary`].
//! - [`metrics`]: loss, accuracy and confusion matrix of a split; [`EpochRecord`] rows.
//! - [`diagnostics`]: dead units, sparsity, saturation, gradient norms per layer.
//! - [`verify`]: a run, or a study's runs, checked against the hashes they recorded.
pub mod adam;
pub mod checkpoint;
pub mod diagnostics;
pub mod dir;
mod error;
pub mod lock;
pub mod metrics;
pub mod stop;
pub mod training;
pub mod verify;

pub use checkpoint::Position;
pub use diagnostics::DiagnosticRecord;
pub use dir::{RunDir, Summary};
pub use error::{CheckpointError, LockError, RunError, TrainError};
pub use metrics::{EpochRecord, Evaluation, SplitName};
pub use stop::{EXIT_STOPPED, StopReason, StopRequest};
pub use training::{
    TrainOptions, data_options, evaluate_split, load_data, load_trained, train, train_on,
};
