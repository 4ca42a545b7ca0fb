//! Checkpoints as one atomic unit, and resuming a run from one.
//!
//! A checkpoint is a directory under `checkpoints/`: `epoch-NNNN` after epoch NNNN, or
//! `epoch-NNNN-step-SSSSSS` after step SSSSSS of epoch NNNN (a run stopped by a signal,
//! [`crate::run::stop`]). It holds `model.bpk`, `optimizer.bpk`, `state.json` (the position,
//! timings, config, the records so far and, mid-epoch, the epoch's running sums) and
//! `manifest.json` (format version, position, the size and SHA-256 of each file). It is
//! written as `<name>.partial/`, every file fsynced, the manifest written and fsynced last, and
//! then switched into place by one rename (the parent directory fsynced after): a crash leaves
//! either the whole checkpoint or none of it. The last two are kept.
//!
//! Resuming verifies the newest checkpoint's manifest and every file against it before any
//! byte reaches Burn's loaders; one that does not verify is reported and the one before it is
//! used, which gives the same results (each step's random numbers are seeded from its
//! position in the run, and the data order from the epoch's seed).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use models::Model;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::data::source::sha256_hex;
use crate::run::diagnostics::DiagnosticRecord;
use crate::run::dir::{RunDir, fsync_dir, load_model_bytes, save_model_synced, write_synced};
use crate::run::metrics::EpochRecord;
use crate::run::{CheckpointError, RunError};

mod position;

pub use position::Position;

/// The checkpoint layout this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Checkpoints kept: the newest, and one to fall back on.
const KEEP: usize = 2;

const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "state.json";
const MANIFEST: &str = "manifest.json";

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// The epoch finished, or (with `step`) the epoch in progress.
    epoch: usize,
    /// Steps done of `epoch`, for a checkpoint taken within it. Absent in end-of-epoch
    /// checkpoints, which older versions wrote and read the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
    files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct FileEntry {
    bytes: u64,
    sha256: String,
}

fn entry(path: &Path) -> Result<FileEntry, RunError> {
    let bytes = std::fs::read(path).map_err(RunError::io("read", path))?;
    Ok(FileEntry {
        bytes: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
    })
}

/// Test hook for the fault-injection tests: `FMNIST_ABORT_AT=step@epoch` aborts the process
/// at that step of writing that epoch's checkpoint (steps: `model`, `optimizer`, `state`,
/// `manifest`, `switch`, `cleanup`; `final-model`, `final-summary` for the finished run), as a
/// kill or a power cut would. Unset, it costs one environment lookup per checkpoint.
pub(crate) fn fault_point(step: &str, epoch: usize) {
    if let Ok(target) = std::env::var("FMNIST_ABORT_AT")
        && target == format!("{step}@{epoch}")
    {
        eprintln!("FMNIST_ABORT_AT: aborting at {target}");
        std::process::abort();
    }
}

/// What a checkpoint remembers besides the weights and the optimiser state.
#[derive(Clone, Debug)]
pub(crate) struct CheckpointState {
    pub epochs_done: usize,
    pub history: Vec<EpochRecord>,
    pub train_seconds: f64,
    pub config: RunConfig,
    pub diagnostics: Vec<DiagnosticRecord>,
    /// The epoch in progress, for a checkpoint taken within one.
    pub partial: Option<PartialEpoch>,
}

impl CheckpointState {
    pub(crate) fn position(&self) -> Position {
        Position {
            epochs_done: self.epochs_done,
            steps_done: self.partial.as_ref().map_or(0, |p| p.steps_done),
        }
    }
}

/// An epoch stopped after `steps_done` steps: what its end-of-epoch records need. The sums are
/// kept as bit patterns, so the resumed epoch adds to the very numbers it stopped at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartialEpoch {
    pub steps_done: usize,
    /// The running sum of batch loss × batch size (an f32, as accumulated on the device).
    pub loss_sum_bits: u32,
    /// Correct predictions so far.
    pub correct: i64,
    /// Training seconds of the epoch so far.
    pub seconds: f64,
    /// The gradient-norm meter's per-layer sums (f64 bit patterns) and its count.
    pub grad_norm_sums_bits: Vec<u64>,
    pub grad_norm_count: usize,
}

/// `state.json`. The records travel as CSV text: Rust's float formatting and parsing round-trip
/// exactly, serde_json's default parser does not, and a resumed run must continue from the very
/// numbers it stopped at.
#[derive(Serialize, Deserialize)]
struct StateFile {
    epochs_done: usize,
    train_seconds: f64,
    config: RunConfig,
    metrics_csv: String,
    #[serde(default)]
    diagnostics_csv: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partial: Option<PartialEpoch>,
}

