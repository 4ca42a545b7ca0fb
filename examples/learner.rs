//! The reference CNN trained by burn-train's `SupervisedTraining`/`Learner` instead of this
//! project's loop: accuracy, loss and learning-rate metrics, Burn's file checkpointers, early
//! stopping on the validation loss, a cosine learning-rate schedule, and burn-train's
//! multi-device strategy with `--devices N` (the first N GPUs of the backend, each a distinct
//! device; `--device N` picks the single one).
//!
//! ```text
//! cargo run --release --example learner -- --activation gelu --epochs 5
//! ```
//!
//! `models::Model` implements `TrainStep`/`InferenceStep` (feature `learner` of the models
//! crate) and `train::data::FashionMnistBatcher` batches Fashion-MNIST for Burn's `DataLoader`.
//! What this loop does not have and `fmnist train` has: bit-identical resume, sharded sweeps,
//! the diagnostics, and the run directory that `fmnist eval`/`report` read.
use std::path::PathBuf;
use std::time::Instant;

use burn_activation_lab::activations::ActivationConfig;
use burn_activation_lab::models::ModelConfig;
use burn_activation_lab::train::Backend;
use burn_activation_lab::train::burn::data::dataloader::DataLoaderBuilder;
use burn_activation_lab::train::burn::optim::AdamConfig;
use burn_activation_lab::train::burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn_activation_lab::train::burn::train::metric::store::{Aggregate, Direction, Split};
use burn_activation_lab::train::burn::train::metric::{
    AccuracyMetric, LearningRateMetric, LossMetric,
};
use burn_activation_lab::train::burn::train::{
    ExecutionStrategy, Learner, MetricEarlyStoppingStrategy, MultiDeviceOptim, StoppingCondition,
    SupervisedTraining,
};
use burn_activation_lab::train::data::{
    DataOptions, FashionMnistBatcher, FashionMnistDataset, Split as DataSplit, load_splits,
};
use clap::Parser;

/// Train the reference CNN with burn-train's Learner.
#[derive(Parser)]
struct Args {
    /// flex, ndarray, wgpu (or cuda when compiled in).
    #[arg(long, default_value = "flex", value_parser = |s: &str| s.parse::<Backend>())]
    backend: Backend,
    /// The activation of every slot: a registry name such as `gelu`.
    #[arg(long, default_value = "relu", value_parser = |s: &str| s.parse::<ActivationConfig>().map_err(|e| e.to_string()))]
    activation: ActivationConfig,
    /// Epochs (at most; early stopping may end sooner).
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Initial learning rate of the cosine schedule (Adam).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Stop when the validation loss has not improved for this many epochs.
    #[arg(long, default_value_t = 2)]
    patience: usize,
    /// Devices for burn-train's multi-device strategy (1: single device): the backend's first
    /// N devices, as `fmnist --device` numbers them. The CPU backends have one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    devices: u32,
    /// The single device to train on (wgpu, cuda: the GPU's index).
    #[arg(long, conflicts_with = "devices")]
    device: Option<usize>,
    /// Train on the first N images only (0: all 55,000 left after the validation split).
    #[arg(long, default_value_t = 0)]
    train_limit: usize,
    /// burn-train's artifact directory (checkpoints, logs).
    #[arg(long, default_value = "runs/learner")]
    out: PathBuf,
}

fn main() {
    burn_activation_lab::train::backend::keep_freed_memory();
    let mut args = Args::parse();
    if let Some(index) = args.device {
        args.backend = args
            .backend
            .on_device(index)
            .unwrap_or_else(|error| fail(&error));
    }
    // N distinct devices, or an error naming the ones there are (never one device N times).
    let devices = if args.devices > 1 {
        let found = args.backend.devices();
        if found.len() < args.devices as usize {
            let error = args
                .backend
                .on_device(args.devices as usize - 1)
                .expect_err("fewer devices than asked for");
            fail(&error);
        }
        found[..args.devices as usize].to_vec()
    } else {
        Vec::new()
    };
    // The main device: the first of the N, or the one asked for.
    let device = devices
        .first()
        .cloned()
        .unwrap_or_else(|| args.backend.device());
    // The same data as `fmnist train`: 5,000 seeded validation images held out of training.
    let splits = load_splits(&DataOptions::default(), 5_000, args.train_limit, 0, 42)
        .unwrap_or_else(|error| fail(&error));
    let dataset = |split: DataSplit| FashionMnistDataset::from_split(split);
    let train_images = splits.train.len();
    let train_loader = DataLoaderBuilder::new(FashionMnistBatcher)
        .batch_size(args.batch_size)
        .shuffle(42)
        .set_device(device.clone().autodiff())
        .build(dataset(splits.train));
    let valid_loader = DataLoaderBuilder::new(FashionMnistBatcher)
        .batch_size(1_000)
        .set_device(device.clone())
        .build(dataset(splits.validation));

    let mut model_config = ModelConfig::default();
    model_config.set_activation(args.activation.clone());
    let model = model_config.init(&device.clone().autodiff());
    let steps = args.epochs * train_images.div_ceil(args.batch_size);
    let schedule = CosineAnnealingLrSchedulerConfig::new(args.lr, steps)
        .init()
        .unwrap_or_else(|error| fail_text(&error));
    let strategy = if !devices.is_empty() {
        ExecutionStrategy::MultiDevice(devices, MultiDeviceOptim::OptimMainDevice)
    } else {
        ExecutionStrategy::SingleDevice(device.clone())
    };
    let training = SupervisedTraining::new(&args.out, train_loader, valid_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .with_default_checkpointers()
        .early_stopping(MetricEarlyStoppingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            Split::Valid,
            StoppingCondition::NoImprovementSince {
                n_epochs: args.patience,
            },
        ))
        .with_training_strategy(strategy.into())
        .num_epochs(args.epochs)
        .summary();

    let start = Instant::now();
    let result = training.launch(Learner::new(model, AdamConfig::new().init(), schedule));
    let seconds = start.elapsed().as_secs_f64();

    let test =
        burn_activation_lab::train::run::evaluate_split(&result.model, &splits.test, args.backend);
    println!(
        "{} with burn-train's Learner on {}: test accuracy {:.2}% after at most {} epochs, \
         {:.0} s in training and validation ({:.0} training images/s including validation)",
        args.activation,
        args.backend,
        100.0 * test.accuracy,
        args.epochs,
        seconds,
        (args.epochs * train_images) as f64 / seconds
    );
}

fn fail(error: &dyn std::error::Error) -> ! {
    eprintln!("error: {}", burn_activation_lab::train::error_chain(error));
    std::process::exit(2)
}

fn fail_text(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
