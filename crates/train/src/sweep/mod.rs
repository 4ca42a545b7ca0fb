//! `fmnist compare`: the same network trained with each activation and several seeds.
//!
//! A compare config is a run config (`[data]`, `[model]`, `[train]`) plus `[compare]`:
//!
//! ```toml
//! [compare]
//! activations = ["relu", "gelu", { kind = "leaky_relu", negative_slope = 0.2 }]
//! seeds = [1, 2]
//! ```
//!
//! Every (activation, seed) is one run in its own subdirectory of the output directory. A run
//! with a `summary.json` is finished and skipped; one with only a checkpoint is resumed, so
//! re-running the same command after an interruption finishes the sweep. `--shard I/N` takes
//! runs `I, I+N, I+2N, ...` only, so N machines (a Slurm array, Kubernetes indexed jobs) share a
//! sweep; [`collect_runs`] then merges finished runs from any number of directories.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use activations::ActivationConfig;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::{ConfigError, RunConfig, apply_override};
use crate::data::dataset::Splits;
use crate::diagnostics::DiagnosticRecord;
use crate::metrics::EpochRecord;
use crate::run_dir::Summary;
use crate::training::{TrainError, TrainOptions, load_data, train_on};

/// `[compare]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompareSection {
    /// The activations to compare; each may carry parameters, so variants sit side by side.
    pub activations: Vec<ActivationConfig>,
    /// One run per seed and activation.
    pub seeds: Vec<u64>,
    /// Record dead units, sparsity, saturation and gradient norms.
    pub diagnostics: bool,
}

impl Default for CompareSection {
    fn default() -> Self {
        Self {
            activations: default_activations(),
            seeds: vec![1, 2],
            diagnostics: true,
        }
    }
}

/// The seed study's set.
pub fn default_activations() -> Vec<ActivationConfig> {
    [
        "identity",
        "sigmoid",
        "tanh",
        "relu",
        "relu6",
        "leaky_relu",
        "prelu",
        "elu",
        "selu",
        "softplus",
        "gelu",
        "silu",
        "mish",
        "aprelu",
    ]
    .iter()
    .map(|name| name.parse().expect("registry names parse"))
    .collect()
}

/// A whole comparison: the base run and what varies.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareConfig {
    /// Training settings shared by every run (its `model.activation` and `train.seed` are
    /// replaced per run).
    pub base: RunConfig,
    /// Activations and seeds.
    pub compare: CompareSection,
}

impl CompareConfig {
    /// Reads `path` and applies `--set` overrides (`compare.seeds=[1]` works too).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Parses TOML text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        for assignment in overrides {
            apply_override(&mut table, assignment)?;
        }
        let compare: CompareSection = match table.remove("compare") {
            None => CompareSection::default(),
            Some(value) => value
                .try_into()
                .map_err(|e| ConfigError(format!("{origin}: [compare]: {e}")))?,
        };
        let rest = toml::to_string(&table).expect("a TOML table serialises");
        let base = RunConfig::parse(&rest, origin, &[])?;
        let config = Self { base, compare };
        config
            .validate()
            .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// Non-empty lists, no run twice, every activation valid in the base model.
    pub fn validate(&self) -> Result<(), String> {
        if self.compare.activations.is_empty() {
            return Err(format!(
                "compare.activations: is empty; list some, e.g. [\"relu\", \"gelu\"] (kinds: {})",
                ActivationConfig::names().join(", ")
            ));
        }
        if self.compare.seeds.is_empty() {
            return Err("compare.seeds: is empty; give at least one, e.g. [1]".into());
        }
        let mut seen = BTreeMap::new();
        for activation in &self.compare.activations {
            let label = label(activation);
            if seen.insert(label.clone(), ()).is_some() {
                return Err(format!("compare.activations: `{label}` is listed twice"));
            }
            let mut model = self.base.model.clone();
            model.set_activation(activation.clone());
            model
                .validate()
                .map_err(|e| format!("compare.activations: `{label}`: {e}"))?;
        }
        let mut seeds = self.compare.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() != self.compare.seeds.len() {
            return Err("compare.seeds: a seed is listed twice".into());
        }
        Ok(())
    }

    /// Every run of the sweep, activations outer, seeds inner.
    pub fn plan(&self) -> Vec<PlannedRun> {
        let mut runs = Vec::new();
        for activation in &self.compare.activations {
            for &seed in &self.compare.seeds {
                let mut config = self.base.clone();
                config.model.set_activation(activation.clone());
                config.train.seed = seed;
                let label = label(activation);
                runs.push(PlannedRun {
                    index: runs.len(),
                    dir_name: format!("{}-seed{seed}", file_safe(&label)),
                    label,
                    seed,
                    config,
                });
            }
        }
        runs
    }

    /// Training time of the sweep, before any run: images to train on in all.
    pub fn total_train_images(&self, train_images: usize) -> usize {
        train_images
            * self.base.train.epochs
            * self.compare.activations.len()
            * self.compare.seeds.len()
    }
}