impl CheckpointState {
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let file = StateFile {
            epochs_done: self.epochs_done,
            train_seconds: self.train_seconds,
            config: self.config.clone(),
            metrics_csv: csv_text(&self.history),
            diagnostics_csv: csv_text(&self.diagnostics),
            partial: self.partial.clone(),
        };
        serde_json::to_vec_pretty(&file).expect("checkpoint state serialises")
    }

    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let file: StateFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        // `from_json` only sees bytes whose SHA-256 the manifest vouched for, so a failure here
        // is a version mismatch or a bug; the caller names the file.
        Ok(Self {
            epochs_done: file.epochs_done,
            train_seconds: file.train_seconds,
            config: file.config,
            history: parse_csv_text(&file.metrics_csv)?,
            diagnostics: parse_csv_text(&file.diagnostics_csv)?,
            partial: file.partial,
        })
    }
}

fn csv_text<T: Serialize>(rows: &[T]) -> String {
    String::from_utf8(crate::records::to_csv(rows)).expect("CSV of UTF-8 fields is UTF-8")
}

fn parse_csv_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    crate::records::parse_csv(text.as_bytes(), Path::new(STATE)).map_err(|e| crate::error_chain(&e))
}

/// Writes the checkpoint of `state.position()` as one unit (see the module docs); returns its
/// directory.
pub(crate) fn write(
    run: &RunDir,
    model: &Model,
    optim: &ModuleOptimizer,
    state: &CheckpointState,
) -> Result<PathBuf, RunError> {
    let position = state.position();
    // The fault points count end-of-epoch checkpoints only: the tests abort at those.
    let epoch = if position.steps_done == 0 {
        position.epochs_done
    } else {
        usize::MAX
    };
    let final_dir = run.checkpoints_dir().join(position.dir_name());
    let partial = final_dir.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(RunError::io("remove", &partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(RunError::io("create", &partial))?;

    save_model_synced(model, &partial.join(MODEL))?;
    fault_point("model", epoch);
    let optimizer_path = partial.join(OPTIMIZER);
    optim.save(&optimizer_path).map_err(|source| RunError::Io {
        action: "write",
        path: optimizer_path.clone(),
        source: std::io::Error::other(source),
    })?;
    std::fs::File::open(&optimizer_path)
        .and_then(|file| file.sync_all())
        .map_err(RunError::io("write", &optimizer_path))?;
    fault_point("optimizer", epoch);
    write_synced(&partial.join(STATE), &state.to_json())?;
    fault_point("state", epoch);

    let mut files = BTreeMap::new();
    for name in [MODEL, OPTIMIZER, STATE] {
        files.insert(name.to_string(), entry(&partial.join(name))?);
    }
    let (manifest_epoch, step) = position.manifest_fields();
    let manifest = Manifest {
        format: FORMAT_VERSION,
        epoch: manifest_epoch,
        step,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
    write_synced(&partial.join(MANIFEST), &json)?;
    fsync_dir(&partial)?;
    fault_point("manifest", epoch);

    if final_dir.exists() {
        // A checkpoint of this position from an earlier attempt: this one replaces it.
        std::fs::remove_dir_all(&final_dir).map_err(RunError::io("remove", &final_dir))?;
    }
    std::fs::rename(&partial, &final_dir).map_err(RunError::io("write", &final_dir))?;
    fsync_dir(&run.checkpoints_dir())?;
    fault_point("switch", epoch);

    for old in checkpoint_dirs(run)?.into_iter().skip(KEEP) {
        std::fs::remove_dir_all(&old.1).map_err(RunError::io("remove", &old.1))?;
    }
    fault_point("cleanup", epoch);
    Ok(final_dir)
}

/// The finished checkpoints (no `.partial`), newest first.
fn checkpoint_dirs(run: &RunDir) -> Result<Vec<(Position, PathBuf)>, RunError> {
    let root = run.checkpoints_dir();
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(Position, PathBuf)> = std::fs::read_dir(&root)
        .map_err(RunError::io("read", &root))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| {
            let position = Position::parse_dir_name(path.file_name()?.to_str()?)?;
            Some((position, path))
        })
        .collect();
    found.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
    Ok(found)
}

/// Removes every checkpoint of the run: a run started afresh must not leave older epochs of a
/// previous run beside its own, where a later `--resume` would find them.
pub(crate) fn clear(run: &RunDir) -> Result<(), RunError> {
    let root = run.checkpoints_dir();
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(RunError::io("remove", &root))?;
    }
    Ok(())
}

/// Whether the run has a checkpoint to resume from (verified or not).
pub(crate) fn exists(run: &RunDir) -> bool {
    checkpoint_dirs(run).is_ok_and(|dirs| !dirs.is_empty()) || run.legacy_checkpoint().is_dir()
}

/// The newest checkpoint that verifies, and why each newer one did not (newest first): what
/// `--resume` continues from and what `fmnist verify` reports. A run with only the
/// pre-manifest `checkpoint/` is refused as such.
fn newest(run: &RunDir) -> Result<(Option<Verified>, Vec<CheckpointError>), CheckpointError> {
    if run.legacy_checkpoint().is_dir() && checkpoint_dirs(run)?.is_empty() {
        return Err(CheckpointError::Legacy {
            path: run.legacy_checkpoint(),
        });
    }
    let mut failures = Vec::new();
    for (position, dir) in checkpoint_dirs(run)? {
        match verify(&dir, position) {
            Ok(found) => return Ok((Some(found), failures)),
            Err(reason) => failures.push(reason),
        }
    }
    Ok((None, failures))
}

/// Every checkpoint of `run` failed to verify, for these reasons.
fn none_verifies(run: &RunDir, failures: Vec<CheckpointError>) -> CheckpointError {
    CheckpointError::NoneVerifies {
        run: run.dir().into(),
        checkpoints: run.checkpoints_dir(),
        failures,
    }
}

/// The position of the newest checkpoint that verifies (`None` without checkpoints), or why
/// none does.
pub(crate) fn newest_verified(run: &RunDir) -> Result<Option<Position>, CheckpointError> {
    match newest(run)? {
        (Some(found), _) => Ok(Some(found.state.position())),
        (None, failures) if failures.is_empty() => Ok(None),
        (None, failures) => Err(none_verifies(run, failures)),
    }
}

/// A checkpoint that verified: its state, and the verified bytes of its weights.
#[derive(Debug)]
struct Verified {
    state: CheckpointState,
    model: Vec<u8>,
    optimizer: PathBuf,
}

/// Reads and verifies one checkpoint directory, which its name places at `position`; the
/// error names the damaged file.
fn verify(dir: &Path, position: Position) -> Result<Verified, CheckpointError> {
    let manifest_path = dir.join(MANIFEST);
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Unreadable { path, source }
    };
    let damaged = |path: &Path, reason: String| CheckpointError::Damaged {
        path: path.into(),
        reason,
    };
    let text = std::fs::read(&manifest_path).map_err(unreadable(&manifest_path))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| damaged(&manifest_path, format!("not a manifest ({e})")))?;
    if manifest.format != FORMAT_VERSION {
        return Err(CheckpointError::Format {
            dir: dir.into(),
            found: manifest.format,
            supported: FORMAT_VERSION,
        });
    }
    if (manifest.epoch, manifest.step) != position.manifest_fields() {
        let recorded = match manifest.step {
            None => Some(Position::after_epoch(manifest.epoch)),
            Some(step) => Position::within(manifest.epoch, step),
        };
        return Err(damaged(
            &manifest_path,
            format!(
                "it says {}, its directory says {position}",
                recorded.map_or("no valid position".into(), |p| p.to_string())
            ),
        ));
    }
    let mut contents = BTreeMap::new();
    for name in [MODEL, OPTIMIZER, STATE] {
        let path = dir.join(name);
        let expected = manifest
            .files
            .get(name)
            .ok_or_else(|| damaged(&manifest_path, format!("it does not list {name}")))?;
        let bytes = std::fs::read(&path).map_err(unreadable(&path))?;
        if bytes.len() as u64 != expected.bytes || sha256_hex(&bytes) != expected.sha256 {
            return Err(damaged(
                &path,
                format!(
                    "{} bytes where the manifest recorded {}, or a different SHA-256",
                    bytes.len(),
                    expected.bytes
                ),
            ));
        }
        contents.insert(name, bytes);
    }
    let state = CheckpointState::from_json(&contents[STATE])
        .map_err(|reason| damaged(&dir.join(STATE), reason))?;
    if state.position() != position {
        return Err(damaged(
            &dir.join(STATE),
            format!(
                "it says {}, its directory says {position}",
                state.position()
            ),
        ));
    }
    Ok(Verified {
        state,
        model: contents.remove(MODEL).expect("read above"),
        optimizer: dir.join(OPTIMIZER),
    })
}

