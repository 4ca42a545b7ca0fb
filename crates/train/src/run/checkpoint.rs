//! What a checkpoint remembers, and resuming a run from it: the weights and the optimiser
//! state (in `checkpoint/`, written by [`RunDir::write_checkpoint`]) plus [`CheckpointState`],
//! written last, so that a checkpoint counts only once its state exists.
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use models::Model;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::run::diagnostics::DiagnosticRecord;
use crate::run::dir::RunDir;
use crate::run::metrics::EpochRecord;
use crate::run::training::TrainError;

/// What a checkpoint remembers besides the weights and the optimiser state.
#[derive(Clone, Debug)]
pub(crate) struct CheckpointState {
    pub epochs_done: usize,
    pub history: Vec<EpochRecord>,
    pub train_seconds: f64,
    pub config: RunConfig,
    pub diagnostics: Vec<DiagnosticRecord>,
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
}

impl CheckpointState {
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let file = StateFile {
            epochs_done: self.epochs_done,
            train_seconds: self.train_seconds,
            config: self.config.clone(),
            metrics_csv: csv_text(&self.history),
            diagnostics_csv: csv_text(&self.diagnostics),
        };
        serde_json::to_vec_pretty(&file).expect("checkpoint state serialises")
    }

    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let file: StateFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(Self {
            epochs_done: file.epochs_done,
            train_seconds: file.train_seconds,
            config: file.config,
            history: parse_csv_text(&file.metrics_csv)?,
            diagnostics: parse_csv_text(&file.diagnostics_csv)?,
        })
    }
}

fn csv_text<T: Serialize>(rows: &[T]) -> String {
    String::from_utf8(crate::records::to_csv(rows)).expect("CSV of UTF-8 fields is UTF-8")
}

fn parse_csv_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// Where a run continues: after its last checkpoint, or from the start.
pub(crate) struct Resumed {
    pub model: Model,
    pub optim: ModuleOptimizer,
    pub state: Option<CheckpointState>,
}

/// Loads the run's last checkpoint into `model` and `optim` when there is one; refuses one made
/// with another config.
pub(crate) fn resume(
    run: &RunDir,
    config: &RunConfig,
    model: Model,
    optim: ModuleOptimizer,
) -> Result<Resumed, TrainError> {
    let Some(state) = run.read_checkpoint_state().map_err(TrainError)? else {
        return Ok(Resumed {
            model,
            optim,
            state: None,
        });
    };
    if state.config != *config {
        return Err(TrainError(format!(
            "cannot resume {}: its checkpoint was made with a different config; use a new \
             --out directory, or the same config and --set options as before",
            run.dir().display()
        )));
    }
    let model = model.load_file(run.checkpoint_model());
    let optim = optim
        .load(run.checkpoint_optimizer())
        .map_err(|e| TrainError(format!("cannot read the optimiser checkpoint: {e}")))?;
    Ok(Resumed {
        model,
        optim,
        state: Some(state),
    })
}
