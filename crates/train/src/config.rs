//! The run configuration users edit: `[data]`, `[model]`, `[train]`, with `--set key=value`
//! overrides validated exactly like the file.
use std::path::{Path, PathBuf};

use models::ModelConfig;
use serde::{Deserialize, Serialize};

mod limits;
mod negative;
mod text;

pub use limits::{MAX_CONFIG_BYTES, MAX_CONFIG_NESTING};
/// A whole run: what data, which network, how to train it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Where the data comes from and how much of it to use.
    #[serde(default)]
    pub data: DataConfig,
    /// The network (see the `models` crate).
    #[serde(default)]
    pub model: ModelConfig,
    /// Optimiser, schedule, epochs, batch size, seed.
    #[serde(default)]
    pub train: TrainConfig,
}

/// `[data]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Directory with the four IDX files (gzipped or not); unset: look in the usual places.
    pub dir: Option<PathBuf>,
    /// Training images held out (seeded random choice) as a validation split. 0 = none.
    pub validation: usize,
    /// Use only the first N training images. 0 = all.
    pub train_limit: usize,
    /// Use only the first N test images. 0 = all.
    pub test_limit: usize,
    /// Never download.
    pub offline: bool,
    /// Check the SHA-256 of the files against the canonical data set.
    pub verify: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: None,
            validation: 0,
            train_limit: 0,
            test_limit: 0,
            offline: false,
            verify: true,
        }
    }
}

/// Optimisers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Optimizer {
    /// Adam (β = 0.9, 0.999, ε = 1e-8 as PyTorch).
    #[default]
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
    /// SGD with momentum.
    Sgd,
}

/// Learning-rate schedules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Schedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Cosine decay from `lr` to 0 over all training steps.
    Cosine,
}

/// `[train]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// `adam`, `adamw` or `sgd`.
    pub optimizer: Optimizer,
    /// Learning rate (> 0).
    pub lr: f64,
    /// Weight decay (L2 for adam/sgd, decoupled for adamw).
    pub weight_decay: f64,
    /// Momentum for sgd, in [0, 1).
    pub momentum: f64,
    /// `constant` or `cosine`.
    pub schedule: Schedule,
    /// Passes over the training set (> 0).
    pub epochs: usize,
    /// Images per step (> 0).
    pub batch_size: usize,
    /// Seeds weight init, shuffling and dropout.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: Optimizer::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            schedule: Schedule::Constant,
            epochs: 5,
            batch_size: 128,
            seed: 42,
        }
    }
}

/// A config that cannot be used. The rendered chain (see [`crate::error_chain`]) names the
/// file, the key and the reason: `run.toml: train.lr: must be a positive number, got 0`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Neither a file nor the name of a shipped config.
    #[error(
        "cannot read config {}: no such file, and no shipped config has that name (shipped: \
         {shipped}; `fmnist configs` lists them, `fmnist configs show NAME > my.toml` writes \
         one out to edit)",
        path.display()
    )]
    NotFound {
        /// The `--config` argument.
        path: PathBuf,
        /// The shipped configs' names.
        shipped: String,
    },
    /// Not TOML, or a key or value this config does not have (the source names it).
    #[error("{origin}")]
    Toml {
        /// The file (and the `--set` overrides or section) the text came from.
        origin: String,
        /// The parser's error, with line, column and key.
        source: toml::de::Error,
    },
    /// A `--set` that is not `KEY=VALUE` or does not fit the config's shape.
    #[error("--set {assignment}: {problem}")]
    Override {
        /// The `KEY=VALUE` text.
        assignment: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A value out of its range, or inconsistent with another.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, e.g. `train.lr`.
        key: String,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// A config larger or deeper than any config of this program can be.
    #[error(
        "{origin}: {what}, over the limit {limit}; a config of fmnist is a few kilobytes, \
         nested three deep (`fmnist configs show default` is one)"
    )]
    Limit {
        /// The file the text came from.
        origin: String,
        /// What is too large.
        what: String,
        /// The limit, by name and value.
        limit: String,
    },
    /// A `[model]` setting the model cannot be built with.
    #[error(transparent)]
    Model(#[from] models::ConfigError),
    /// Any of the above, in a named file.
    #[error("{origin}")]
    In {
        /// The file the config came from.
        origin: String,
        /// What is wrong in it.
        source: Box<ConfigError>,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// This error as found in `origin`.
    pub(crate) fn in_file(self, origin: &str) -> Self {
        Self::In {
            origin: origin.into(),
            source: Box::new(self),
        }
    }
}

impl RunConfig {
    /// Reads `path` (a file, or the name of a shipped config: [`crate::configs`]), applies
    /// `--set key=value` overrides, and validates the result.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let (text, origin) = crate::configs::read(path)?;
        Self::parse(&text, &origin, overrides)
    }

    /// Parses TOML text (`origin` names it in errors), applies overrides, validates.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let config: RunConfig = if overrides.is_empty() {
            ConfigError::parse_toml(text, origin)?
        } else {
            let mut table: toml::Table = ConfigError::parse_toml(text, origin)?;
            apply_overrides(&mut table, overrides)?;
            let merged = toml::to_string(&table).expect("a TOML table serialises");
            ConfigError::parse_toml(
                &merged,
                format!("{origin} with --set {}", overrides.join(" --set ")),
            )?
        };
        config.validate().map_err(|e| e.in_file(origin))?;
        Ok(config)
    }

    /// Checks values serde cannot: ranges and consistency. The error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.train;
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(ConfigError::invalid(
                "train.lr",
                format!("must be a positive number, got {}", t.lr),
            ));
        }
        if t.batch_size == 0 {
            return Err(ConfigError::invalid(
                "train.batch_size",
                "must be at least 1",
            ));
        }
        if t.epochs == 0 {
            return Err(ConfigError::invalid("train.epochs", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&t.momentum) {
            return Err(ConfigError::invalid(
                "train.momentum",
                format!("must be in [0, 1), got {}", t.momentum),
            ));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(ConfigError::invalid(
                "train.weight_decay",
                format!("must be >= 0, got {}", t.weight_decay),
            ));
        }
        Ok(self.model.validate()?)
    }

    /// The config as TOML, every default written out.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("run configs serialise to TOML")
    }
}

