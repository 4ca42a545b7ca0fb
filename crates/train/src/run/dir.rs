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
use crate::records::{parse_csv, read_csv, to_csv};
use crate::run::RunError;
use crate::run::diagnostics::DiagnosticRecord;
use crate::run::metrics::{EpochRecord, Evaluation, SplitName};

fn yes() -> bool {
    true
}

/// The run directory layout this version writes (`run_format` in `summary.json`). A run of a
/// newer format is refused by name instead of being misread; runs without the field predate
/// it and read as format 1.
pub const RUN_FORMAT: u32 = 1;

fn run_format() -> u32 {
    RUN_FORMAT
}

/// `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The run directory layout ([`RUN_FORMAT`]).
    #[serde(default = "run_format")]
    pub run_format: u32,
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
    /// SHA-256 of the `config.toml` beside it (absent in runs of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    /// SHA-256 of the `metrics.csv` beside it (absent in runs of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_sha256: Option<String>,
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
            run_format: RUN_FORMAT,
            activation: config.model.label(),
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
            config_sha256: None,
            metrics_sha256: None,
        }
    }
}

/// A run directory. It owns every file name in it: nothing else in the crate joins a name
/// to a run's path.
pub struct RunDir {
    dir: PathBuf,
}

/// Writes `bytes` to a uniquely named temporary file beside `path`, fsyncs it and renames it
/// into place (fsyncing the directory), so an interrupted write never leaves a half-written
/// or empty file and concurrent writers never share a temporary file ([`crate::atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    crate::atomic::write(path, bytes).map_err(RunError::io("write", path))
}

/// Writes `bytes` to `path` and waits until they are on disk.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    use std::io::Write;
    std::fs::File::create(path)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(RunError::io("write", path))
}

/// Makes a directory's entries (renames, new files) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), RunError> {
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(RunError::io("sync", dir))
}

/// Saves `model` as burnpack at `path` and waits until the bytes are on disk.
pub(crate) fn save_model_synced(model: &Model, path: &Path) -> Result<(), RunError> {
    model
        .clone()
        .save_file(path)
        .map_err(|source| RunError::Io {
            action: "write",
            path: path.into(),
            source: std::io::Error::other(source),
        })?;
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(RunError::io("write", path))
}

fn save_model_atomic(model: &Model, path: &Path) -> Result<(), RunError> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|source| RunError::Io {
            action: "write",
            path: path.into(),
            source: std::io::Error::other(source),
        })?;
    write_atomic(path, &bytes)
}

