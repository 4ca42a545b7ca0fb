//! The run directory: `config.toml`, `metrics.csv`, `diagnostics.csv`, `summary.json`,
//! `model.bpk`, `run.lock`, and the `checkpoints/` that `--resume` continues from
//! ([`crate::run::checkpoint`]). Every file is written to a temporary name, fsynced and renamed
//! into place, so an interrupted run never leaves a half-written file; `summary.json` comes
//! last and records the weights' SHA-256.
use std::path::{Path, PathBuf};

use burn::module::Module;
use models::Model;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::RunConfig;
use crate::records::{read_csv, to_csv};
use crate::run::diagnostics::DiagnosticRecord;
use crate::run::metrics::{EpochRecord, Evaluation, SplitName};

fn yes() -> bool {
    true
}

/// `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The activation of the model's slots (the `model.activation` key).
    pub activation: String,
    /// Its full configuration.
    pub activation_config: activations::ActivationConfig,
    /// Backend trained on.
    pub backend: String,
    /// Epochs trained.
    pub epochs: usize,
    /// Whether all of the config's epochs were trained (false after a requested stop).
    #[serde(default = "yes")]
    pub complete: bool,
    /// Final test accuracy (fraction).
    pub test_accuracy: f64,
    /// Final test loss.
    pub test_loss: f64,
    /// Epoch with the best test accuracy, and that accuracy.
    pub best_epoch: usize,
    /// Best test accuracy over the epochs.
    pub best_test_accuracy: f64,
    /// Mean training loss of the last epoch.
    pub final_train_loss: f64,
    /// Training images per second, averaged over epochs (evaluation excluded).
    pub train_images_per_second: f64,
    /// Training wall time in seconds (evaluation excluded).
    pub seconds: f64,
    /// Trainable parameters.
    pub params: usize,
    /// Training images per epoch.
    pub train_images: usize,
    /// Test accuracy per class, in label order.
    pub per_class_accuracy: Vec<f64>,
    /// Test confusion matrix, `[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// SHA-256 of the `model.bpk` this summary describes (absent in runs of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
}

impl Summary {
    pub(crate) fn new(
        config: &RunConfig,
        backend: Backend,
        model: &Model,
        history: &[EpochRecord],
        test: &Evaluation,
        seconds: f64,
        train_images: usize,
    ) -> Self {
        let tests: Vec<&EpochRecord> = history
            .iter()
            .filter(|r| r.split == SplitName::Test)
            .collect();
        let best = tests
            .iter()
            .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
            .map(|r| (r.epoch, r.accuracy))
            .unwrap_or((config.train.epochs, test.accuracy));
        let trains: Vec<&EpochRecord> = history
            .iter()
            .filter(|r| r.split == SplitName::Train)
            .collect();
        let epochs = trains.last().map_or(0, |r| r.epoch);
        Summary {
            activation: config.model.activation().name().into(),
            activation_config: config.model.activation().clone(),
            backend: backend.name().into(),
            epochs,
            complete: epochs == config.train.epochs,
            test_accuracy: test.accuracy,
            test_loss: test.loss,
            best_epoch: best.0,
            best_test_accuracy: best.1,
            final_train_loss: trains.last().map_or(f64::NAN, |r| r.loss),
            train_images_per_second: trains.iter().map(|r| r.images_per_second).sum::<f64>()
                / trains.len().max(1) as f64,
            seconds,
            params: model.num_params(),
            train_images,
            per_class_accuracy: test.per_class_accuracy(),
            confusion: test.confusion.clone(),
            model_sha256: None,
        }
    }
}

/// A run directory. It owns every file name in it: nothing else in the crate joins a name
/// to a run's path.
pub struct RunDir {
    dir: PathBuf,
}

/// Writes `bytes` to a temporary name, fsyncs it and renames it into place (fsyncing the
/// directory), so an interrupted write never leaves a half-written or empty file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fsync_dir(parent),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` and waits until they are on disk.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    std::fs::File::create(path)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Makes a directory's entries (renames, new files) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

