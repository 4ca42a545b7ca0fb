//! Finished runs read back from their directories, for the report.
use std::path::{Path, PathBuf};

use super::ReportError;
use crate::config::RunConfig;
use crate::run::{DiagnosticRecord, EpochRecord, RunDir, RunError, Summary};
use crate::sweep::label;

/// A finished run read back from its directory.
#[derive(Clone, Debug)]
pub struct FinishedRun {
    /// Its directory.
    pub dir: PathBuf,
    /// The activation's label.
    pub label: String,
    /// Its seed.
    pub seed: u64,
    /// Its resolved config.
    pub config: RunConfig,
    /// `summary.json`.
    pub summary: Summary,
    /// `metrics.csv`.
    pub history: Vec<EpochRecord>,
    /// `diagnostics.csv` (empty when not recorded).
    pub diagnostics: Vec<DiagnosticRecord>,
    /// `inspect/summary.json`, when the run was inspected.
    pub inspection: Option<crate::inspect::Inspection>,
}

/// Finished runs in the given sweep directories (each a directory of run directories, or a run
/// directory itself), in a stable order; a run found twice (same label and seed) is kept once.
pub fn collect_runs(dirs: &[PathBuf]) -> Result<Vec<FinishedRun>, ReportError> {
    let mut candidates = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(ReportError::NotADirectory { dir: dir.clone() });
        }
        if RunDir::is_finished(dir) {
            candidates.push(dir.clone());
            continue;
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(RunError::io("read", dir))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| RunDir::is_finished(path))
            .collect();
        children.sort();
        candidates.extend(children);
    }
    let mut runs: Vec<FinishedRun> = Vec::new();
    for dir in candidates {
        let run = read_run(&dir)?;
        if runs
            .iter()
            .any(|r| r.label == run.label && r.seed == run.seed)
        {
            eprintln!(
                "note: {} repeats {} seed {}; the first one found is used",
                dir.display(),
                run.label,
                run.seed
            );
            continue;
        }
        runs.push(run);
    }
    Ok(runs)
}

fn read_run(dir: &Path) -> Result<FinishedRun, RunError> {
    let run = RunDir::at(dir);
    let config: RunConfig = run.read_config()?;
    let summary = run.read_summary()?;
    let history = run.read_metrics()?;
    let diagnostics = run.read_diagnostics()?;
    let inspection = run.read_inspection()?;
    // The weights too (the report does not read them, but a run whose weights changed after
    // it finished is not the run its numbers describe); config and metrics were checked as
    // they were read above. A run published without its weights (a study's committed runs
    // keep one seed's models, to keep the repository small) is reported on its numbers.
    if run.model_path().exists() {
        run.verify_weights()?;
    }
    Ok(FinishedRun {
        dir: dir.into(),
        label: config
            .model
            .mixed_label()
            .unwrap_or_else(|| label(config.model.activation())),
        seed: config.train.seed,
        config,
        summary,
        history,
        diagnostics,
        inspection,
    })
}
