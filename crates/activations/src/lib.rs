//! Activation functions as Burn modules, equal to PyTorch in value and gradient.
//!
//! # Map
//! - One file per activation ([`Relu`], [`Gelu`], [`PRelu`], [`AprRelu`], ...): the module, its
//!   config with PyTorch's defaults, `forward`, and the analytic `derivative` for plots.
//! - [`registry`]: [`ActivationConfig`] (serde/TOML, tagged by `kind`) is the one list of
//!   activations; [`Activation`] is the module enum it builds. The CLI, configs, plots and
//!   reports all derive their lists from [`ActivationConfig::catalog`].
//! - [`fused`]: fused forward/backward kernels (Burn backend extension) that the element-wise
//!   modules use on Flex; other backends take the composite path written in each file.
//!
//! Numerics follow PyTorch 2.x on CPU, including its subgradient at kinks (`relu'(0) = 0`,
//! `hardtanh'(±1) = 0`, `hardswish'(-3) = 0`, ...), overflow-free tails (`softplus`, `mish`,
//! `elu` at ±1e4) and NaN propagation. `tests/golden.rs` checks every activation against values
//! written by `scripts/golden.py`.
//!
//! ```
//! use activations::{ActivationConfig, burn::tensor::{Device, Tensor}};
//!
//! let device = Device::flex();
//! let config: ActivationConfig = "gelu".parse().unwrap();
//! let activation = config.init(32, &device);
//! let x = Tensor::<4>::ones([2, 32, 4, 4], &device);
//! assert_eq!(activation.forward(x).dims(), [2, 32, 4, 4]);
//! ```

pub use burn;

mod aprelu;
mod celu;
mod elu;
pub mod fused;
mod gelu;
mod hardsigmoid;
mod hardswish;
mod hardtanh;
mod identity;
mod leaky_relu;
mod log_softmax;
mod logsigmoid;
mod mish;
mod prelu;
pub mod registry;
mod relu;
mod relu6;
mod rrelu;
mod selu;
mod sigmoid;
mod silu;
mod softmax;
mod softplus;
mod softsign;
mod tanh;
mod tanhshrink;

#[cfg(test)]
pub(crate) mod test_util;

pub use aprelu::{AprRelu, AprReluConfig};
pub use celu::{Celu, CeluConfig};
pub use elu::{Elu, EluConfig};
pub use gelu::{Gelu, GeluApproximation, GeluConfig};
pub use hardsigmoid::HardSigmoid;
pub use hardswish::HardSwish;
pub use hardtanh::{HardTanh, HardTanhConfig};
pub use identity::Identity;
pub use leaky_relu::{LeakyRelu, LeakyReluConfig};
pub use log_softmax::LogSoftmax;
pub use logsigmoid::LogSigmoid;
pub use mish::Mish;
pub use prelu::{PRelu, PReluConfig};
pub use registry::{Activation, ActivationConfig, ParseActivationError};
pub use relu::Relu;
pub use relu6::Relu6;
pub use rrelu::{RRelu, RReluConfig};
pub use selu::Selu;
pub use sigmoid::Sigmoid;
pub use silu::{Silu, SiluConfig};
pub use softmax::{Softmax, SoftmaxConfig};
pub use softplus::{Softplus, SoftplusConfig};
pub use softsign::Softsign;
pub use tanh::Tanh;
pub use tanhshrink::Tanhshrink;

/// The README's Rust example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