/// `relu`, or `leaky_relu(negative_slope=0.2)` for a non-default variant.
pub fn label(activation: &ActivationConfig) -> String {
    let name = activation.name();
    let defaults = ActivationConfig::catalog()
        .into_iter()
        .find(|c| c.name() == name)
        .and_then(|c| toml::Value::try_from(c).ok());
    let own = toml::Value::try_from(activation).expect("activation configs serialise");
    let (Some(own), Some(defaults)) =
        (own.as_table(), defaults.as_ref().and_then(|d| d.as_table()))
    else {
        return name.into();
    };
    let changed: Vec<String> = own
        .iter()
        .filter(|(key, value)| key.as_str() != "kind" && defaults.get(key.as_str()) != Some(value))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if changed.is_empty() {
        name.into()
    } else {
        format!("{name}({})", changed.join(", ").replace('"', ""))
    }
}

fn file_safe(label: &str) -> String {
    label
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' | '=' => c,
            _ => '_',
        })
        .collect::<String>()
        .trim_matches('_')
        .to_string()
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// Position in the sweep (what `--shard` divides).
    pub index: usize,
    /// The activation's label, see [`label`].
    pub label: String,
    /// Its seed.
    pub seed: u64,
    /// Subdirectory of the sweep directory.
    pub dir_name: String,
    /// The full run config.
    pub config: RunConfig,
}

/// `--shard I/N`: this machine's part of a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index of this shard.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => Err(format!(
                "--shard {text}: expected I/N with 0 <= I < N, e.g. --shard 0/4 \
                 (with Slurm: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
            )),
        }
    }
}

impl Shard {
    /// Whether this shard runs the run at `index`.
    pub fn takes(&self, index: usize) -> bool {
        index % self.count == self.index
    }
}

/// What happened to each run of a sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Already finished: skipped.
    Skipped,
    /// Trained from scratch.
    Trained,
    /// Continued from its checkpoint.
    Resumed,
    /// Another shard's.
    OtherShard,
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
}

