//! The `fmnist` command line: [`Cli`] parses, each subcommand lives in its own file with its
//! flags (`*Args`) and a `run` that calls into the `train` library.
mod activations;
mod bench;
mod compare;
mod configs;
mod data;
mod eval;
mod export;
mod import;
mod inspect;
mod plot;
mod predict;
mod report;
mod train;
mod verify;

use std::path::PathBuf;

use ::activations::ActivationConfig;
use ::actlab_train::burn::module::Module;
use ::actlab_train::data::{CLASS_NAMES, FILES};
use ::actlab_train::{Backend, RunConfig, TrainOptions};
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
    /// The configs shipped inside the binary: list them, or print one to edit.
    Configs(configs::ConfigsArgs),
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
    /// Check run directories, or every run of a study, against the hashes the runs recorded:
    /// intact, incomplete, damaged or missing (non-zero exit unless all are intact).
    Verify(verify::VerifyArgs),
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
            Command::Configs(args) => args.run(),
            Command::Compare(args) => args.run(),
            Command::Report(args) => args.run(),
            Command::Plot(args) => args.run(),
            Command::Bench { what } => what.run(),
            Command::Export(args) => args.run(),
            Command::Import(args) => args.run(),
            Command::Verify(args) => args.run(),
        }
    }
}

/// `--backend NAME [--device N]`, shared by every command that computes.
#[derive(Args, Clone, Copy)]
pub struct BackendArgs {
    /// flex (default), ndarray, wgpu, or cuda (when compiled in).
    #[arg(long, default_value = "flex", value_parser = parse_backend)]
    backend: Backend,
    /// Which of the backend's devices (wgpu, cuda: the GPU's index, as the error for a
    /// missing one lists them; default: wgpu's default adapter, CUDA's GPU 0).
    #[arg(long, value_name = "N")]
    device: Option<usize>,
}

impl BackendArgs {
    /// The backend on the device asked for, or an error listing the devices there are.
    pub fn resolve(self) -> anyhow::Result<Backend> {
        Ok(match self.device {
            None => self.backend,
            Some(index) => self.backend.on_device(index)?,
        })
    }
}

pub(crate) fn parse_backend(
    name: &str,
) -> Result<Backend, ::actlab_train::backend::ParseBackendError> {
    name.parse()
}

pub(crate) fn parse_shard(
    text: &str,
) -> Result<::actlab_train::sweep::Shard, ::actlab_train::sweep::ParseShardError> {
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

/// `--json` output (benchmark rows, train and eval summaries) as one pretty-printed JSON
/// value on stdout.
pub(crate) fn print_json(rows: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(rows)?;
    println!("{text}");
    Ok(())
}

pub(crate) fn backend_note(backend: Backend) -> String {
    // Which of the activations' kernel paths ran (ACTIVATIONS_ISA can pick a lower one).
    let isa = match backend {
        Backend::Flex => format!(
            " (activation kernels: {})",
            ::activations::fused::kernel_isa()
        ),
        _ => String::new(),
    };
    format!(
        "Backend: {backend}{isa}, on a machine with {} CPU threads.",
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
