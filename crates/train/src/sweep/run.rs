//! Training this shard's part of a sweep: finished runs are skipped, interrupted ones resumed
//! from their checkpoint, the data is read once and only when some run needs it.
use std::path::PathBuf;

use crate::backend::Backend;
use crate::config::RunConfig;
use crate::data::dataset::Splits;
use crate::run::lock::LockError;
use crate::run::training::train_locked;
use crate::run::{RunDir, TrainError, TrainOptions, load_data};
use crate::sweep::{CompareConfig, PlannedRun, Shard};

/// What happened to each run of a sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunStatus {
    /// Already finished: skipped.
    Skipped,
    /// Trained from scratch.
    Trained,
    /// Continued from its checkpoint.
    Resumed,
    /// Another shard's.
    OtherShard,
    /// Being trained by another process (its run directory is locked): skipped.
    InUse,
}

/// How to run a sweep.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Backend for every run.
    pub backend: Backend,
    /// The sweep directory (one subdirectory per run).
    pub out_dir: PathBuf,
    /// This machine's part.
    pub shard: Shard,
    /// No progress output.
    pub quiet: bool,
    /// Handed to each run: once set, the run in progress checkpoints at its current step and
    /// the sweep returns [`TrainError::Stopped`]; running the sweep again continues it.
    pub stop: crate::run::StopRequest,
}

/// Whether a run directory holds a finished run of `config`; an error if it holds a run of
/// another config (the user changed the config but kept `--out`).
fn finished(run: &RunDir, config: &RunConfig) -> Result<bool, TrainError> {
    if !run.summary_path().is_file() {
        return Ok(false);
    }
    let existing = run.read_config()?;
    if existing != *config {
        return Err(TrainError::OtherConfig {
            dir: run.dir().into(),
        });
    }
    Ok(true)
}

/// Runs this shard's part of the sweep on the data `config` names; returns each planned run
/// with its status. The data is read only when some run needs training.
pub fn run_sweep(
    config: &CompareConfig,
    options: &CompareOptions,
) -> Result<Vec<(PlannedRun, RunStatus)>, TrainError> {
    sweep(config, options, None)
}

/// [`run_sweep`] on data already in memory (every run uses it as given).
pub fn run_sweep_on(
    config: &CompareConfig,
    data: &Splits,
    options: &CompareOptions,
) -> Result<Vec<(PlannedRun, RunStatus)>, TrainError> {
    sweep(config, options, Some(data))
}

fn sweep(
    config: &CompareConfig,
    options: &CompareOptions,
    given: Option<&Splits>,
) -> Result<Vec<(PlannedRun, RunStatus)>, TrainError> {
    std::fs::create_dir_all(&options.out_dir)
        .map_err(crate::run::RunError::io("create", &options.out_dir))?;
    // The report goes here at the end: a directory that cannot be written is refused now,
    // not after hours of training.
    tempfile::tempfile_in(&options.out_dir).map_err(crate::run::RunError::io(
        "write into study directory",
        &options.out_dir,
    ))?;
    let plan = config.plan();
    let mut loaded: Option<Splits> = None;
    let mut statuses = Vec::new();
    for run in plan {
        if !options.shard.takes(run.index) {
            statuses.push((run, RunStatus::OtherShard));
            continue;
        }
        let dir = options.out_dir.join(&run.dir_name);
        if finished(&RunDir::at(&dir), &run.config)? {
            if !options.quiet {
                eprintln!("[{}] {}: finished, skipped", run.index + 1, run.dir_name);
            }
            statuses.push((run, RunStatus::Skipped));
            continue;
        }
        let run_dir = RunDir::create(&dir)?;
        let lock = match run_dir.lock() {
            Ok(lock) => lock,
            Err(busy @ LockError::Busy { .. }) => {
                if !options.quiet {
                    eprintln!("[{}] {}: skipped, {busy}", run.index + 1, run.dir_name);
                }
                statuses.push((run, RunStatus::InUse));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        // Another process may have finished it since the check above.
        if finished(&run_dir, &run.config)? {
            statuses.push((run, RunStatus::Skipped));
            continue;
        }
        let resume = run_dir.has_checkpoint();
        if given.is_none() && loaded.is_none() {
            loaded = Some(load_data(&config.base)?);
        }
        let data = given
            .or(loaded.as_ref())
            .expect("data given or loaded above");
        if !options.quiet {
            eprintln!(
                "[{}] {}: {}",
                run.index + 1,
                run.dir_name,
                if resume { "resuming" } else { "training" }
            );
        }
        train_locked(
            &run.config,
            data,
            &TrainOptions {
                backend: options.backend,
                out_dir: dir,
                resume,
                quiet: options.quiet,
                stop_after: None,
                diagnostics: config.compare.diagnostics,
                stop: options.stop.clone(),
            },
            run_dir,
            lock,
        )?;
        let status = if resume {
            RunStatus::Resumed
        } else {
            RunStatus::Trained
        };
        statuses.push((run, status));
    }
    Ok(statuses)
}
