//! What each activation declares about itself, beside its module.
//!
//! Every activation file implements [`ActivationKind`] for its module; the one list in
//! [`crate::registry`] turns those declarations into [`ActivationConfig`](crate::ActivationConfig),
//! [`Activation`](crate::Activation), the catalog and every predicate. Nothing has a default
//! answer: a new kind that leaves a question open does not compile.
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An activation parameter outside its valid range: which parameter (`elu.alpha`), and what is
/// wrong (`must be finite, got NaN`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{parameter} {reason}")]
#[non_exhaustive]
pub struct InvalidConfig {
    /// The activation and parameter, e.g. `"elu.alpha"` (or the activation alone when the
    /// problem is between parameters, e.g. `"rrelu"`).
    pub parameter: &'static str,
    /// What is wrong and what would be right.
    pub reason: String,
}

impl InvalidConfig {
    /// A parameter and what is wrong with it.
    pub fn new(parameter: &'static str, reason: impl Into<String>) -> Self {
        Self {
            parameter,
            reason: reason.into(),
        }
    }
}

use crate::fused::{Channelwise, Pointwise};

/// Everything the registry needs to know about one kind of activation.
pub trait ActivationKind: Sized {
    /// The `kind` written in configs, e.g. `"leaky_relu"`.
    const KIND: &'static str;
    /// Other names accepted for this kind (`"swish"` for SiLU).
    const ALIASES: &'static [&'static str];
    /// One line for listings.
    const DESCRIPTION: &'static str;
    /// The output is bounded on both sides, so `f'(x) → 0` for large `|x|` (it saturates).
    const BOUNDED: bool;
    /// Each output element depends on its input element alone (the activation then has a
    /// [`Formula`](crate::fused::Formula), a derivative, and a curve in plots).
    const ELEMENTWISE: bool;

    /// The parameters users write; `()` for kinds without any.
    type Config: Clone + std::fmt::Debug + Default + PartialEq + Serialize + DeserializeOwned;

    /// Checks the parameters, with a message that names the parameter and the reason.
    fn validate(config: &Self::Config) -> Result<(), InvalidConfig>;

    /// Checks the parameters against a slot with `channels` channels whose input is `spatial`
    /// (`[N, C, H, W]`, a convolution's) or not (`[N, C]`, a dense layer's), e.g. a reduction
    /// that would leave no hidden unit. Models call it when they validate. Default: any slot.
    fn check_slot(
        config: &Self::Config,
        channels: usize,
        spatial: bool,
    ) -> Result<(), InvalidConfig> {
        let _ = (config, channels, spatial);
        Ok(())
    }

    /// Builds the module for a slot with `channels` channels (dim 1 of its input).
    fn from_config(config: &Self::Config, channels: usize, device: &Device) -> Self;

    /// Whether this configuration runs a fused kernel on Flex ([`crate::fused`]).
    fn has_fused_kernel(config: &Self::Config) -> bool;

    /// Whether this configuration has trainable parameters.
    fn is_learnable(config: &Self::Config) -> bool;

    /// The element-wise formula with this module's current parameters, for plots and
    /// [`derivative`](Self::derivative) (`None` when not element-wise). Unlike
    /// [`pointwise`](Self::pointwise), it exists for learnable and random parameters too.
    fn formula(&self) -> Option<Pointwise>;

    /// The fused element-wise kernel that computes what `forward` computes (values and
    /// gradients), with this module's parameters, where there is one: fused layers (the
    /// `models` crate's conv blocks) then apply it in their own epilogue. `None` for the others
    /// (composites, learnable or random parameters, kinds that are not element-wise).
    fn pointwise(&self) -> Option<Pointwise> {
        None
    }

    /// The fused channel-wise kernel that computes what `forward` computes, for a learned
    /// activation whose parameters come per channel: the op and its parameters as a tensor
    /// `[rows, K]` (one row, or one per channel of a slot with `channels` channels), tracked by
    /// autodiff, so that fused layers (the `models` crate's conv blocks) apply it in their
    /// epilogue and return the parameters' gradient. `None` for the others, or when the module
    /// does not fit `channels`.
    fn channelwise(&self, channels: usize) -> Option<(Channelwise, Tensor<2>)> {
        let _ = channels;
        None
    }

    /// For a kind whose channel-wise parameters a small network computes per sample from the
    /// channel means of its input (APReLU, Meta-ACON, DyReLU), in a slot of `channels`
    /// channels: its op and the map from the input's summary to the parameters. Fused layers
    /// compute the summary while the input is in cache (the models crate's conv block) and apply
    /// the op with the pooling. `None` for the others, or when the module does not fit.
    fn per_sample_channelwise(&self, channels: usize) -> Option<PerSample<'_>> {
        let _ = channels;
        None
    }

    /// For a kind whose output is [`fused::spatial_max`](crate::fused::spatial_max) of its
    /// input (FReLU): that op's inputs for `input` `[N, C, H, W]`, so that other crates' fused
    /// layers can run it with what follows (the models crate's FReLU + max-pool,
    /// [`fused::planes`](crate::fused::planes)). `None` for the others, or when the module
    /// does not fit the input.
    fn spatial_max(&self, input: &Tensor<4>) -> Option<SpatialMax<'_>> {
        let _ = input;
        None
    }

    /// The coefficients this module computes per sample and channel from `input` (APReLU's
    /// `α`, Meta-ACON's `β`, DyReLU's `a¹` and `a²`), for inspection. Empty for kinds whose
    /// parameters do not depend on the input.
    fn per_sample_coefficients<const D: usize>(&self, input: Tensor<D>) -> Vec<Coefficients> {
        let _ = input;
        Vec::new()
    }

    /// The learned parameters of each channel, each with its name (PReLU's `slope`, ACON-C's
    /// `p1`, `p2`, `β`, SiLU's learned `β`), for inspection. Empty for the others.
    fn channel_parameters(&self) -> Vec<(&'static str, Vec<f32>)> {
        Vec::new()
    }

    /// The element-wise function this module started as, where its initialisation is a known
    /// function (PAU's least-squares fit), for inspection: `fmnist inspect` draws the learned
    /// curves over it. `None` for the others (random or absent initial parameters).
    fn initial_formula(&self) -> Option<Pointwise> {
        None
    }

    /// The analytic `f'(x)` from [`formula`](Self::formula), with PyTorch's choice at kinks;
    /// `None` when the activation is not element-wise. Computed on the host: it serves plots
    /// and diagnostics, not training.
    fn derivative<const D: usize>(&self, input: Tensor<D>) -> Option<Tensor<D>> {
        let formula = self.formula()?;
        Some(map_on_host(input, |x| formula.derivative(x)))
    }
}