/// Whether a run directory holds a finished run of `config`; an error if it holds a run of
/// another config (the user changed the config but kept `--out`).
fn finished(dir: &Path, config: &RunConfig) -> Result<bool, TrainError> {
    let summary = dir.join("summary.json");
    if !summary.is_file() {
        return Ok(false);
    }
    let existing = RunConfig::load(&dir.join("config.toml"), &[]).map_err(|e| TrainError(e.0))?;
    if existing != *config {
        return Err(TrainError(format!(
            "{} holds a finished run of a different config; use another --out directory \
             for the changed sweep (or delete that run to redo it)",
            dir.display()
        )));
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
        .map_err(|e| TrainError(format!("cannot create {}: {e}", options.out_dir.display())))?;
    let plan = config.plan();
    let mut loaded: Option<Splits> = None;
    let mut statuses = Vec::new();
    for run in plan {
        if !options.shard.takes(run.index) {
            statuses.push((run, RunStatus::OtherShard));
            continue;
        }
        let dir = options.out_dir.join(&run.dir_name);
        if finished(&dir, &run.config)? {
            if !options.quiet {
                eprintln!("[{}] {}: finished, skipped", run.index + 1, run.dir_name);
            }
            statuses.push((run, RunStatus::Skipped));
            continue;
        }
        let resume = dir.join("checkpoint").join("state.json").is_file();
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
        train_on(
            &run.config,
            data,
            &TrainOptions {
                backend: options.backend,
                out_dir: dir,
                resume,
                quiet: options.quiet,
                stop_after: None,
                diagnostics: config.compare.diagnostics,
            },
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
}

/// Finished runs in the given sweep directories (each a directory of run directories, or a run
/// directory itself), in a stable order; a run found twice (same label and seed) is kept once.
pub fn collect_runs(dirs: &[PathBuf]) -> Result<Vec<FinishedRun>, String> {
    let mut candidates = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(format!(
                "{} is not a directory: give sweep directories written by `fmnist compare`",
                dir.display()
            ));
        }
        if is_run_dir(dir) {
            candidates.push(dir.clone());
            continue;
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| is_run_dir(path))
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

/// A finished run's directory (a sweep directory holds a `summary.json` of its own, but no
/// `metrics.csv` or `config.toml`).
fn is_run_dir(dir: &Path) -> bool {
    ["summary.json", "metrics.csv", "config.toml"]
        .iter()
        .all(|file| dir.join(file).is_file())
}

fn read_run(dir: &Path) -> Result<FinishedRun, String> {
    let config = RunConfig::load(&dir.join("config.toml"), &[]).map_err(|e| e.0)?;
    let text = std::fs::read_to_string(dir.join("summary.json"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("summary.json").display()))?;
    let summary: Summary = serde_json::from_str(&text)
        .map_err(|e| format!("{} is damaged: {e}", dir.join("summary.json").display()))?;
    let history = read_csv(&dir.join("metrics.csv"), EpochRecord::from_csv_row)?;
    let diagnostics_path = dir.join("diagnostics.csv");
    let diagnostics = if diagnostics_path.is_file() {
        read_csv(&diagnostics_path, DiagnosticRecord::from_csv_row)?
    } else {
        Vec::new()
    };
    Ok(FinishedRun {
        dir: dir.into(),
        label: label(config.model.activation()),
        seed: config.train.seed,
        config,
        summary,
        history,
        diagnostics,
    })
}

fn read_csv<T>(path: &Path, parse: fn(&[&str]) -> Option<T>) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .skip(1)
        .enumerate()
        .map(|(i, line)| {
            let cells: Vec<&str> = line.split(',').collect();
            parse(&cells)
                .ok_or_else(|| format!("{} line {}: cannot parse `{line}`", path.display(), i + 2))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, sets: &[&str]) -> Result<CompareConfig, String> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        CompareConfig::parse(text, "c.toml", &sets).map_err(|e| e.0)
    }

    #[test]
    fn default_list_is_the_seed_study_and_labels_name_variants() {
        let config = parse("", &[]).unwrap();
        let names: Vec<&str> = config
            .compare
            .activations
            .iter()
            .map(|a| a.name())
            .collect();
        assert_eq!(names.len(), 14);
        assert!(names.contains(&"aprelu") && names.contains(&"identity"));
        let variant: ActivationConfig =
            toml::from_str("kind = \"leaky_relu\"\nnegative_slope = 0.2").unwrap();
        assert_eq!(label(&variant), "leaky_relu(negative_slope=0.2)");
        assert_eq!(label(&ActivationConfig::Relu), "relu");
        assert_eq!(file_safe(&label(&variant)), "leaky_relu_negative_slope=0.2");
    }

    #[test]
    fn plan_varies_activation_and_seed_only() {
        let config = parse(
            "[compare]\nactivations = [\"relu\", { kind = \"leaky_relu\", negative_slope = 0.2 }]\n\
             seeds = [3, 4]\n[train]\nepochs = 2",
            &["train.lr=0.01"],
        )
        .unwrap();
        let plan = config.plan();
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[1].label, "relu");
        assert_eq!(plan[1].seed, 4);
        assert_eq!(plan[1].dir_name, "relu-seed4");
        assert_eq!(plan[2].config.model.activation().name(), "leaky_relu");
        assert!(
            plan.iter()
                .all(|r| r.config.train.epochs == 2 && r.config.train.lr == 0.01)
        );
        assert_eq!(
            plan.iter().map(|r| r.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn shards_cover_every_run_exactly_once() {
        let config = parse("[compare]\nseeds = [1, 2, 3]", &[]).unwrap();
        let plan = config.plan();
        assert_eq!(plan.len(), 42);
        for count in 1..=7 {
            let mut taken = vec![0; plan.len()];
            for index in 0..count {
                let shard: Shard = format!("{index}/{count}").parse().unwrap();
                for run in &plan {
                    if shard.takes(run.index) {
                        taken[run.index] += 1;
                    }
                }
            }
            assert!(taken.iter().all(|&n| n == 1), "{count} shards: {taken:?}");
        }
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            let error = bad.parse::<Shard>().unwrap_err();
            assert!(error.contains("I/N"), "{bad}: {error}");
        }
    }

    #[test]
    fn bad_compare_sections_name_the_key() {
        for (text, expected) in [
            (
                "[compare]\nactivations = []",
                "compare.activations: is empty",
            ),
            ("[compare]\nseeds = []", "compare.seeds: is empty"),
            ("[compare]\nseeds = [1, 1]", "listed twice"),
            (
                "[compare]\nactivations = [\"relu\", \"relu\"]",
                "`relu` is listed twice",
            ),
            ("[compare]\nactivations = [\"relu7\"]", "relu7"),
            ("[compare]\nrepeats = 3", "repeats"),
            ("[compare]\nactivations = [\"softmax\"]", "softmax"),
            ("[train]\nlr = 0", "train.lr"),
        ] {
            let error = parse(text, &[]).unwrap_err();
            assert!(error.starts_with("c.toml"), "{text}: {error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
