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
//! sweep; [`crate::report::collect_runs`] then merges finished runs from any number of
//! directories.
//!
//! - this file: [`CompareConfig`] (`[compare]` and the base run config), its validation;
//! - [`plan`]: the runs of a sweep ([`PlannedRun`]), their labels and directories, [`Shard`];
//! - [`run`]: training this shard's runs, skipping finished ones and resuming interrupted ones.
pub mod plan;
pub mod run;

use std::collections::BTreeMap;
use std::path::Path;

use activations::ActivationConfig;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, RunConfig, apply_overrides};

pub use plan::{ParseShardError, PlannedRun, Shard, label};
pub use run::{CompareOptions, RunStatus, run_sweep, run_sweep_on};

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
    /// The reference of the report's paired comparisons: a label from `activations`.
    pub baseline: String,
}

impl Default for CompareSection {
    fn default() -> Self {
        Self {
            activations: default_activations(),
            seeds: vec![1, 2],
            diagnostics: true,
            baseline: "relu".into(),
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
    /// Reads `path` (a file, or the name of a shipped config: [`crate::configs`]) and applies
    /// `--set` overrides (`compare.seeds=[1]` works too).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let (text, origin) = crate::configs::read(path)?;
        Self::parse(&text, &origin, overrides)
    }

    /// Parses TOML text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut table: toml::Table = ConfigError::parse_toml(text, origin)?;
        apply_overrides(&mut table, overrides)?;
        let compare: CompareSection = match table.remove("compare") {
            None => CompareSection::default(),
            Some(value) => value.try_into().map_err(|source| ConfigError::Toml {
                origin: format!("{origin}: [compare]"),
                source,
            })?,
        };
        let rest = toml::to_string(&table).expect("a TOML table serialises");
        let base = RunConfig::parse(&rest, origin, &[])?;
        let config = Self { base, compare };
        config.validate().map_err(|e| e.in_file(origin))?;
        Ok(config)
    }

    /// Non-empty lists, no run twice, every activation valid in the base model.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.compare.activations.is_empty() {
            return Err(ConfigError::invalid(
                "compare.activations",
                format!(
                    "is empty; list some, e.g. [\"relu\", \"gelu\"] (kinds: {})",
                    ActivationConfig::names().join(", ")
                ),
            ));
        }
        if self.compare.seeds.is_empty() {
            return Err(ConfigError::invalid(
                "compare.seeds",
                "is empty; give at least one, e.g. [1]",
            ));
        }
        let mut seen = BTreeMap::new();
        for activation in &self.compare.activations {
            let label = label(activation);
            if seen.insert(label.clone(), ()).is_some() {
                return Err(ConfigError::invalid(
                    "compare.activations",
                    format!("`{label}` is listed twice"),
                ));
            }
            let mut model = self.base.model.clone();
            model.set_activation(activation.clone());
            model.validate().map_err(|e| {
                ConfigError::invalid("compare.activations", format!("`{label}`: {e}"))
            })?;
        }
        if !seen.contains_key(&self.compare.baseline) {
            return Err(ConfigError::invalid(
                "compare.baseline",
                format!(
                    "`{}` is not among compare.activations; use one of their labels: {}",
                    self.compare.baseline,
                    seen.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut seeds = self.compare.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() != self.compare.seeds.len() {
            return Err(ConfigError::invalid(
                "compare.seeds",
                "a seed is listed twice",
            ));
        }
        Ok(())
    }

    /// Every run of the sweep, activations outer, seeds inner.
    pub fn plan(&self) -> Vec<PlannedRun> {
        plan::plan(&self.base, &self.compare.activations, &self.compare.seeds)
    }

    /// Training time of the sweep, before any run: images to train on in all.
    pub fn total_train_images(&self, train_images: usize) -> usize {
        train_images
            * self.base.train.epochs
            * self.compare.activations.len()
            * self.compare.seeds.len()
    }
}

#[cfg(test)]
mod tests {
    use super::plan::file_safe;
    use super::*;

    fn parse(text: &str, sets: &[&str]) -> Result<CompareConfig, String> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        CompareConfig::parse(text, "c.toml", &sets).map_err(|e| crate::error_chain(&e))
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
            let error = bad.parse::<Shard>().unwrap_err().to_string();
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
            (
                "[compare]\nactivations = [\"gelu\", \"elu\"]",
                "compare.baseline: `relu` is not among compare.activations; use one of their labels: elu, gelu",
            ),
        ] {
            let error = parse(text, &[]).unwrap_err();
            assert!(error.starts_with("c.toml"), "{text}: {error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