/// Where a run continues: after its last checkpoint, or from the start.
pub(crate) struct Resumed {
    pub model: Model,
    pub optim: ModuleOptimizer,
    pub state: Option<CheckpointState>,
}

/// Loads the newest checkpoint that verifies into `model` and `optim`, when there is one;
/// refuses one made with another config, and says which file is damaged when none verifies.
pub(crate) fn resume(
    run: &RunDir,
    config: &RunConfig,
    model: Model,
    optim: ModuleOptimizer,
) -> Result<Resumed, CheckpointError> {
    let (verified, failures) = newest(run)?;
    let Some(found) = verified else {
        if failures.is_empty() {
            return Ok(Resumed {
                model,
                optim,
                state: None,
            });
        }
        return Err(none_verifies(run, failures));
    };
    // Said even with --quiet: the run continues from an older state than the user expects.
    for reason in &failures {
        eprintln!(
            "warning: {}; resuming from the checkpoint before it",
            crate::error_chain(reason)
        );
    }
    if found.state.config != *config {
        return Err(CheckpointError::OtherConfig {
            run: run.dir().into(),
        });
    }
    let weights_path = found.optimizer.with_file_name(MODEL);
    let model = load_model_bytes(model, found.model).map_err(|source| CheckpointError::Load {
        what: "weights",
        path: weights_path,
        source,
    })?;
    let optim = optim
        .load(&found.optimizer)
        .map_err(|source| CheckpointError::Load {
            what: "optimiser state",
            path: found.optimizer.clone(),
            source,
        })?;
    Ok(Resumed {
        model,
        optim,
        state: Some(found.state),
    })
}

#[cfg(test)]
mod tests;
