//! Shared pieces of the CNN and MLP: the per-slot activation list and SELU's pairing.
use activations::ActivationConfig;
use activations::burn::module::{Initializer, Param};
use activations::burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use activations::burn::tensor::{Device, Tensor};

use crate::{AlphaDropout, ConfigError};

/// The activation of each of `count` slots: the override list when given (its length must be
/// `count`), else `default` everywhere.
pub(crate) fn slot_activations(
    default: &ActivationConfig,
    overrides: &Option<Vec<ActivationConfig>>,
    count: usize,
    key: &str,
    sized_by: &str,
) -> Result<Vec<ActivationConfig>, ConfigError> {
    match overrides {
        None => Ok(vec![default.clone(); count]),
        Some(list) if list.len() == count => Ok(list.clone()),
        Some(list) => Err(ConfigError::new(
            key,
            format!(
                "has {} entries but `{sized_by}` has {count}: give one activation per layer",
                list.len()
            ),
        )),
    }
}

pub(crate) fn is_selu(activation: &ActivationConfig) -> bool {
    matches!(activation, ActivationConfig::Selu)
}

/// LeCun normal, `N(0, 1/fan_in)`: what SELU's fixed point assumes.
pub(crate) fn lecun_normal() -> Initializer {
    Initializer::KaimingNormal {
        gain: 1.0,
        fan_out_only: false,
    }
}

/// A dense layer with PyTorch's default initialisation, or LeCun normal (bias 0) before SELU.
pub(crate) fn dense(d_input: usize, d_output: usize, selu: bool, device: &Device) -> Linear {
    if !selu {
        return LinearConfig::new(d_input, d_output).init(device);
    }
    let mut linear = LinearConfig::new(d_input, d_output)
        .with_initializer(lecun_normal())
        .init(device);
    linear.bias = Some(Param::from_tensor(Tensor::zeros([d_output], device)));
    linear
}

/// Standard dropout, or AlphaDropout after a SELU slot; `None` for probability 0.
pub(crate) fn dropout_for(prob: f64, selu: bool) -> (Option<Dropout>, Option<AlphaDropout>) {
    match (prob > 0.0, selu) {
        (false, _) => (None, None),
        (true, false) => (Some(DropoutConfig::new(prob).init()), None),
        (true, true) => (None, Some(AlphaDropout::new(prob))),
    }
}

pub(crate) fn check_dropout(prob: f64) -> Result<(), ConfigError> {
    if !(0.0..1.0).contains(&prob) {
        return Err(ConfigError::new(
            "dropout",
            format!("must be in [0, 1), got {prob}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_widths(key: &str, widths: &[usize]) -> Result<(), ConfigError> {
    if let Some(position) = widths.iter().position(|w| *w == 0) {
        return Err(ConfigError::new(
            key,
            format!("entry {position} is 0: every layer needs at least one unit"),
        ));
    }
    Ok(())
}

/// Checks each slot's activation against its slot: `widths[i]` channels, the output of a
/// convolution (`spatial`) or of a dense layer. `key` is the list's when the user gave one,
/// else `activation`'s.
pub(crate) fn check_slots(
    key: &str,
    list: &[ActivationConfig],
    widths: &[usize],
    spatial: bool,
) -> Result<(), ConfigError> {
    for (activation, &channels) in list.iter().zip(widths) {
        activation
            .check_slot(channels, spatial)
            .map_err(|invalid| ConfigError::new(key, invalid.to_string()))?;
    }
    Ok(())
}

/// The key to name in a slot's error: the override list's when there is one.
pub(crate) fn slot_key<'a>(
    overrides: &Option<Vec<ActivationConfig>>,
    list_key: &'a str,
) -> &'a str {
    if overrides.is_some() {
        list_key
    } else {
        "activation"
    }
}

pub(crate) fn check_activations(key: &str, list: &[ActivationConfig]) -> Result<(), ConfigError> {
    for activation in list {
        activation
            .validate()
            .map_err(|invalid| ConfigError::new(key, invalid.to_string()))?;
        // Not element-wise and not learned: softmax and log-softmax. The learned kinds that are
        // not element-wise (APReLU, Meta-ACON) compute per-sample parameters from their input.
        if !activation.is_elementwise() && !activation.is_learnable() {
            return Err(ConfigError::new(
                key,
                format!(
                    "`{}` normalises across units and is meant for output layers, not hidden slots",
                    activation.name()
                ),
            ));
        }
    }
    Ok(())
}