/// Applies every `--set` in order, except that `model.kind` goes first: a new kind starts the
/// `[model]` section afresh with that kind's defaults, keeping only `activation` (the one key
/// every kind has), so `--set model.kind=resnet --set model.stem=8` on the reference CNN's file
/// is a ResNet instead of an error about the CNN's `channels`.
pub fn apply_overrides(table: &mut toml::Table, overrides: &[String]) -> Result<(), ConfigError> {
    let is_kind = |assignment: &&String| {
        assignment
            .split_once('=')
            .is_some_and(|(key, _)| key.trim() == "model.kind")
    };
    let (kinds, others): (Vec<&String>, Vec<&String>) = overrides.iter().partition(is_kind);
    for assignment in kinds.into_iter().chain(others) {
        let kind_before = model_kind(table);
        apply_override(table, assignment)?;
        let kind_after = model_kind(table);
        if kind_after != kind_before
            && let Some(toml::Value::Table(model)) = table.get_mut("model")
        {
            model.retain(|key, _| key == "kind" || key == "activation");
        }
    }
    Ok(())
}

/// `[model].kind`, `cnn` when the section or the key is absent (as [`models::ModelConfig`]
/// reads it).
fn model_kind(table: &toml::Table) -> Option<String> {
    match table.get("model") {
        Some(toml::Value::Table(model)) => match model.get("kind") {
            Some(toml::Value::String(kind)) => Some(kind.clone()),
            Some(_) => None,
            None => Some("cnn".into()),
        },
        _ => Some("cnn".into()),
    }
}

