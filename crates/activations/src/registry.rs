//! The one list of activations.
//!
//! [`ActivationConfig`] is what users write (TOML, JSON, the CLI): either a bare name,
//! `activation = "relu"`, or a table tagged by `kind`,
//! `activation = { kind = "leaky_relu", negative_slope = 0.1 }`. Unknown kinds and unknown fields
//! are errors that list the valid choices. [`ActivationConfig::init`] builds the [`Activation`]
//! module; [`ActivationConfig::catalog`] lists every kind with its defaults, and every other list
//! of activations in the project (CLI, configs, plots, reports) derives from it.
use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::*;

/// The configuration of one activation: its kind and parameters, with PyTorch's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    remote = "Self",
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum ActivationConfig {
    /// `x`.
    Identity,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(0, x)` (the default).
    #[default]
    Relu,
    /// `min(max(0, x), 6)`.
    Relu6,
    /// `x > 0 ? x : negative_slope · x`.
    LeakyRelu(LeakyReluConfig),
    /// Leaky ReLU with a learned slope (shared or per channel).
    Prelu(PReluConfig),
    /// Leaky ReLU with a random slope in training.
    Rrelu(RReluConfig),
    /// `x > 0 ? x : α (exp(x) - 1)`.
    Elu(EluConfig),
    /// Scaled ELU with fixed self-normalising constants.
    Selu,
    /// `max(0, x) + min(0, α (exp(x/α) - 1))`.
    Celu(CeluConfig),
    /// `x Φ(x)` (or its tanh approximation).
    Gelu(GeluConfig),
    /// `x σ(βx)`; also accepted as `"swish"`.
    #[serde(alias = "swish")]
    Silu(SiluConfig),
    /// `x tanh(softplus(x))`.
    Mish,
    /// `log(1 + exp(βx)) / β`.
    Softplus(SoftplusConfig),
    /// `x / (1 + |x|)`.
    Softsign,
    /// `clamp(x, min_val, max_val)`.
    Hardtanh(HardTanhConfig),
    /// `relu6(x + 3) / 6`.
    Hardsigmoid,
    /// `x · relu6(x + 3) / 6`.
    Hardswish,
    /// `log σ(x)`.
    Logsigmoid,
    /// `x - tanh(x)`.
    Tanhshrink,
    /// `exp(xᵢ) / Σ exp(xⱼ)` over `dim`.
    Softmax(SoftmaxConfig),
    /// `xᵢ - log Σ exp(xⱼ)` over `dim`.
    LogSoftmax(SoftmaxConfig),
    /// ReLU with per-sample, per-channel slopes from a squeeze-and-excitation network.
    Aprelu(AprReluConfig),
}

impl ActivationConfig {
    /// Every kind once, with its default parameters, in the order users see them.
    pub fn catalog() -> Vec<ActivationConfig> {
        use ActivationConfig::*;
        vec![
            Identity,
            Sigmoid,
            Tanh,
            Relu,
            Relu6,
            LeakyRelu(Default::default()),
            Prelu(Default::default()),
            Rrelu(Default::default()),
            Elu(Default::default()),
            Selu,
            Celu(Default::default()),
            Gelu(Default::default()),
            Silu(Default::default()),
            Mish,
            Softplus(Default::default()),
            Softsign,
            Hardtanh(Default::default()),
            Hardsigmoid,
            Hardswish,
            Logsigmoid,
            Tanhshrink,
            Softmax(Default::default()),
            LogSoftmax(Default::default()),
            Aprelu(Default::default()),
        ]
    }

    /// The names of every kind, as written in configs.
    pub fn names() -> Vec<&'static str> {
        Self::catalog().iter().map(Self::name).collect()
    }

    /// The `kind` written in configs, e.g. `"leaky_relu"`.
    pub fn name(&self) -> &'static str {
        use ActivationConfig::*;
        match self {
            Identity => "identity",
            Sigmoid => "sigmoid",
            Tanh => "tanh",
            Relu => "relu",
            Relu6 => "relu6",
            LeakyRelu(_) => "leaky_relu",
            Prelu(_) => "prelu",
            Rrelu(_) => "rrelu",
            Elu(_) => "elu",
            Selu => "selu",
            Celu(_) => "celu",
            Gelu(_) => "gelu",
            Silu(_) => "silu",
            Mish => "mish",
            Softplus(_) => "softplus",
            Softsign => "softsign",
            Hardtanh(_) => "hardtanh",
            Hardsigmoid => "hardsigmoid",
            Hardswish => "hardswish",
            Logsigmoid => "logsigmoid",
            Tanhshrink => "tanhshrink",
            Softmax(_) => "softmax",
            LogSoftmax(_) => "log_softmax",
            Aprelu(_) => "aprelu",
        }
    }

    /// A one-line description for listings.
    pub fn description(&self) -> &'static str {
        use ActivationConfig::*;
        match self {
            Identity => "no non-linearity: the linear baseline",
            Sigmoid => "logistic 1/(1+e^-x); saturates, vanishing gradients in deep nets",
            Tanh => "hyperbolic tangent; zero-centred, saturates at ±1",
            Relu => "max(0, x); the default, units can die",
            Relu6 => "ReLU clamped at 6 (MobileNet)",
            LeakyRelu(_) => "ReLU with a small fixed slope for x < 0",
            Prelu(_) => "ReLU with a learned negative slope (shared or per channel)",
            Rrelu(_) => "leaky ReLU with a random slope in training, mean slope in eval",
            Elu(_) => "smooth negative saturation at -alpha",
            Selu => "self-normalising scaled ELU (pairs with LeCun init + AlphaDropout)",
            Celu(_) => "continuously differentiable ELU",
            Gelu(_) => "x·Φ(x), exact (erf) or tanh approximation (Transformers)",
            Silu(_) => "x·σ(βx), a.k.a. swish; β fixed or learned",
            Mish => "x·tanh(softplus(x))",
            Softplus(_) => "smooth ReLU, log(1+e^(βx))/β",
            Softsign => "x/(1+|x|); tanh-like with polynomial tails",
            Hardtanh(_) => "clamp to [min_val, max_val]",
            Hardsigmoid => "piecewise-linear sigmoid, relu6(x+3)/6",
            Hardswish => "x·hardsigmoid(x) (MobileNetV3)",
            Logsigmoid => "log σ(x); numerically stable",
            Tanhshrink => "x - tanh(x)",
            Softmax(_) => "normalised exponentials over a dim (output layers)",
            LogSoftmax(_) => "log of softmax over a dim (output layers)",
            Aprelu(_) => {
                "adaptively parametric ReLU: SE network sets per-sample, per-channel slopes"
            }
        }
    }

    /// `true` when the activation maps each element independently (it then has a
    /// [`derivative`](Activation::derivative) and can be plotted as a curve).
    pub fn is_elementwise(&self) -> bool {
        !matches!(
            self,
            Self::Softmax(_) | Self::LogSoftmax(_) | Self::Aprelu(_)
        )
    }

    /// `true` when this configuration runs a fused kernel on Flex ([`crate::fused`]; on the Cube
    /// backends too, except PReLU and softsign); the others, and every activation on ndarray,
    /// use Burn's built-in ops. RReLU's kernel is its evaluation form.
    pub fn has_fused_kernel(&self) -> bool {
        match self {
            Self::Sigmoid
            | Self::Tanh
            | Self::Selu
            | Self::Mish
            | Self::Softsign
            | Self::Hardsigmoid
            | Self::Hardswish
            | Self::Logsigmoid
            | Self::LeakyRelu(_)
            | Self::Prelu(_)
            | Self::Rrelu(_)
            | Self::Gelu(_)
            | Self::Softplus(_) => true,
            // The backward works from the output, which needs α > 0 to tell the sides apart.
            Self::Elu(config) => config.alpha > 0.0,
            Self::Celu(config) => config.alpha > 0.0,
            Self::Silu(config) => !config.learnable,
            _ => false,
        }
    }

    /// `true` when the activation has trainable parameters.
    pub fn is_learnable(&self) -> bool {
        match self {
            Self::Prelu(_) | Self::Aprelu(_) => true,
            Self::Silu(config) => config.learnable,
            _ => false,
        }
    }

    /// Checks the parameters, with a message that names the parameter and the reason.
    pub fn validate(&self) -> Result<(), String> {
        use ActivationConfig::*;
        match self {
            LeakyRelu(c) => c.validate(),
            Prelu(c) => c.validate(),
            Rrelu(c) => c.validate(),
            Elu(c) => c.validate(),
            Celu(c) => c.validate(),
            Silu(c) => c.validate(),
            Softplus(c) => c.validate(),
            Hardtanh(c) => c.validate(),
            Aprelu(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// Builds the module for a slot with `channels` channels (dim 1 of its input): PReLU with
    /// `per_channel` and APReLU use it, the others ignore it.
    ///
    /// # Panics
    /// If the parameters are invalid; call [`validate`](Self::validate) first to get an error.
    pub fn init(&self, channels: usize, device: &Device) -> Activation {
        if let Err(message) = self.validate() {
            panic!("invalid activation config: {message}");
        }
        use ActivationConfig as C;
        match self {
            C::Identity => Activation::Identity(crate::Identity),
            C::Sigmoid => Activation::Sigmoid(crate::Sigmoid),
            C::Tanh => Activation::Tanh(crate::Tanh),
            C::Relu => Activation::Relu(crate::Relu),
            C::Relu6 => Activation::Relu6(crate::Relu6),
            C::LeakyRelu(c) => Activation::LeakyRelu(c.init()),
            C::Prelu(c) => Activation::Prelu(c.init(channels, device)),
            C::Rrelu(c) => Activation::Rrelu(c.init()),
            C::Elu(c) => Activation::Elu(c.init()),
            C::Selu => Activation::Selu(crate::Selu),
            C::Celu(c) => Activation::Celu(c.init()),
            C::Gelu(c) => Activation::Gelu(c.init()),
            C::Silu(c) => Activation::Silu(c.init(device)),
            C::Mish => Activation::Mish(crate::Mish),
            C::Softplus(c) => Activation::Softplus(c.init()),
            C::Softsign => Activation::Softsign(crate::Softsign),
            C::Hardtanh(c) => Activation::Hardtanh(c.init()),
            C::Hardsigmoid => Activation::Hardsigmoid(crate::HardSigmoid),
            C::Hardswish => Activation::Hardswish(crate::HardSwish),
            C::Logsigmoid => Activation::Logsigmoid(crate::LogSigmoid),
            C::Tanhshrink => Activation::Tanhshrink(crate::Tanhshrink),
            C::Softmax(c) => Activation::Softmax(c.init()),
            C::LogSoftmax(c) => Activation::LogSoftmax(c.init_log()),
            C::Aprelu(c) => Activation::Aprelu(c.init(channels, device)),
        }
    }
}

impl fmt::Display for ActivationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An activation name that is not in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseActivationError {
    /// What was asked for.
    pub name: String,
}

impl fmt::Display for ParseActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown activation `{}`; valid names: {}",
            self.name,
            ActivationConfig::names().join(", ")
        )
    }
}

impl std::error::Error for ParseActivationError {}

impl FromStr for ActivationConfig {
    type Err = ParseActivationError;

    /// A name from [`ActivationConfig::names`] (or `"swish"`), with default parameters.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let wanted = match name.trim() {
            "swish" => "silu",
            other => other,
        };
        Self::catalog()
            .into_iter()
            .find(|config| config.name() == wanted)
            .ok_or_else(|| ParseActivationError { name: name.into() })
    }
}

impl Serialize for ActivationConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ActivationConfig::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for ActivationConfig {
    /// A bare name (`"relu"`) or a table tagged by `kind`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameOrTable;

        impl<'de> Visitor<'de> for NameOrTable {
            type Value = ActivationConfig;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an activation name such as \"relu\", or a table such as \
                     { kind = \"leaky_relu\", negative_slope = 0.1 }",
                )
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                name.parse().map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                // Buffered so that parameters given to a kind without any can be refused:
                // serde's internally tagged unit variants silently ignore extra fields.
                let table = serde_json::Map::deserialize(MapAccessDeserializer::new(map))?;
                let config =
                    ActivationConfig::deserialize(serde_json::Value::Object(table.clone()))
                        .map_err(de::Error::custom)?;
                let parameters = serde_json::to_value(&config).map_err(de::Error::custom)?;
                if let Some(unknown) = table
                    .keys()
                    .find(|key| parameters.get(key.as_str()).is_none())
                {
                    return Err(de::Error::custom(format!(
                        "unknown field `{unknown}`: `{}` takes {}",
                        config.name(),
                        match parameters.as_object().map(|o| o.len()).unwrap_or(0) {
                            0 | 1 => "no parameters".to_string(),
                            _ => format!(
                                "only {}",
                                parameters
                                    .as_object()
                                    .unwrap()
                                    .keys()
                                    .filter(|k| k.as_str() != "kind")
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        }
                    )));
                }
                config.validate().map_err(de::Error::custom)?;
                Ok(config)
            }
        }

        deserializer.deserialize_any(NameOrTable)
    }
}

/// An activation module built by [`ActivationConfig::init`]; `forward` works on any rank.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Activation {
    /// See [`crate::Identity`].
    Identity(crate::Identity),
    /// See [`crate::Sigmoid`].
    Sigmoid(crate::Sigmoid),
    /// See [`crate::Tanh`].
    Tanh(crate::Tanh),
    /// See [`crate::Relu`].
    Relu(crate::Relu),
    /// See [`crate::Relu6`].
    Relu6(crate::Relu6),
    /// See [`crate::LeakyRelu`].
    LeakyRelu(crate::LeakyRelu),
    /// See [`crate::PRelu`].
    Prelu(crate::PRelu),
    /// See [`crate::RRelu`].
    Rrelu(crate::RRelu),
    /// See [`crate::Elu`].
    Elu(crate::Elu),
    /// See [`crate::Selu`].
    Selu(crate::Selu),
    /// See [`crate::Celu`].
    Celu(crate::Celu),
    /// See [`crate::Gelu`].
    Gelu(crate::Gelu),
    /// See [`crate::Silu`].
    Silu(crate::Silu),
    /// See [`crate::Mish`].
    Mish(crate::Mish),
    /// See [`crate::Softplus`].
    Softplus(crate::Softplus),
    /// See [`crate::Softsign`].
    Softsign(crate::Softsign),
    /// See [`crate::HardTanh`].
    Hardtanh(crate::HardTanh),
    /// See [`crate::HardSigmoid`].
    Hardsigmoid(crate::HardSigmoid),
    /// See [`crate::HardSwish`].
    Hardswish(crate::HardSwish),
    /// See [`crate::LogSigmoid`].
    Logsigmoid(crate::LogSigmoid),
    /// See [`crate::Tanhshrink`].
    Tanhshrink(crate::Tanhshrink),
    /// See [`crate::Softmax`].
    Softmax(crate::Softmax),
    /// See [`crate::LogSoftmax`].
    LogSoftmax(crate::LogSoftmax),
    /// See [`crate::AprRelu`].
    Aprelu(crate::AprRelu),
}

impl Activation {
    /// Applies the activation.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        use Activation as A;
        match self {
            A::Identity(m) => m.forward(input),
            A::Sigmoid(m) => m.forward(input),
            A::Tanh(m) => m.forward(input),
            A::Relu(m) => m.forward(input),
            A::Relu6(m) => m.forward(input),
            A::LeakyRelu(m) => m.forward(input),
            A::Prelu(m) => m.forward(input),
            A::Rrelu(m) => m.forward(input),
            A::Elu(m) => m.forward(input),
            A::Selu(m) => m.forward(input),
            A::Celu(m) => m.forward(input),
            A::Gelu(m) => m.forward(input),
            A::Silu(m) => m.forward(input),
            A::Mish(m) => m.forward(input),
            A::Softplus(m) => m.forward(input),
            A::Softsign(m) => m.forward(input),
            A::Hardtanh(m) => m.forward(input),
            A::Hardsigmoid(m) => m.forward(input),
            A::Hardswish(m) => m.forward(input),
            A::Logsigmoid(m) => m.forward(input),
            A::Tanhshrink(m) => m.forward(input),
            A::Softmax(m) => m.forward(input),
            A::LogSoftmax(m) => m.forward(input),
            A::Aprelu(m) => m.forward(input),
        }
    }

    /// Whether the output range is bounded on both sides (sigmoid, tanh, relu6, hardtanh,
    /// hardsigmoid, softsign, softmax): the activations that saturate, where `f'(x) → 0` for
    /// large `|x|` and learning stalls.
    pub fn is_bounded(&self) -> bool {
        use Activation as A;
        matches!(
            self,
            A::Sigmoid(_)
                | A::Tanh(_)
                | A::Relu6(_)
                | A::Hardtanh(_)
                | A::Hardsigmoid(_)
                | A::Softsign(_)
                | A::Softmax(_)
        )
    }

    /// The analytic `f'(x)` of an element-wise activation, with PyTorch's choice at kinks;
    /// `None` for softmax, log-softmax and APReLU, whose output depends on other elements.
    pub fn derivative<const D: usize>(&self, input: Tensor<D>) -> Option<Tensor<D>> {
        use Activation as A;
        Some(match self {
            A::Identity(m) => m.derivative(input),
            A::Sigmoid(m) => m.derivative(input),
            A::Tanh(m) => m.derivative(input),
            A::Relu(m) => m.derivative(input),
            A::Relu6(m) => m.derivative(input),
            A::LeakyRelu(m) => m.derivative(input),
            A::Prelu(m) => m.derivative(input),
            A::Rrelu(m) => m.derivative(input),
            A::Elu(m) => m.derivative(input),
            A::Selu(m) => m.derivative(input),
            A::Celu(m) => m.derivative(input),
            A::Gelu(m) => m.derivative(input),
            A::Silu(m) => m.derivative(input),
            A::Mish(m) => m.derivative(input),
            A::Softplus(m) => m.derivative(input),
            A::Softsign(m) => m.derivative(input),
            A::Hardtanh(m) => m.derivative(input),
            A::Hardsigmoid(m) => m.derivative(input),
            A::Hardswish(m) => m.derivative(input),
            A::Logsigmoid(m) => m.derivative(input),
            A::Tanhshrink(m) => m.derivative(input),
            A::Softmax(_) | A::LogSoftmax(_) | A::Aprelu(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Slot {
        activation: ActivationConfig,
    }

    fn parse(toml_text: &str) -> Result<ActivationConfig, String> {
        toml::from_str::<Slot>(toml_text)
            .map(|slot| slot.activation)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn bounded_means_the_output_stays_small_at_large_inputs() {
        use crate::test_util::{device, to_vec};
        for config in ActivationConfig::catalog() {
            let activation = config.init(2, &device());
            let x = Tensor::<2>::from_data([[1e4f32, -1e4], [-1e4, 1e4]], &device());
            let largest = to_vec(activation.forward(x))
                .into_iter()
                .fold(0f32, |m, y| m.max(y.abs()));
            assert_eq!(
                activation.is_bounded(),
                largest <= 6.0,
                "{}: largest |f(±1e4)| = {largest}",
                config.name()
            );
        }
    }

    #[test]
    fn bare_name_and_tagged_table_both_parse() {
        assert_eq!(
            parse("activation = \"relu\"").unwrap(),
            ActivationConfig::Relu
        );
        assert_eq!(
            parse("activation = { kind = \"leaky_relu\", negative_slope = 0.1 }").unwrap(),
            ActivationConfig::LeakyRelu(LeakyReluConfig {
                negative_slope: 0.1
            })
        );
        assert_eq!(
            parse("activation = { kind = \"gelu\" }").unwrap(),
            ActivationConfig::Gelu(GeluConfig::default())
        );
        assert_eq!(
            parse("activation = \"swish\"").unwrap(),
            ActivationConfig::Silu(SiluConfig::default())
        );
    }

    #[test]
    fn a_top_level_document_parses_too() {
        let config: ActivationConfig = toml::from_str("kind = \"aprelu\"\nreduction = 4").unwrap();
        assert_eq!(
            config,
            ActivationConfig::Aprelu(AprReluConfig {
                reduction: 4,
                ..Default::default()
            })
        );
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let error = parse("activation = \"relu7\"").unwrap_err();
        assert!(error.contains("unknown activation `relu7`"), "{error}");
        assert!(
            error.contains("leaky_relu") && error.contains("aprelu"),
            "{error}"
        );
        let error = parse("activation = { kind = \"relu7\" }").unwrap_err();
        assert!(
            error.contains("relu7") && error.contains("leaky_relu"),
            "{error}"
        );
        let error = "relu7".parse::<ActivationConfig>().unwrap_err().to_string();
        assert!(error.contains("valid names: identity, sigmoid"), "{error}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let error = parse("activation = { kind = \"leaky_relu\", slope = 0.1 }").unwrap_err();
        assert!(
            error.contains("slope") && error.contains("negative_slope"),
            "{error}"
        );
        let error = parse("activation = { kind = \"relu\", negative_slope = 0.1 }").unwrap_err();
        assert!(error.contains("negative_slope"), "{error}");
    }

    #[test]
    fn invalid_values_are_rejected_with_the_reason() {
        let error = parse("activation = { kind = \"softplus\", beta = -1.0 }").unwrap_err();
        assert!(error.contains("beta > 0"), "{error}");
    }

    #[test]
    fn catalog_names_round_trip_through_serde_and_from_str() {
        let names = ActivationConfig::names();
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "duplicate names in the catalog");
        assert_eq!(names.len(), 24);
        for config in ActivationConfig::catalog() {
            let json = serde_json::to_value(&config).unwrap();
            assert_eq!(json["kind"], config.name(), "serde kind of {config:?}");
            let back: ActivationConfig = serde_json::from_value(json).unwrap();
            assert_eq!(back, config);
            assert_eq!(config.name().parse::<ActivationConfig>().unwrap(), config);
            assert!(!config.description().is_empty());
        }
    }

    #[test]
    fn every_kind_builds_and_runs_on_any_rank() {
        let device = Device::flex();
        for config in ActivationConfig::catalog() {
            let activation = config.init(3, &device);
            let x4 = Tensor::<4>::ones([2, 3, 4, 4], &device);
            assert_eq!(
                activation.forward(x4.clone()).dims(),
                [2, 3, 4, 4],
                "{config}"
            );
            let x2 = Tensor::<2>::ones([2, 3], &device);
            assert_eq!(activation.forward(x2).dims(), [2, 3], "{config}");
            assert_eq!(
                activation.derivative(x4).is_some(),
                config.is_elementwise(),
                "{config}"
            );
        }
    }

    #[test]
    fn per_channel_prelu_and_aprelu_take_the_slot_channels() {
        let device = Device::flex();
        let prelu: ActivationConfig =
            toml::from_str("kind = \"prelu\"\nper_channel = true").unwrap();
        match prelu.init(32, &device) {
            Activation::Prelu(m) => assert_eq!(m.weight.dims(), [32]),
            other => panic!("expected prelu, got {other:?}"),
        }
        match ActivationConfig::Aprelu(Default::default()).init(16, &device) {
            Activation::Aprelu(m) => assert_eq!(m.channels(), 16),
            other => panic!("expected aprelu, got {other:?}"),
        }
    }
}
