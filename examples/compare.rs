//! A small activation study through the library API, as `fmnist compare` does: a few
//! activations × seeds on a subset, then the report with its plots.
//!
//! ```text
//! cargo run --release --example compare -- --backend flex --activations relu,gelu,sigmoid --seeds 1,2
//! ```
use std::path::PathBuf;

use burn_activation_lab::activations::ActivationConfig;
use burn_activation_lab::train::Backend;
use burn_activation_lab::train::report::{collect_runs, write_report};
use burn_activation_lab::train::run::StopRequest;
use burn_activation_lab::train::sweep::{
    CompareConfig, CompareOptions, CompareSection, Shard, run_sweep,
};
use clap::Parser;

/// Compare a few activations on a subset of Fashion-MNIST.
#[derive(Parser)]
struct Args {
    /// flex, ndarray, wgpu (or cuda when compiled in).
    #[arg(long, default_value = "flex", value_parser = |s: &str| s.parse::<Backend>())]
    backend: Backend,
    /// Registry names, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "relu,gelu,sigmoid", value_parser = |s: &str| s.trim().parse::<ActivationConfig>().map_err(|e| e.to_string()))]
    activations: Vec<ActivationConfig>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    seeds: Vec<u64>,
    /// Epochs per run.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
}

fn main() {
    burn_activation_lab::train::backend::keep_freed_memory();
    let args = Args::parse();
    let mut base = burn_activation_lab::train::RunConfig::default();
    base.data.train_limit = 5_000;
    base.data.test_limit = 2_000;
    base.train.epochs = args.epochs;
    let compare = CompareSection {
        // The first activation listed is the reference of the report's paired comparisons.
        baseline: args
            .activations
            .first()
            .map(burn_activation_lab::train::sweep::label)
            .unwrap_or_default(),
        activations: args.activations,
        seeds: args.seeds,
        diagnostics: true,
    };
    let config = CompareConfig { base, compare };
    if let Err(error) = config.validate() {
        fail(&error);
    }
    let out = PathBuf::from("runs/example-compare");
    let options = CompareOptions {
        backend: args.backend,
        out_dir: out.clone(),
        shard: Shard::default(),
        quiet: false,
        // Ctrl-C stops the run in progress with a checkpoint; running again continues.
        stop: StopRequest::on_signals().unwrap_or_default(),
    };
    // On the kernels' thread pool, as `fmnist` runs (fewer wake-ups per parallel section).
    burn_activation_lab::train::backend::in_thread_pool(|| {
        run_sweep(&config, &options).unwrap_or_else(|error| fail(&error))
    });
    let runs = collect_runs(std::slice::from_ref(&out)).unwrap_or_else(|e| fail(&e));
    write_report(
        &runs,
        &out,
        &format!("Backend: {}.", args.backend),
        &config.compare.baseline,
    )
    .unwrap_or_else(|e| fail(&e));
    println!("report: {}", out.join("report.md").display());
}

/// Prints the error with its causes, as `fmnist` does, and exits.
fn fail(error: &dyn std::error::Error) -> ! {
    eprintln!("error: {}", burn_activation_lab::train::error_chain(error));
    std::process::exit(2)
}
