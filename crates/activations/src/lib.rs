#![doc = include_str!("../README.md")]
//!
//! # Map of the crate
//! - One file per activation ([`Relu`], [`Gelu`], [`PRelu`], [`AprRelu`], ...): the module, its
//!   config with PyTorch's defaults, `forward` (the fused kernel, or Burn's ops as the fallback),
//!   its scalar [`Formula`] (value and derivative, shared by the SIMD kernel and plots) and its
//!   [`ActivationKind`] declaration (kind name, description, bounded, fused, learnable).
//! - [`kind`]: the [`ActivationKind`] trait every activation implements.
//! - [`registry`]: the `registry!` macro. Its one invocation, below, lists every kind on one
//!   line and generates [`ActivationConfig`] (serde/TOML, tagged by `kind`), [`Activation`]
//!   (the module enum it builds), the catalog and every predicate. The CLI, configs, plots and
//!   reports all derive their lists from [`ActivationConfig::catalog`].
//! - [`interop`]: `burn::nn::activation::ActivationConfig` → [`ActivationConfig`] (`try_from`).
//! - [`allocator`]: [`keep_freed_memory`], the glibc tuning the kernels want in a binary.
//! - [`threads`]: [`in_thread_pool`], which runs a training loop on the kernels' thread pool.
//! - [`fused`]: the backend extension that runs the formulas as fused forward/backward kernels
//!   on Flex (SIMD) and the Cube backends (CubeCL); other backends take each file's composite
//!   path.
//!
//! Numerics follow PyTorch 2.x on CPU, including its subgradient at kinks (`relu'(0) = 0`,
//! `hardtanh'(±1) = 0`, `hardswish'(-3) = 0`, ...), overflow-free tails (`softplus`, `mish`,
//! `elu` at ±1e4) and NaN propagation. `tests/golden.rs` checks every activation against values
//! written by `scripts/golden.py`.
//!
//! ```
//! use actlab_activations::{ActivationConfig, burn::tensor::{Device, Tensor}};
//!
//! let device = Device::flex();
//! let config: ActivationConfig = "gelu".parse().unwrap();
//! let activation = config.init(32, &device);
//! let x = Tensor::<4>::ones([2, 32, 4, 4], &device);
//! assert_eq!(activation.forward(x).dims(), [2, 32, 4, 4]);
//! ```

pub use burn;

pub mod allocator;
pub mod fused;
pub mod interop;
pub mod kind;
pub mod registry;
pub mod threads;

#[cfg(test)]
pub(crate) mod test_util;

pub use allocator::keep_freed_memory;
pub use fused::Formula;
pub use interop::UnsupportedBurnActivation;
pub use kind::{ActivationKind, Coefficients, InvalidConfig, PerSample, SpatialMax};
pub use registry::ParseActivationError;
pub use threads::in_thread_pool;

// The one list of activations: `file: Variant(Config) => Module`, in the order users see them.
// Each line declares the file's module, re-exports its public items, and registers the kind
// (see `registry!`).
registry::registry! {
    identity: Identity => Identity,
    sigmoid: Sigmoid => Sigmoid,
    tanh: Tanh => Tanh,
    #[default]
    relu: Relu => Relu,
    relu6: Relu6 => Relu6,
    leaky_relu: LeakyRelu(LeakyReluConfig) => LeakyRelu,
    prelu: Prelu(PReluConfig) => PRelu,
    rrelu: Rrelu(RReluConfig) => RRelu,
    elu: Elu(EluConfig) => Elu,
    selu: Selu => Selu,
    celu: Celu(CeluConfig) => Celu,
    gelu: Gelu(GeluConfig) => Gelu,
    silu: Silu(SiluConfig) => Silu,
    mish: Mish => Mish,
    softplus: Softplus(SoftplusConfig) => Softplus,
    softsign: Softsign => Softsign,
    hardtanh: Hardtanh(HardTanhConfig) => HardTanh,
    hardsigmoid: Hardsigmoid => HardSigmoid,
    hardswish: Hardswish => HardSwish,
    logsigmoid: Logsigmoid => LogSigmoid,
    tanhshrink: Tanhshrink => Tanhshrink,
    softshrink: Softshrink(SoftshrinkConfig) => Softshrink,
    softmax: Softmax(SoftmaxConfig) => Softmax,
    log_softmax: LogSoftmax(SoftmaxConfig) => LogSoftmax,
    aprelu: Aprelu(AprReluConfig) => AprRelu,
    acon_c: AconC(AconCConfig) => AconC,
    meta_acon: MetaAcon(MetaAconConfig) => MetaAconC,
    dyrelu: Dyrelu(DyReluConfig) => DyRelu,
    frelu: Frelu => FRelu,
    pau: Pau(PauConfig) => Pau,
}
