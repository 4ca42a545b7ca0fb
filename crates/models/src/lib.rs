#![doc = include_str!("../README.md")]
//!
//! # Map of the crate
//! data → **model** → training loop → metrics → report
//! - [`ModelConfig`] (TOML `[model]`, `kind = "cnn" | "mlp" | "resnet"`) is the one entry
//!   point: [`ModelConfig::init`] builds a [`Model`].
//! - [`CnnConfig`]/[`Cnn`]: conv 3×3 → (BatchNorm) → activation → max-pool 2×2 blocks, then
//!   dense layers; [`MlpConfig`]/[`Mlp`]: dense layers only, for depth studies;
//!   [`ResnetConfig`]/[`Resnet`]: pre-activation residual blocks (BN → activation → conv,
//!   twice, plus the shortcut), the setting of the APReLU paper.
//! - [`Model::forward_with_taps`] also returns each activation slot's pre- and post-activation
//!   tensors ([`Tap`]), which training uses for dead-unit, sparsity and saturation statistics.
//! - SELU slots get LeCun-normal initialisation of the layer before them and [`AlphaDropout`]
//!   after them, so that SELU's self-normalisation actually holds.
mod alpha_dropout;
mod cnn;
mod config;
pub mod kernels;
#[cfg(feature = "learner")]
pub mod learner;
mod mlp;
mod model;
mod resnet;
mod slots;

pub use activations;
pub use alpha_dropout::AlphaDropout;
pub use cnn::{Cnn, CnnConfig, ConvBlock};
pub use config::{ConfigError, ModelConfig};
pub use mlp::{DenseBlock, Mlp, MlpConfig};
pub use model::{LayerWeight, Model, ModelOutput, Tap};
pub use resnet::{ResidualBlock, Resnet, ResnetConfig};

/// Side of the square input images (Fashion-MNIST).
pub const IMAGE_SIZE: usize = 28;
/// Number of output classes (Fashion-MNIST).
pub const NUM_CLASSES: usize = 10;
