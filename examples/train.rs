//! Trains the reference CNN through the library API, as `fmnist train` does.
//!
//! ```text
//! cargo run --release --example train -- --backend flex --activation gelu --epochs 1
//! ```
use std::path::PathBuf;

use burn_activation_lab::activations::ActivationConfig;
use burn_activation_lab::train::{Backend, RunConfig, TrainOptions, train};
use clap::Parser;

/// Train the reference CNN on Fashion-MNIST with one activation.
#[derive(Parser)]
struct Args {
    /// flex, ndarray, wgpu (or cuda when compiled in).
    #[arg(long, default_value = "flex", value_parser = |s: &str| s.parse::<Backend>())]
    backend: Backend,
    /// The activation of every slot: a registry name such as `gelu`.
    #[arg(long, default_value = "relu", value_parser = |s: &str| s.parse::<ActivationConfig>().map_err(|e| e.to_string()))]
    activation: ActivationConfig,
    /// Epochs to train (default: the reference run's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Train on the first N images only (0: all).
    #[arg(long)]
    train_limit: Option<usize>,
}

fn main() {
    burn_activation_lab::train::backend::keep_freed_memory();
    let args = Args::parse();
    let mut config = RunConfig::default();
    config.model.set_activation(args.activation);
    if let Some(epochs) = args.epochs {
        config.train.epochs = epochs;
    }
    if let Some(limit) = args.train_limit {
        config.data.train_limit = limit;
    }
    if let Err(error) = config.validate() {
        fail(&error);
    }
    let out = PathBuf::from("runs/example").join(config.model.activation().name());
    let options = TrainOptions {
        backend: args.backend,
        out_dir: out,
        resume: false,
        quiet: false,
        stop_after: None,
        diagnostics: false,
        stop: Default::default(),
    };
    // On the kernels' thread pool, as `fmnist` runs (fewer wake-ups per parallel section).
    let summary = burn_activation_lab::train::backend::in_thread_pool(|| {
        train(&config, &options).unwrap_or_else(|error| fail(&error))
    });
    println!(
        "{} on {}: test accuracy {:.2}%, {:.0} training images/s",
        summary.activation,
        summary.backend,
        100.0 * summary.test_accuracy,
        summary.train_images_per_second
    );
}

/// Prints the error with its causes, as `fmnist` does, and exits.
fn fail(error: &dyn std::error::Error) -> ! {
    eprintln!("error: {}", burn_activation_lab::train::error_chain(error));
    std::process::exit(2)
}