impl RunDir {
    /// Creates (or reuses) a run directory.
    pub fn create(dir: &Path) -> Result<Self, RunError> {
        std::fs::create_dir_all(dir).map_err(RunError::io("create run directory", dir))?;
        // A directory that exists but cannot be written (read-only mount, permissions) fails
        // here, naming it, before any training rather than at the first checkpoint.
        tempfile::tempfile_in(dir).map_err(RunError::io("write into run directory", dir))?;
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
    pub fn open(dir: &Path) -> Result<Self, RunError> {
        let run = Self { dir: dir.into() };
        for path in [run.config_path(), run.model_path()] {
            if !path.is_file() {
                return Err(RunError::NotFinished {
                    dir: dir.into(),
                    missing: path.file_name().unwrap().to_string_lossy().into(),
                });
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

    /// `inspect/`, where `fmnist inspect` (and `fmnist compare`, for learnable activations)
    /// writes what the run's activations do on the test set.
    pub fn inspect_dir(&self) -> PathBuf {
        self.dir.join("inspect")
    }

    /// `inspect/summary.json`, the [`Inspection`](crate::inspect::Inspection).
    pub fn inspection_path(&self) -> PathBuf {
        self.inspect_dir().join("summary.json")
    }

    /// The run's inspection, when one was written (`None` without `inspect/summary.json`).
    pub fn read_inspection(&self) -> Result<Option<crate::inspect::Inspection>, RunError> {
        let path = self.inspection_path();
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(RunError::io("read", &path))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| RunError::Json { path, source })
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

    /// `checkpoint/`, the layout before checkpoint format 1.
    pub(crate) fn legacy_checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }

    /// The resolved config of the run. In a finished run it is checked against the SHA-256
    /// its `summary.json` recorded, so a config cut short or edited since is refused, not
    /// silently used to rebuild a different model.
    pub fn read_config(&self) -> Result<RunConfig, RunError> {
        let path = self.config_path();
        let bytes = self.read_checked(&path, |summary| summary.config_sha256.as_deref())?;
        let text = String::from_utf8(bytes).map_err(|e| RunError::Damaged {
            path: path.clone(),
            reason: format!("not UTF-8 text ({e})"),
        })?;
        Ok(RunConfig::parse(&text, &path.display().to_string(), &[])?)
    }

    /// Checks every file `summary.json` records a SHA-256 for (weights, config, metrics)
    /// against it; the error names the first that differs. Runs of older versions record
    /// none and pass.
    pub(crate) fn verify_files(&self) -> Result<(), RunError> {
        self.read_checked(&self.config_path(), |s| s.config_sha256.as_deref())?;
        self.read_checked(&self.metrics_path(), |s| s.metrics_sha256.as_deref())?;
        self.verify_weights()
    }

    /// Checks `model.bpk` against `summary.json`'s SHA-256 without loading it.
    pub(crate) fn verify_weights(&self) -> Result<(), RunError> {
        self.read_checked(&self.model_path(), |s| s.model_sha256.as_deref())?;
        Ok(())
    }

    /// The bytes of a file of the run, read once and, in a finished run, checked against the
    /// SHA-256 that `pick` finds in `summary.json` (runs of older versions have none).
    fn read_checked(
        &self,
        path: &Path,
        pick: impl Fn(&Summary) -> Option<&str>,
    ) -> Result<Vec<u8>, RunError> {
        let bytes = std::fs::read(path).map_err(RunError::io("read", path))?;
        if !self.summary_path().is_file() {
            return Ok(bytes);
        }
        let summary = self.read_summary()?;
        match pick(&summary) {
            Some(expected) if crate::data::source::sha256_hex(&bytes) != expected => {
                Err(RunError::Damaged {
                    path: path.into(),
                    reason: format!(
                        "its SHA-256 differs from the one in {} (retrain the run, or restore \
                         the file from a copy)",
                        self.summary_path().display()
                    ),
                })
            }
            _ => Ok(bytes),
        }
    }

    pub(crate) fn write_metrics(&self, history: &[EpochRecord]) -> Result<(), RunError> {
        write_atomic(&self.metrics_path(), &to_csv(history))
    }

    pub(crate) fn write_diagnostics(&self, records: &[DiagnosticRecord]) -> Result<(), RunError> {
        write_atomic(&self.diagnostics_path(), &to_csv(records))
    }

    /// `metrics.csv`; in a finished run checked against the SHA-256 in `summary.json`.
    pub fn read_metrics(&self) -> Result<Vec<EpochRecord>, RunError> {
        let path = self.metrics_path();
        let bytes = self.read_checked(&path, |summary| summary.metrics_sha256.as_deref())?;
        Ok(parse_csv(&bytes, &path)?)
    }

    /// `diagnostics.csv`, empty when the run recorded none.
    pub fn read_diagnostics(&self) -> Result<Vec<DiagnosticRecord>, RunError> {
        let path = self.diagnostics_path();
        if path.is_file() {
            Ok(read_csv(&path)?)
        } else {
            Ok(Vec::new())
        }
    }

    /// `summary.json` of a finished run, with an error that names a damaged file, or a run
    /// format newer than this version reads.
    pub fn read_summary(&self) -> Result<Summary, RunError> {
        let path = self.summary_path();
        let bytes = std::fs::read(&path).map_err(RunError::io("read", &path))?;
        // The format first, so a newer run is reported as such rather than as damaged.
        #[derive(Deserialize)]
        struct Format {
            #[serde(default)]
            run_format: u32,
        }
        if let Ok(Format { run_format }) = serde_json::from_slice(&bytes)
            && run_format > RUN_FORMAT
        {
            return Err(RunError::Version {
                path,
                found: run_format,
                supported: RUN_FORMAT,
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| RunError::Json { path, source })
    }

    /// Writes the finished run: its config and weights, then `summary.json` with the weights'
    /// SHA-256, last, so a summary exists only beside the weights it describes.
    pub(crate) fn write_final(
        &self,
        config: &RunConfig,
        model: &Model,
        summary: &mut Summary,
    ) -> Result<(), RunError> {
        let config_toml = config.to_toml();
        write_atomic(&self.config_path(), config_toml.as_bytes())?;
        summary.config_sha256 = Some(crate::data::source::sha256_hex(config_toml.as_bytes()));
        let metrics = std::fs::read(self.metrics_path())
            .map_err(RunError::io("read", self.metrics_path()))?;
        summary.metrics_sha256 = Some(crate::data::source::sha256_hex(&metrics));
        save_model_atomic(model, &self.model_path())?;
        crate::run::checkpoint::fault_point("final-model", summary.epochs);
        let bytes =
            std::fs::read(self.model_path()).map_err(RunError::io("read", self.model_path()))?;
        summary.model_sha256 = Some(crate::data::source::sha256_hex(&bytes));
        let json = serde_json::to_vec_pretty(summary).expect("summaries serialise");
        write_atomic(&self.summary_path(), &json)?;
        crate::run::checkpoint::fault_point("final-summary", summary.epochs);
        Ok(())
    }

    /// Writes a run's config and weights without a training history (`fmnist import`).
    pub(crate) fn write_weights(&self, config: &RunConfig, model: &Model) -> Result<(), RunError> {
        write_atomic(&self.config_path(), config.to_toml().as_bytes())?;
        save_model_atomic(model, &self.model_path())
    }

    /// The finished run's weights loaded into `model`, after checking them against the
    /// summary's SHA-256: damaged bytes are refused with a message, never handed to Burn.
    pub fn load_model(&self, model: Model) -> Result<Model, RunError> {
        let path = self.model_path();
        let bytes = self.read_checked(&path, |summary| summary.model_sha256.as_deref())?;
        let model = load_model_bytes(model, bytes).map_err(|source| RunError::Weights {
            path: path.clone(),
            source,
        })?;
        match non_finite_reason(&model) {
            Some(reason) => Err(RunError::Damaged { path, reason }),
            None => Ok(model),
        }
    }
}

/// Why a loaded model cannot be used: the parameters that hold NaN or infinities, or `None`.
pub(crate) fn non_finite_reason(model: &Model) -> Option<String> {
    let found = model.non_finite_parameters();
    if found.is_empty() {
        return None;
    }
    let list: Vec<String> = found
        .iter()
        .map(|(path, count)| format!("{path} ({count})"))
        .collect();
    Some(format!(
        "parameters hold NaN or infinite values: {}; the run diverged or the file was changed: \
         train it again (a lower learning rate if it diverged) or use an earlier checkpoint",
        list.join(", ")
    ))
}

/// Weights from burnpack bytes, with an error (not a panic) for bytes that do not parse or do
/// not fit the model.
pub(crate) fn load_model_bytes(
    model: Model,
    bytes: Vec<u8>,
) -> Result<Model, burn::store::RecordError> {
    let bytes = burn::tensor::Bytes::from_bytes_vec(bytes);
    model.try_load_record(burn::store::ModuleRecord::from_bytes(bytes)?)
}
