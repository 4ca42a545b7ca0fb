use std::fmt;

use activations::burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::{CnnConfig, MlpConfig, Model, ResnetConfig};

/// The `[model]` section: `kind = "cnn"` (default network), `kind = "mlp"` or
/// `kind = "resnet"`.
///
/// `kind` may be left out and then means `cnn`, so `[model]\nactivation = "gelu"` (or
/// `--set model.activation=gelu` on a file without a `[model]` section) is the reference CNN
/// with another activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelConfig {
    /// Convolutional network, see [`CnnConfig`].
    Cnn(CnnConfig),
    /// Fully connected network, see [`MlpConfig`].
    Mlp(MlpConfig),
    /// Pre-activation residual network, see [`ResnetConfig`].
    Resnet(ResnetConfig),
}

impl Serialize for ModelConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Self::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Buffered so that a missing `kind` can default to `cnn` before the tagged enum
        // (which needs it) sees the table.
        let mut table = serde_json::Map::deserialize(deserializer)?;
        table
            .entry("kind")
            .or_insert_with(|| serde_json::Value::String("cnn".into()));
        Self::deserialize(serde_json::Value::Object(table)).map_err(D::Error::custom)
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self::Cnn(CnnConfig::default())
    }
}

impl ModelConfig {
    /// Checks every value; the error names the key (relative to `[model]`) and the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Cnn(c) => c.validate(),
            Self::Mlp(c) => c.validate(),
            Self::Resnet(c) => c.validate(),
        }
    }

    /// Builds the network on `device`.
    ///
    /// # Panics
    /// On an invalid config; call [`validate`](Self::validate) first for an error instead.
    pub fn init(&self, device: &Device) -> Model {
        match self {
            Self::Cnn(c) => Model::Cnn(c.init(device)),
            Self::Mlp(c) => Model::Mlp(c.init(device)),
            Self::Resnet(c) => Model::Resnet(c.init(device)),
        }
    }

    /// The activation used in most slots (the `activation` key), for reports.
    pub fn activation(&self) -> &activations::ActivationConfig {
        match self {
            Self::Cnn(c) => &c.activation,
            Self::Mlp(c) => &c.activation,
            Self::Resnet(c) => &c.activation,
        }
    }

    /// The activations of every slot in order (a CNN's conv slots, then its dense ones); `None`
    /// when an override list does not match its layers (`validate` names that).
    pub fn slot_configs(&self) -> Option<Vec<activations::ActivationConfig>> {
        let slots = match self {
            Self::Cnn(c) => c
                .conv_slots()
                .and_then(|conv| Ok([conv, c.hidden_slots()?].concat())),
            Self::Mlp(c) => c.slots(),
            Self::Resnet(c) => c.stage_slots(),
        };
        slots.ok()
    }

    /// What a run is called in its summary and messages: the `activation` key's name, or
    /// [`mixed_label`](Self::mixed_label) when no slot uses that kind.
    pub fn label(&self) -> String {
        self.mixed_label()
            .unwrap_or_else(|| self.activation().name().into())
    }

    /// The slots' kinds in order without repeats, joined by `+` (`pau+frelu+acon_c`), when the
    /// `activation` key's kind does not describe the network: no slot uses it, or, in a CNN, no
    /// convolutional slot does (its dense slots are secondary: both conv slots overridden with
    /// `frelu` and ReLU left in the dense one is `frelu+relu`, not `relu`). `None` when it does
    /// (a FReLU CNN made with `activation = "frelu"` keeps ReLU in its dense slots and is still
    /// `frelu`).
    pub fn mixed_label(&self) -> Option<String> {
        let main = self.activation().name();
        let slots = self.slot_configs()?;
        let describing = match self {
            Self::Cnn(c) => c.conv_slots().ok()?,
            _ => slots.clone(),
        };
        if slots.is_empty() || describing.iter().any(|slot| slot.name() == main) {
            return None;
        }
        let mut kinds: Vec<&str> = Vec::new();
        for slot in &slots {
            if !kinds.contains(&slot.name()) {
                kinds.push(slot.name());
            }
        }
        Some(kinds.join("+"))
    }

    /// Sets the activation of every slot (clearing per-slot overrides). A kind for
    /// convolutional slots alone (FReLU) becomes the CNN's activation while its dense slots keep
    /// the one they had (ReLU if that was conv-only too); the MLP then fails validation.
    pub fn set_activation(&mut self, activation: activations::ActivationConfig) {
        let dense_too = |a: &activations::ActivationConfig| a.check_slot(usize::MAX, false).is_ok();
        match self {
            Self::Cnn(c) if !dense_too(&activation) => {
                let dense = if dense_too(&c.activation) {
                    c.activation.clone()
                } else {
                    activations::ActivationConfig::Relu
                };
                c.activation = activation;
                c.conv_activations = None;
                c.hidden_activations = Some(vec![dense; c.hidden.len()]);
            }
            Self::Cnn(c) => {
                c.activation = activation;
                c.conv_activations = None;
                c.hidden_activations = None;
            }
            Self::Mlp(c) => {
                c.activation = activation;
                c.hidden_activations = None;
            }
            Self::Resnet(c) => {
                c.activation = activation;
                c.stage_activations = None;
            }
        }
    }
}

impl fmt::Display for ModelConfig {
    /// A one-line description for reports: `CNN, conv [32, 64], dense [128], BatchNorm`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cnn(c) => {
                write!(f, "CNN, conv {:?}, dense {:?}", c.channels, c.hidden)?;
                if c.batch_norm {
                    f.write_str(", BatchNorm")?;
                }
                if c.dropout > 0.0 {
                    write!(f, ", dropout {}", c.dropout)?;
                }
                Ok(())
            }
            Self::Mlp(m) => write!(f, "MLP, dense {:?}", m.hidden),
            Self::Resnet(r) => write!(
                f,
                "pre-activation ResNet, stem {}, stages {:?}, {} blocks per stage",
                r.stem, r.stages, r.blocks_per_stage
            ),
        }
    }
}

/// An impossible model setting: which key, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, relative to `[model]`, e.g. `"conv_activations"`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "model.{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}
