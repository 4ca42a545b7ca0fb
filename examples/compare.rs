//! A small activation study through the library API, as `fmnist compare` does: a few
//! activations × seeds on a subset, then the report with its plots.
//!
//! ```text
//! cargo run --release --example compare -- --backend flex --activations relu,gelu,sigmoid --seeds 1,2
//! ```
use std::path::PathBuf;

use burn_activation_lab::activations::ActivationConfig;
use burn_activation_lab::train::Backend;
use burn_activation_lab::train::compare::{
    CompareConfig, CompareOptions, CompareSection, Shard, collect_runs, run_sweep,
};
use burn_activation_lab::train::report::write_report;

fn main() {
    burn_activation_lab::train::backend::keep_freed_memory();
    let mut backend = Backend::Flex;
    let mut base = burn_activation_lab::train::RunConfig::default();
    base.data.train_limit = 5_000;
    base.data.test_limit = 2_000;
    base.train.epochs = 2;
    let mut compare = CompareSection {
        activations: ["relu", "gelu", "sigmoid"]
            .iter()
            .map(|name| name.parse().expect("registry names parse"))
            .collect(),
        seeds: vec![1],
        diagnostics: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--backend" => backend = value.parse().unwrap_or_else(|e: String| fail(&e)),
            "--activations" => {
                compare.activations = value
                    .split(',')
                    .map(|name| {
                        name.trim()
                            .parse::<ActivationConfig>()
                            .unwrap_or_else(|e| fail(&e.to_string()))
                    })
                    .collect()
            }
            "--seeds" => {
                compare.seeds = value
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .unwrap_or_else(|_| fail("--seeds takes numbers, e.g. 1,2,3"))
                    })
                    .collect()
            }
            "--epochs" => {
                base.train.epochs = value
                    .parse()
                    .unwrap_or_else(|_| fail("--epochs takes a whole number"))
            }
            other => fail(&format!(
                "unknown flag {other}; use --backend, --activations, --seeds, --epochs"
            )),
        }
    }
    let config = CompareConfig { base, compare };
    if let Err(error) = config.validate() {
        fail(&error);
    }
    let out = PathBuf::from("runs/example-compare");
    let options = CompareOptions {
        backend,
        out_dir: out.clone(),
        shard: Shard::default(),
        quiet: false,
    };
    if let Err(error) = run_sweep(&config, &options) {
        fail(&error.0);
    }
    let runs = collect_runs(std::slice::from_ref(&out)).unwrap_or_else(|e| fail(&e));
    write_report(&runs, &out, &format!("Backend: {backend}.")).unwrap_or_else(|e| fail(&e));
    println!("report: {}", out.join("report.md").display());
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