/// Applies `a.b.c=value` to a TOML table; `value` is read as TOML (`3`, `1e-3`, `true`,
/// `[32, 64]`, `{ kind = "elu" }`) and otherwise taken as a string (`gelu`).
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<(), ConfigError> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(ConfigError::Override {
            assignment: assignment.into(),
            problem: "expected KEY=VALUE, e.g. --set train.epochs=3".into(),
        });
    };
    let key = key.trim();
    let path: Vec<&str> = key.split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::Override {
            assignment: assignment.into(),
            problem: format!("`{key}` is not a key path"),
        });
    }
    let raw = raw.trim();
    let value = toml::from_str::<toml::Table>(&format!("value = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("value"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let (last, parents) = path.split_last().unwrap();
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| ConfigError::Override {
            assignment: assignment.into(),
            problem: format!("`{part}` is a value, not a section"),
        })?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str, overrides: &[&str]) -> String {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        crate::error_chain(&RunConfig::parse(text, "test.toml", &overrides).unwrap_err())
    }

    #[test]
    fn empty_file_gives_the_reference_run() {
        let config = RunConfig::parse("", "empty", &[]).unwrap();
        assert_eq!(config.train.epochs, 5);
        assert_eq!(config.train.batch_size, 128);
        assert_eq!(config, RunConfig::default());
    }

    #[test]
    fn a_new_model_kind_starts_the_model_section_afresh() {
        let base = "[model]\nkind = \"cnn\"\nchannels = [32, 64]\nbatch_norm = true\n\
                    activation = \"gelu\"\n[train]\nepochs = 2";
        // The kind is applied first, whatever the order on the command line.
        let sets = ["model.stem=8".to_string(), "model.kind=resnet".to_string()];
        let config = RunConfig::parse(base, "t", &sets).unwrap();
        let models::ModelConfig::Resnet(resnet) = &config.model else {
            panic!("expected a ResNet, got {:?}", config.model);
        };
        assert_eq!(resnet.stem, 8);
        assert_eq!(resnet.stages, vec![16, 32, 64], "the ResNet's defaults");
        assert_eq!(
            config.model.activation().name(),
            "gelu",
            "activation is kept"
        );
        assert_eq!(config.train.epochs, 2, "other sections untouched");
        // The same kind keeps the section.
        let config = RunConfig::parse(base, "t", &["model.kind=cnn".to_string()]).unwrap();
        let models::ModelConfig::Cnn(cnn) = &config.model else {
            panic!()
        };
        assert!(cnn.batch_norm);
        // A key of another kind is still an error that names the choices.
        let error = error_of(base, &["model.stages=[8]"]);
        assert!(
            error.contains("stages") && error.contains("channels"),
            "{error}"
        );
    }

    #[test]
    fn overrides_apply_with_the_same_validation() {
        let sets = [
            "model.activation=gelu".to_string(),
            "train.epochs=3".to_string(),
            "model.channels=[8, 16]".to_string(),
            "model.conv_activations=[\"relu\", { kind = \"elu\", alpha = 0.5 }]".to_string(),
        ];
        let config = RunConfig::parse("[model]\nkind = \"cnn\"", "t", &sets).unwrap();
        assert_eq!(config.train.epochs, 3);
        assert_eq!(config.model.activation().name(), "gelu");
        let error = error_of("[model]\nkind = \"cnn\"", &["model.activation=relu7"]);
        assert!(
            error.contains("relu7") && error.contains("leaky_relu"),
            "{error}"
        );
        // No [model] section: the reference CNN with the overridden activation.
        let config = RunConfig::parse("", "t", &["model.activation=elu".to_string()]).unwrap();
        assert_eq!(config.model.activation().name(), "elu");
        assert!(matches!(config.model, models::ModelConfig::Cnn(_)));
        let error = error_of("", &["train.lr=-1"]);
        assert!(error.contains("train.lr"), "{error}");
        let error = error_of("", &["train.epochs"]);
        assert!(error.contains("KEY=VALUE"), "{error}");
    }

    #[test]
    fn every_config_error_names_file_key_and_reason() {
        for (text, expected) in [
            ("[train]\nlr = 0.0", "train.lr: must be a positive number"),
            ("[train]\nlr = -0.1", "train.lr"),
            (
                "[train]\nbatch_size = 0",
                "train.batch_size: must be at least 1",
            ),
            ("[train]\nepochs = 0", "train.epochs"),
            (
                "[model]\nkind = \"cnn\"\ndropout = 1.0",
                "model.dropout: must be in [0, 1)",
            ),
            ("[model]\nkind = \"cnn\"\ndropout = -0.1", "model.dropout"),
            (
                "[model]\nkind = \"cnn\"\nchannels = []",
                "model.channels: is empty",
            ),
            ("[train]\nlrr = 0.1", "unknown field `lrr`"),
            ("[trian]\nlr = 0.1", "unknown field `trian`"),
            ("[train]\noptimizer = \"adagrad\"", "adagrad"),
            ("[train]\nbatch_size = \"big\"", "batch_size"),
            (
                "[train]\nbatch_size = -8",
                "train.batch_size: is -8: a count or size",
            ),
            (
                "[model]\nkind = \"resnet\"\nstem = -1",
                "model.stem: is -1: a count or size cannot be negative",
            ),
            (
                "[model]\nkind = \"resnet\"\nstages = [16, -32]",
                "model.stages[1]: is -32",
            ),
        ] {
            let error = error_of(text, &[]);
            assert!(error.starts_with("test.toml"), "{text}: {error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn resolved_config_round_trips() {
        let config = RunConfig::default();
        let text = config.to_toml();
        assert_eq!(RunConfig::parse(&text, "resolved", &[]).unwrap(), config);
    }
}
