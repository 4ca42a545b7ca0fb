#![doc = include_str!("../README.md")]
//!
//! # Map of the crate
//! **data** → model → **run** (training loop, metrics) → **sweep** → **report**; each module
//! imports only from those before it (and the shared helpers below).
//! - [`data`]: find, verify and parse the IDX files; batches; Burn's `Dataset` trait; PNGs.
//! - [`config`]: `[data]`, `[model]`, `[train]` from TOML, with `--set` overrides.
//! - [`backend`]: `flex` (default), `ndarray`, `wgpu`, `cuda`, chosen at run time.
//! - [`run`]: one training run: the loop, checkpoints and `--resume`, metrics, diagnostics, and
//!   the run directory ([`run::RunDir`] owns every file name in it), and
//!   [`run::adam::FusedAdam`]/[`run::adam::FusedAdamW`] (Burn's Adam/AdamW in one pass per
//!   tensor on Flex).
//! - [`sweep`]: `fmnist compare`'s config, plan (activations × seeds), shards, and training.
//! - [`report`]: finished runs collected, aggregated, written as tables and plots.
//! - [`export`]: the weights as safetensors with PyTorch's names and layouts.
//! - [`inspect`](mod@inspect): what a trained model's activation slots do on the test set (dead
//!   units, pre-activations, PReLU's slopes, APReLU's per-sample slopes), for `fmnist inspect`.
//! - [`bench`](mod@bench): activation kernels (fused vs built-in) and training throughput, for `fmnist bench`.
//! - Helpers: [`records`] (CSV through serde), [`progress`] (progress bars), [`rng`].
//!
//! The `fmnist` binary (`src/main.rs`, one file per subcommand in `src/cli/`) only parses
//! flags and calls into these modules.
pub use burn;

mod atomic;
mod bounded;

pub mod backend;
pub mod bench;
pub mod config;
pub mod configs;
pub mod data;
pub mod export;
pub mod inspect;
pub mod progress;
pub mod records;
#[cfg(feature = "report")]
pub mod report;
pub mod rng;
pub mod run;
pub mod sweep;

pub use backend::Backend;
pub use config::RunConfig;
pub use run::{TrainOptions, train, train_on};

/// An error and its sources as one line, outermost first: `cannot load run/model.bpk: the
/// file is damaged: …`. This is how `fmnist` prints errors; use it to show this crate's
/// errors the same way.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // A wrapper that repeats its source's message adds nothing.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
