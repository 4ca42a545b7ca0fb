//! The `fmnist` command line: [`Cli`] parses, each subcommand lives in its own file with its
//! flags (`*Args`) and a `run` that calls into the `train` library.
mod activations;
mod bench;
mod compare;
mod data;
mod eval;
mod export;
mod import;
mod inspect;
mod plot;
mod predict;
mod report;
mod train;

use std::path::PathBuf;

use ::activations::ActivationConfig;
use ::train::burn::module::Module;
use ::train::data::{CLASS_NAMES, FILES};
use ::train::{Backend, RunConfig, TrainOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "fmnist",
    version,
    about = "Compare activation functions on Fashion-MNIST"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model as a config file says; writes a run directory.
    Train(train::TrainArgs),
    /// Test accuracy, per-class accuracy and confusion matrix of a trained model.
    Eval(eval::EvalArgs),
    /// What a trained model's activations do on the test set: dead units, pre-activations,
    /// PReLU's slopes, APReLU's per-sample slopes (writes MODEL/inspect/).
    Inspect(inspect::InspectArgs),
    /// Top-3 classes with probabilities for 28×28 grayscale PNGs (or any PNG, resized).
    Predict(predict::PredictArgs),
    /// Where the data was found, checksums, counts per class.
    Data(data::DataArgs),
    /// Every activation in the registry with its parameters and defaults.
    Activations,
    /// Train every activation × seed of a compare config, then write the report.
    Compare(compare::CompareArgs),
    /// Merge finished runs from one or more sweep directories into one report.
    Report(report::ReportArgs),
    /// Plot activations and their derivatives on [-6, 6] (default: every registry kind).
    Plot(plot::PlotArgs),
    /// Benchmarks: activation kernels (fused vs Burn's built-in ops) and training speed.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Write a trained model's weights for PyTorch (names: see scripts/torch_model.py).
    Export(export::ExportArgs),
    /// Bring PyTorch-trained weights (safetensors) into a new run directory.
    Import(import::ImportArgs),
}

impl Cli {
    /// Runs the subcommand; `main` prints the error with its chain of causes.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Train(args) => args.run(),
            Command::Eval(args) => args.run(),
            Command::Inspect(args) => args.run(),
            Command::Predict(args) => args.run(),
            Command::Data(args) => args.run(),
            Command::Activations => activations::run(),
            Command::Compare(args) => args.run(),
            Command::Report(args) => args.run(),
            Command::Plot(args) => args.run(),
            Command::Bench { what } => what.run(),
            Command::Export(args) => args.run(),
            Command::Import(args) => args.run(),
        }
    }
}

pub(crate) fn parse_backend(name: &str) -> Result<Backend, ::train::backend::ParseBackendError> {
    name.parse()
}

pub(crate) fn parse_shard(
    text: &str,
) -> Result<::train::sweep::Shard, ::train::sweep::ParseShardError> {
    text.parse()
}

/// An activation from the command line: a name, or an inline TOML table.
pub(crate) fn parse_activation(text: &str) -> anyhow::Result<ActivationConfig> {
    if text.trim_start().starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Slot {
            activation: ActivationConfig,
        }
        toml::from_str::<Slot>(&format!("activation = {text}"))
            .map(|slot| slot.activation)
            .map_err(|e| anyhow::anyhow!("{text}: {e}"))
    } else {
        Ok(text.parse()?)
    }
}

/// Benchmark rows as one pretty-printed JSON array on stdout.
pub(crate) fn print_json(rows: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(rows)?;
    println!("{text}");
    Ok(())
}

pub(crate) fn backend_note(backend: Backend) -> String {
    format!(
        "Backend: {backend}, on a machine with {} CPU threads.",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// `--data-dir DIR` as the `--set` it stands for.
pub(crate) fn data_dir_override(dir: Option<PathBuf>) -> Option<String> {
    dir.map(|dir| format!("data.dir={}", toml_string(&dir.display().to_string())))
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.into()).to_string()
}
