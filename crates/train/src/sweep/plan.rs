//! The runs of a sweep: one per activation and seed, each with a label, a directory name and
//! its full run config; `--shard I/N` picks this machine's part.
use activations::ActivationConfig;

use crate::config::RunConfig;

/// Every run of a sweep, activations outer, seeds inner.
pub fn plan(base: &RunConfig, activations: &[ActivationConfig], seeds: &[u64]) -> Vec<PlannedRun> {
    let mut runs = Vec::new();
    for activation in activations {
        for &seed in seeds {
            let mut config = base.clone();
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

pub(crate) fn file_safe(label: &str) -> String {
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
    type Err = ParseShardError;

    fn from_str(text: &str) -> Result<Self, ParseShardError> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => Err(ParseShardError { text: text.into() }),
        }
    }
}

/// A `--shard` that is not `I/N` with `0 <= I < N`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "--shard {text}: expected I/N with 0 <= I < N, e.g. --shard 0/4 (with Slurm: --shard \
     $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
)]
pub struct ParseShardError {
    /// The text given.
    pub text: String,
}

impl Shard {
    /// Whether this shard runs the run at `index`.
    pub fn takes(&self, index: usize) -> bool {
        index % self.count == self.index
    }
}
