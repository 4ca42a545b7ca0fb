#![doc = include_str!("../README.md")]
//!
//! # This crate
//!
//! The facade of the workspace: re-exports the three crates so that the top-level `examples/`
//! run with `cargo run --release --example NAME -- --backend ...`.
//!
//! data → model → training loop → metrics → report:
//! - [`activations`]: every activation as a Burn module, and the registry.
//! - [`models`]: the CNN and MLP built from that registry.
//! - [`train`]: Fashion-MNIST, training, evaluation, run directories.
pub use actlab_activations as activations;
pub use actlab_models as models;
pub use actlab_train as train;