/// A channel-wise op whose parameters a module computes per sample (see
/// [`ActivationKind::per_sample_channelwise`]).
pub struct PerSample<'a> {
    /// The formula applied with one row of parameters per sample and channel.
    pub op: Channelwise,
    /// The summary `[N, 2C]` (each sample's channel means of `max(x, 0)`, then of `min(x, 0)`:
    /// [`fused::aprelu_squeeze`](crate::fused::aprelu_squeeze)) → the parameters
    /// `[N·C, op.parameter_count()]`, tracked by autodiff.
    pub parameters: Box<dyn Fn(Tensor<2>) -> Tensor<2> + 'a>,
}

/// The inputs of a kind's [`fused::spatial_max`](crate::fused::spatial_max)
/// ([`ActivationKind::spatial_max`]).
pub struct SpatialMax<'a> {
    /// `[C, ROW]`: each channel's nine weights, bias, `γ`, `β`
    /// ([`fused::planes::ROW`](crate::fused::planes::ROW)), tracked by autodiff.
    pub parameters: Tensor<2>,
    /// `[C, 2]`: the running mean and variance, used when `batch` is false.
    pub running: Tensor<2>,
    /// The BatchNorm's `ε`.
    pub epsilon: f32,
    /// Whether the statistics are the batch's own (training).
    pub batch: bool,
    /// Records the batch statistics the op returned (`[C, 2]`: mean, biased variance) in the
    /// module's running estimates, as its own forward does.
    pub record: Box<dyn Fn(Tensor<2>) + 'a>,
}

