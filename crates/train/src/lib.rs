//! Fashion-MNIST training, evaluation and the `fmnist` command.
//!
//! # Map
//! **data** → model → **training loop** → **metrics** → **run directory**
//! - [`data`]: find, verify and parse the IDX files; batches; Burn's `Dataset` trait.
//! - [`config`]: `[data]`, `[model]`, `[train]` from TOML, with `--set` overrides.
//! - [`backend`]: `flex` (default), `ndarray`, `wgpu`, `cuda`, chosen at run time.
//! - [`training`]: the loop, checkpoints every epoch, `--resume`, NaN stop.
//! - [`metrics`]: loss, accuracy, confusion matrix.
//! - [`diagnostics`]: dead units, sparsity, saturation, gradient norms per layer.
//! - [`run_dir`]: `config.toml`, `metrics.csv`, `summary.json`, `model.bpk`.
//! - [`export`]: the weights as safetensors with PyTorch's names and layouts.
//! - [`compare`] → [`report`] + [`plots`]: many runs (activations × seeds), then one report.
//! - [`bench`]: activation kernels (fused vs built-in) and training throughput, for `fmnist bench`.
pub use burn;

pub mod backend;
pub mod bench;
pub mod compare;
pub mod config;
pub mod data;
pub mod diagnostics;
pub mod export;
pub mod image;
pub mod metrics;
pub mod plots;
pub mod progress;
pub mod report;
pub mod rng;
pub mod run_dir;
pub mod training;

pub use backend::Backend;
pub use config::RunConfig;
pub use training::{TrainOptions, train, train_on};
