//! Fashion-MNIST training, evaluation and the `fmnist` command.
//!
//! # Map
//! **data** → model → **training loop** → **metrics** → **run directory**
//! - [`data`]: find, verify and parse the IDX files; batches; Burn's `Dataset` trait.
//! - [`config`]: `[data]`, `[model]`, `[train]` from TOML, with `--set` overrides.
//! - [`backend`]: `flex` (default), `ndarray`, `wgpu`, `cuda`, chosen at run time.
//! - [`training`]: the loop, checkpoints every epoch, `--resume`, NaN stop.
//! - [`metrics`]: loss, accuracy, confusion matrix.
//! - [`run_dir`]: `config.toml`, `metrics.csv`, `summary.json`, `model.bpk`.
pub use burn;

pub mod backend;
pub mod config;
pub mod data;
pub mod image;
pub mod metrics;
pub mod progress;
pub mod rng;
pub mod run_dir;
pub mod training;

pub use backend::Backend;
pub use config::RunConfig;
pub use training::{TrainOptions, train, train_on};