/// The channel means `[N, C]` from a summary `[N, 2C]` of the means of `max(x, 0)` and
/// `min(x, 0)`: their sum.
pub(crate) fn means_from_summary(summary: Tensor<2>) -> Tensor<2> {
    let [_, doubled] = summary.dims();
    let channels = doubled / 2;
    summary.clone().narrow(1, 0, channels) + summary.narrow(1, channels, channels)
}

/// Coefficients computed per sample and channel (see
/// [`ActivationKind::per_sample_coefficients`]).
#[derive(Debug)]
pub struct Coefficients {
    /// Their symbol (`"α"`).
    pub symbol: &'static str,
    /// The interval they lie in by construction (`(0, 1)` for a sigmoid's output).
    pub range: (f64, f64),
    /// `[N, C]`.
    pub values: Tensor<2>,
}

/// `tensor`'s values on the host, as `f32`.
pub(crate) fn host_values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("converted to f32")
}

/// `f` applied to every element of `input`, on the host, back on `input`'s device.
pub(crate) fn map_on_host<const D: usize>(input: Tensor<D>, f: impl Fn(f32) -> f32) -> Tensor<D> {
    let device = input.device();
    let shape = input.dims();
    let values: Vec<f32> = input
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("converted to f32 above");
    let mapped: Vec<f32> = values.into_iter().map(f).collect();
    Tensor::from_data(TensorData::new(mapped, shape), &device)
}

/// The derivative of a channel-wise activation `op` with parameters `[rows, K]` (one row, or one
/// per channel on dim 1 of `input`), on the host (plots and diagnostics).
pub(crate) fn channelwise_derivative<const D: usize>(
    op: Channelwise,
    parameters: Tensor<2>,
    input: Tensor<D>,
) -> Tensor<D> {
    let [rows, count] = parameters.dims();
    let parameters: Vec<f32> = parameters
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("converted to f32");
    let ops: Vec<Pointwise> = parameters.chunks(count).map(|row| op.at(row)).collect();
    let dims = input.dims();
    let inner: usize = dims.iter().skip(2).product::<usize>().max(1);
    let device = input.device();
    let values: Vec<f32> = input
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("converted to f32");
    let derivative = values
        .into_iter()
        .enumerate()
        .map(|(index, x)| ops[if rows == 1 { 0 } else { (index / inner) % rows }].derivative(x))
        .collect();
    Tensor::from_data(TensorData::new(derivative, dims), &device)
}

/// The [`ActivationKind`] of a kind without parameters: `Config = ()`, nothing to validate or
/// learn, element-wise with the formula given; `pointwise: true` offers that formula to fused
/// layers (the `models` crate's conv blocks).
macro_rules! parameterless_kind {
    (
        $module:ident,
        kind: $kind:literal,
        description: $description:literal,
        bounded: $bounded:literal,
        fused_kernel: $fused:literal,
        formula: $formula:ty = $value:expr
        $(, pointwise: $pointwise:literal)? $(,)?
    ) => {
        impl $crate::kind::ActivationKind for $module {
            const KIND: &'static str = $kind;
            const ALIASES: &'static [&'static str] = &[];
            const DESCRIPTION: &'static str = $description;
            const BOUNDED: bool = $bounded;
            const ELEMENTWISE: bool = true;
            type Config = ();

            fn validate(_: &()) -> Result<(), $crate::InvalidConfig> {
                Ok(())
            }
            fn from_config(_: &(), _: usize, _: &burn::tensor::Device) -> Self {
                $module
            }
            fn has_fused_kernel(_: &()) -> bool {
                $fused
            }
            fn is_learnable(_: &()) -> bool {
                false
            }
            fn formula(&self) -> Option<$crate::fused::Pointwise> {
                Some($crate::fused::Pointwise::new($value))
            }
            $(
                fn pointwise(&self) -> Option<$crate::fused::Pointwise> {
                    $pointwise.then(|| $crate::fused::Pointwise::new($value))
                }
            )?
        }
    };
}

pub(crate) use parameterless_kind;
