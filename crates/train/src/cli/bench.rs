//! `fmnist bench activations|train`.
use super::*;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Forward and forward+backward milliseconds on a 4M-element f32 tensor, per activation,
    /// through the fused kernels and through Burn's built-in ops, side by side.
    Activations {
        #[command(flatten)]
        backend: BackendArgs,
        /// Only these (names or TOML tables); default: every activation with a fused kernel.
        #[arg(long = "activation", value_parser = parse_activation)]
        activations: Vec<ActivationConfig>,
        /// Timed repetitions per measurement (the median is reported).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
        repeats: u32,
        /// One JSON array on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Training images/s (warm-up excluded), evaluation images/s of the trained model (batches
    /// of 1,000, no autodiff) and peak memory, of the reference CNN, the compare MLP or the
    /// ResNet.
    Train {
        #[command(flatten)]
        backend: BackendArgs,
        /// cnn: the reference CNN (configs/default.toml); mlp: the MLP of configs/compare.toml;
        /// resnet: the ResNet of configs/resnet.toml.
        #[arg(long, value_enum, default_value = "cnn")]
        model: ModelArg,
        /// The activation in every slot; repeat for several (default: relu and gelu).
        #[arg(long = "activation", value_parser = parse_activation)]
        activations: Vec<ActivationConfig>,
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: u32,
        /// Untimed steps first.
        #[arg(long, default_value_t = 5)]
        warmup: u32,
        /// Timed steps.
        #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// One JSON array on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `--model` of `fmnist bench train`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ModelArg {
    Cnn,
    Mlp,
    Resnet,
}

impl From<ModelArg> for ::actlab_train::bench::BenchModel {
    fn from(arg: ModelArg) -> Self {
        match arg {
            ModelArg::Cnn => Self::Cnn,
            ModelArg::Mlp => Self::Mlp,
            ModelArg::Resnet => Self::Resnet,
        }
    }
}

impl BenchCommand {
    pub fn run(self) -> anyhow::Result<()> {
        use ::actlab_train::bench;
        match self {
            BenchCommand::Activations {
                backend,
                activations,
                repeats,
                json,
            } => {
                let backend = backend.resolve()?;
                let list = if activations.is_empty() {
                    bench::default_activations()
                } else {
                    activations
                };
                if !json {
                    println!(
                        "{:<24} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
                        "activation", "fwd ms", "builtin", "fwd+bwd", "builtin", "fwd x", "f+b x"
                    );
                }
                let rows = bench::bench_activations(
                    backend,
                    &list,
                    bench::ACTIVATION_SHAPE,
                    repeats as usize,
                    |row| {
                        if !json {
                            println!(
                                "{:<24} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>7.1}x {:>7.1}x",
                                row.activation,
                                row.forward_ms,
                                row.builtin_forward_ms,
                                row.forward_backward_ms,
                                row.builtin_forward_backward_ms,
                                row.builtin_forward_ms / row.forward_ms,
                                row.builtin_forward_backward_ms / row.forward_backward_ms,
                            );
                        }
                    },
                );
                if json {
                    print_json(&rows)?;
                } else {
                    println!(
                        "\n{} elements ({:?}), f32, median of {repeats}; x = speed-up of the fused \
                     kernel over Burn's built-in ops. {}",
                        bench::ACTIVATION_SHAPE.iter().product::<usize>(),
                        bench::ACTIVATION_SHAPE,
                        backend_note(backend)
                    );
                }
                Ok(())
            }
            BenchCommand::Train {
                backend,
                model,
                activations,
                batch_size,
                warmup,
                steps,
                json,
            } => {
                let backend = backend.resolve()?;
                let list = if activations.is_empty() {
                    vec![
                        ActivationConfig::Relu,
                        "gelu".parse().expect("gelu is registered"),
                    ]
                } else {
                    activations
                };
                let model = bench::BenchModel::from(model);
                // Refuse a kind the model cannot take (FReLU in the MLP) before timing anything.
                for activation in &list {
                    model.config(activation).validate().map_err(|error| {
                        anyhow::anyhow!(
                            "--activation {activation} does not fit the {} ({error}); pick \
                             another --model or activation",
                            model.name()
                        )
                    })?;
                }
                let mut rows = Vec::new();
                for activation in &list {
                    let row = bench::bench_train(
                        backend,
                        model,
                        activation,
                        batch_size as usize,
                        warmup as usize,
                        steps as usize,
                    );
                    if !json {
                        println!(
                            "{:<16} batch {:>4}: {:>8.0} training images/s, {:>8.0} evaluation \
                             images/s (batch {}), peak memory {}",
                            row.activation,
                            row.batch_size,
                            row.train_images_per_second,
                            row.eval_images_per_second.unwrap_or(f64::NAN),
                            ::actlab_train::bench::EVAL_BATCH_SIZE,
                            row.peak_memory_mib
                                .map_or("unknown".into(), |m| format!("{m:.0} MiB"))
                        );
                    }
                    rows.push(row);
                }
                if json {
                    print_json(&rows)?;
                } else {
                    println!(
                        "\nThe {} with Adam, {steps} steps after {warmup} warm-up steps, random \
                     in-memory batches. {}",
                        model.description(),
                        backend_note(backend)
                    );
                }
                Ok(())
            }
        }
    }
}