fn save_model_atomic(model: &Model, path: &Path) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    model
        .clone()
        .save_file(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|file| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl RunDir {
    /// Creates (or reuses) a run directory.
    pub fn create(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create run directory {}: {e}", dir.display()))?;
        Ok(Self { dir: dir.into() })
    }

    /// Whether `dir` holds a finished run (`summary.json`, `metrics.csv` and `config.toml`; a
    /// sweep directory holds a `summary.json` of its own, but not the other two).
    pub fn is_finished(dir: &Path) -> bool {
        let run = Self { dir: dir.into() };
        [run.summary_path(), run.metrics_path(), run.config_path()]
            .iter()
            .all(|file| file.is_file())
    }

    /// A handle on `dir` without touching the disk.
    pub fn at(dir: &Path) -> Self {
        Self { dir: dir.into() }
    }

    /// Opens an existing run directory with a trained model.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let run = Self { dir: dir.into() };
        for path in [run.config_path(), run.model_path()] {
            if !path.is_file() {
                return Err(format!(
                    "{} is not a finished run directory: {} is missing (train one with \
                     `fmnist train --out {}`)",
                    dir.display(),
                    path.file_name().unwrap().to_string_lossy(),
                    dir.display()
                ));
            }
        }
        Ok(run)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// `model.bpk`, the final weights.
    pub fn model_path(&self) -> PathBuf {
        self.dir.join("model.bpk")
    }

    /// `summary.json`.
    pub fn summary_path(&self) -> PathBuf {
        self.dir.join("summary.json")
    }

    /// `metrics.csv`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }

    /// `diagnostics.csv`.
    pub fn diagnostics_path(&self) -> PathBuf {
        self.dir.join("diagnostics.csv")
    }

    /// Whether there is a checkpoint to resume from.
    pub fn has_checkpoint(&self) -> bool {
        crate::run::checkpoint::exists(self)
    }

    /// `run.lock`, held by the one process that writes the run.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("run.lock")
    }

    /// Takes the run's writer lock (see [`RunLock`](crate::run::lock::RunLock)).
    pub fn lock(&self) -> Result<crate::run::lock::RunLock, crate::run::lock::LockError> {
        crate::run::lock::RunLock::acquire(&self.lock_path())
    }

    /// `checkpoints/`, one directory per kept checkpoint.
    pub(crate) fn checkpoints_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// `checkpoints/epoch-NNNN`.
    pub(crate) fn checkpoint_dir(&self, epoch: usize) -> PathBuf {
        self.checkpoints_dir().join(format!("epoch-{epoch:04}"))
    }

    /// `checkpoint/`, the layout before checkpoint format 1.
    pub(crate) fn legacy_checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }

    /// The resolved config of a finished run.
    pub fn read_config(&self) -> Result<RunConfig, String> {
        RunConfig::load(&self.config_path(), &[]).map_err(|e| e.0)
    }

    pub(crate) fn write_metrics(&self, history: &[EpochRecord]) -> Result<(), String> {
        write_atomic(&self.metrics_path(), &to_csv(history))
    }

    pub(crate) fn write_diagnostics(&self, records: &[DiagnosticRecord]) -> Result<(), String> {
        write_atomic(&self.diagnostics_path(), &to_csv(records))
    }

    /// `metrics.csv`.
    pub fn read_metrics(&self) -> Result<Vec<EpochRecord>, String> {
        read_csv(&self.metrics_path())
    }

    /// `diagnostics.csv`, empty when the run recorded none.
    pub fn read_diagnostics(&self) -> Result<Vec<DiagnosticRecord>, String> {
        let path = self.diagnostics_path();
        if path.is_file() {
            read_csv(&path)
        } else {
            Ok(Vec::new())
        }
    }

    /// `summary.json` of a finished run, with an error that names a damaged file.
    pub fn read_summary(&self) -> Result<Summary, String> {
        let path = self.summary_path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))
    }

    /// Writes the finished run: its config and weights, then `summary.json` with the weights'
    /// SHA-256, last, so a summary exists only beside the weights it describes.
    pub(crate) fn write_final(
        &self,
        config: &RunConfig,
        model: &Model,
        summary: &mut Summary,
    ) -> Result<(), String> {
        write_atomic(&self.config_path(), config.to_toml().as_bytes())?;
        save_model_atomic(model, &self.model_path())?;
        crate::run::checkpoint::fault_point("final-model", summary.epochs);
        let bytes = std::fs::read(self.model_path())
            .map_err(|e| format!("cannot read {}: {e}", self.model_path().display()))?;
        summary.model_sha256 = Some(crate::run::checkpoint::sha256_hex(&bytes));
        let json = serde_json::to_vec_pretty(summary).expect("summaries serialise");
        write_atomic(&self.summary_path(), &json)?;
        crate::run::checkpoint::fault_point("final-summary", summary.epochs);
        Ok(())
    }

    /// The finished run's weights loaded into `model`, after checking them against the
    /// summary's SHA-256: damaged bytes are refused with a message, never handed to Burn.
    pub fn load_model(&self, model: Model) -> Result<Model, String> {
        let path = self.model_path();
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if self.summary_path().is_file() {
            let summary = self.read_summary()?;
            if let Some(expected) = summary.model_sha256
                && crate::run::checkpoint::sha256_hex(&bytes) != expected
            {
                return Err(format!(
                    "{} is damaged: its SHA-256 differs from the one in {} (retrain the run, \
                     or restore the file from a copy)",
                    path.display(),
                    self.summary_path().display()
                ));
            }
        }
        load_model_bytes(model, bytes).map_err(|e| format!("cannot load {}: {e}", path.display()))
    }
}

/// Weights from burnpack bytes, with an error (not a panic) for bytes that do not parse or do
/// not fit the model.
pub(crate) fn load_model_bytes(model: Model, bytes: Vec<u8>) -> Result<Model, String> {
    let bytes = burn::tensor::Bytes::from_bytes_vec(bytes);
    let record = burn::store::ModuleRecord::from_bytes(bytes).map_err(|e| e.to_string())?;
    model.try_load_record(record).map_err(|e| e.to_string())
}
