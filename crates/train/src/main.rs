//! `fmnist`: train, evaluate and inspect activation functions on Fashion-MNIST.
use std::path::PathBuf;
use std::process::ExitCode;

use activations::ActivationConfig;
use clap::{Parser, Subcommand};
use train::burn::module::Module;
use train::data::{CLASS_NAMES, FILES};
use train::{Backend, RunConfig, TrainOptions};

#[derive(Parser)]
#[command(
    name = "fmnist",
    version,
    about = "Compare activation functions on Fashion-MNIST"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model as a config file says; writes a run directory.
    Train {
        /// The run config (TOML).
        #[arg(long, default_value = "configs/default.toml")]
        config: PathBuf,
        /// flex (default), ndarray, wgpu, or cuda (when compiled in).
        #[arg(long, default_value = "flex", value_parser = parse_backend)]
        backend: Backend,
        /// Override a config key, e.g. --set model.activation=gelu --set train.epochs=3.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// The run directory (default: runs/<activation>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue from the run directory's last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Stop after this epoch, keeping the checkpoint (continue later with --resume).
        #[arg(long, value_name = "EPOCH")]
        stop_after: Option<usize>,
        /// Directory with the four IDX files (overrides data.dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Never download the data.
        #[arg(long)]
        offline: bool,
        /// Skip the SHA-256 check of the data files.
        #[arg(long)]
        no_verify: bool,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Test accuracy, per-class accuracy and confusion matrix of a trained model.
    Eval {
        /// A run directory written by `fmnist train`.
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "flex", value_parser = parse_backend)]
        backend: Backend,
        /// Directory with the four IDX files.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Top-3 classes with probabilities for 28×28 grayscale PNGs (or any PNG, resized).
    Predict {
        /// A run directory written by `fmnist train`.
        #[arg(long)]
        model: PathBuf,
        /// PNG images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Invert the images (for dark objects on a light background).
        #[arg(long)]
        invert: bool,
        #[arg(long, default_value = "flex", value_parser = parse_backend)]
        backend: Backend,
    },
    /// Where the data was found, checksums, counts per class.
    Data {
        /// Directory with the four IDX files.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Never download.
        #[arg(long)]
        offline: bool,
    },
    /// Every activation in the registry with its parameters and defaults.
    Activations,
    /// Train every activation × seed of a compare config, then write the report.
    Compare {
        /// The compare config (TOML): a run config plus [compare] activations and seeds.
        #[arg(long, default_value = "configs/compare.toml")]
        config: PathBuf,
        #[arg(long, default_value = "flex", value_parser = parse_backend)]
        backend: Backend,
        /// Override a config key, e.g. --set compare.seeds=[1] --set train.epochs=1.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// The sweep directory: one subdirectory per run, and the report.
        #[arg(long, default_value = "runs/compare")]
        out: PathBuf,
        /// Run only every N-th run starting at I (0-based), e.g. $SLURM_ARRAY_TASK_ID/N.
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<train::compare::Shard>,
        /// Directory with the four IDX files (overrides data.dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Merge finished runs from one or more sweep directories into one report.
    Report {
        /// Sweep directories (written by `fmnist compare`, possibly by several shards).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the report (default: the first directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Plot activations and their derivatives on [-6, 6] (default: every registry kind).
    Plot {
        /// Directory for activations.png and activations.svg.
        #[arg(long, default_value = "runs/plots")]
        out: PathBuf,
        /// Only these (names or TOML tables, e.g. 'relu' '{ kind = "elu", alpha = 0.5 }').
        activations: Vec<String>,
    },
    /// Benchmarks: activation kernels (fused vs Burn's built-in ops) and training speed.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Write a trained model's weights for PyTorch (names: see scripts/torch_model.py).
    Export {
        /// A run directory written by `fmnist train`.
        #[arg(long)]
        model: PathBuf,
        /// Only `safetensors` for now.
        #[arg(long, default_value = "safetensors", value_parser = ["safetensors"])]
        format: String,
        /// The file to write (default: model.safetensors in the run directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Forward and forward+backward milliseconds on a 4M-element f32 tensor, per activation,
    /// through the fused kernels and through Burn's built-in ops, side by side.
    Activations {
        #[arg(long, default_value = "flex", value_parser = parse_backend)]
        backend: Backend,
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
    /// Training images/s of the reference CNN (warm-up excluded) and peak memory.
    Train {
        #[arg(long, default_value = "flex", value_parser = parse_backend)]
        backend: Backend,
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

fn parse_backend(name: &str) -> Result<Backend, String> {
    name.parse()
}

fn parse_shard(text: &str) -> Result<train::compare::Shard, String> {
    text.parse()
}

/// An activation from the command line: a name, or an inline TOML table.
fn parse_activation(text: &str) -> Result<ActivationConfig, String> {
    if text.trim_start().starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Slot {
            activation: ActivationConfig,
        }
        toml::from_str::<Slot>(&format!("activation = {text}"))
            .map(|slot| slot.activation)
            .map_err(|e| format!("{text}: {e}"))
    } else {
        text.parse()
            .map_err(|e: activations::ParseActivationError| e.to_string())
    }
}

fn main() -> ExitCode {
    // `fmnist eval ... | head` should end quietly like other Unix tools, not panic on EPIPE.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    train::backend::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Train {
            config,
            backend,
            mut sets,
            out,
            resume,
            stop_after,
            data_dir,
            offline,
            no_verify,
            quiet,
        } => {
            sets.extend(data_dir_override(data_dir));
            if offline {
                sets.push("data.offline=true".into());
            }
            if no_verify {
                sets.push("data.verify=false".into());
            }
            let config = RunConfig::load(&config, &sets).map_err(|e| e.0)?;
            let out =
                out.unwrap_or_else(|| PathBuf::from("runs").join(config.model.activation().name()));
            let summary = train::train(
                &config,
                &TrainOptions {
                    backend,
                    out_dir: out.clone(),
                    resume,
                    quiet,
                    stop_after,
                    diagnostics: false,
                },
            )
            .map_err(|e| e.0)?;
            if !summary.complete {
                println!(
                    "stopped after epoch {} with test accuracy {:.2}%; the checkpoint is in {}: \
                     continue with the same command and --resume",
                    summary.epochs,
                    100.0 * summary.test_accuracy,
                    out.display()
                );
                return Ok(());
            }
            println!(
                "{}: test accuracy {:.2}% (loss {:.4}) after {} epochs on {}, {:.0} training images/s; \
                 run directory {}",
                summary.activation,
                100.0 * summary.test_accuracy,
                summary.test_loss,
                summary.epochs,
                summary.backend,
                summary.train_images_per_second,
                out.display()
            );
            Ok(())
        }
        Command::Eval {
            model,
            backend,
            data_dir,
        } => {
            let (mut config, network) =
                train::training::load_trained(&model, backend).map_err(|e| e.0)?;
            if data_dir.is_some() {
                config.data.dir = data_dir;
            }
            // The whole test set, whatever subset the run was trained and tested on.
            config.data.train_limit = 0;
            config.data.test_limit = 0;
            config.data.validation = 0;
            let data = train::training::load_data(&config).map_err(|e| e.0)?;
            let result = train::training::evaluate_split(&network, &data.test, backend);
            println!(
                "test accuracy {:.2}% (loss {:.4}) on {} images",
                100.0 * result.accuracy,
                result.loss,
                data.test.len()
            );
            println!("\nper-class accuracy:");
            for (name, accuracy) in CLASS_NAMES.iter().zip(result.per_class_accuracy()) {
                println!("  {name:<12} {:>6.2}%", 100.0 * accuracy);
            }
            println!("\nconfusion matrix (rows: true class, columns: predicted):");
            print!("{:<12}", "");
            for c in 0..10 {
                print!("{c:>6}");
            }
            println!();
            for (name, row) in CLASS_NAMES.iter().zip(&result.confusion) {
                print!("{name:<12}");
                for count in row {
                    print!("{count:>6}");
                }
                println!();
            }
            Ok(())
        }
        Command::Predict {
            model,
            images,
            invert,
            backend,
        } => {
            let (_, network) = train::training::load_trained(&model, backend).map_err(|e| e.0)?;
            let device = backend.device();
            for path in images {
                let pixels = train::image::load_png(&path, invert).map_err(|e| e.0)?;
                let split = train::data::Split {
                    images: pixels,
                    labels: vec![0],
                };
                let (batch, _) = split.batch(&[0], &device);
                let probabilities =
                    train::burn::tensor::activation::softmax(network.forward(batch), 1);
                let probabilities: Vec<f32> = probabilities
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec()
                    .map_err(|e| format!("{e:?}"))?;
                let mut ranked: Vec<(usize, f32)> =
                    probabilities.iter().copied().enumerate().collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let top: Vec<String> = ranked[..3]
                    .iter()
                    .map(|(class, p)| format!("{} {:.1}%", CLASS_NAMES[*class], 100.0 * p))
                    .collect();
                println!("{}: {}", path.display(), top.join(", "));
            }
            Ok(())
        }
        Command::Data { data_dir, offline } => {
            let options = train::data::DataOptions {
                dir: data_dir,
                offline,
                ..Default::default()
            };
            let located = train::data::locate(&options).map_err(|e| e.0)?;
            println!("found in {} ({})", located.dir.display(), located.how);
            for file in &FILES {
                let path = located.path(file);
                train::data::source::read_verified(&path, file, true).map_err(|e| e.0)?;
                println!("  {}: sha256 verified ({})", file.name, path.display());
            }
            for (name, train) in [("train", true), ("test", false)] {
                let split =
                    train::data::dataset::read_split(&located, train, false).map_err(|e| e.0)?;
                println!("\n{name}: {} images", split.len());
                for (class, count) in CLASS_NAMES.iter().zip(split.class_counts()) {
                    println!("  {class:<12} {count:>6}");
                }
            }
            Ok(())
        }
        Command::Compare {
            config,
            backend,
            mut sets,
            out,
            shard,
            data_dir,
            quiet,
        } => {
            sets.extend(data_dir_override(data_dir));
            let config = train::compare::CompareConfig::load(&config, &sets).map_err(|e| e.0)?;
            let shard = shard.unwrap_or_default();
            let runs = config.plan();
            let mine = runs.iter().filter(|r| shard.takes(r.index)).count();
            if !quiet {
                eprintln!(
                    "{} runs ({} activations × {} seeds), {} of them in this shard; {} epochs each; \
                     output {}",
                    runs.len(),
                    config.compare.activations.len(),
                    config.compare.seeds.len(),
                    mine,
                    config.base.train.epochs,
                    out.display()
                );
            }
            let statuses = train::compare::run_sweep(
                &config,
                &train::compare::CompareOptions {
                    backend,
                    out_dir: out.clone(),
                    shard,
                    quiet,
                },
            )
            .map_err(|e| e.0)?;
            let finished = train::compare::collect_runs(std::slice::from_ref(&out))?;
            let pending = statuses.len() - finished.len().min(statuses.len());
            train::report::write_report(&finished, &out, &backend_note(backend))?;
            println!(
                "{} of {} runs finished; report: {}{}",
                finished.len(),
                statuses.len(),
                out.join("report.md").display(),
                if pending > 0 {
                    format!(
                        " ({pending} runs belong to other shards: merge with `fmnist report DIR...`)"
                    )
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Report { dirs, out } => {
            let runs = train::compare::collect_runs(&dirs)?;
            let out = out.unwrap_or_else(|| dirs[0].clone());
            let backends: Vec<String> = runs.iter().map(|r| r.summary.backend.clone()).collect();
            let note = match backends.first() {
                Some(first) if backends.iter().all(|b| b == first) => {
                    format!("Backend: {first}.")
                }
                _ => "Runs come from several backends: compare speeds with care.".into(),
            };
            train::report::write_report(&runs, &out, &note)?;
            println!(
                "{} finished runs from {} director{}; report: {}",
                runs.len(),
                dirs.len(),
                if dirs.len() == 1 { "y" } else { "ies" },
                out.join("report.md").display()
            );
            Ok(())
        }
        Command::Plot { out, activations } => {
            let list = if activations.is_empty() {
                ActivationConfig::catalog()
            } else {
                activations
                    .iter()
                    .map(|a| parse_activation(a))
                    .collect::<Result<Vec<_>, _>>()?
            };
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            train::plots::activation_grid(&list, &out.join("activations"))?;
            println!("wrote {} and .svg", out.join("activations.png").display());
            Ok(())
        }
        Command::Export { model, format, out } => {
            let (config, network) =
                train::training::load_trained(&model, Backend::Flex).map_err(|e| e.0)?;
            let out = out.unwrap_or_else(|| model.join(format!("model.{format}")));
            train::export::export_safetensors(&network, &config.to_toml(), &out)?;
            println!(
                "wrote {} ({} parameters); load it in PyTorch with \
                 `python scripts/torch_model.py {}`",
                out.display(),
                network.num_params(),
                model.display()
            );
            Ok(())
        }
        Command::Bench { what } => run_bench(what),
        Command::Activations => {
            println!("{:<12} {:<44} description", "kind", "parameters (defaults)");
            for config in ActivationConfig::catalog() {
                println!(
                    "{:<12} {:<44} {}",
                    config.name(),
                    parameters(&config),
                    config.description()
                );
            }
            println!(
                "\nIn a config: activation = \"gelu\", or a table: \
                 activation = {{ kind = \"leaky_relu\", negative_slope = 0.1 }}"
            );
            Ok(())
        }
    }
}

fn run_bench(what: BenchCommand) -> Result<(), String> {
    use train::bench;
    match what {
        BenchCommand::Activations {
            backend,
            activations,
            repeats,
            json,
        } => {
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
            activations,
            batch_size,
            warmup,
            steps,
            json,
        } => {
            let list = if activations.is_empty() {
                vec![
                    ActivationConfig::Relu,
                    "gelu".parse().expect("gelu is registered"),
                ]
            } else {
                activations
            };
            let mut rows = Vec::new();
            for activation in &list {
                let row = bench::bench_train(
                    backend,
                    activation,
                    batch_size as usize,
                    warmup as usize,
                    steps as usize,
                );
                if !json {
                    println!(
                        "{:<16} batch {:>4}: {:>8.0} training images/s, peak memory {}",
                        row.activation,
                        row.batch_size,
                        row.train_images_per_second,
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
                    "\nReference CNN (conv32-conv64-fc128, Adam), {steps} steps after {warmup} \
                     warm-up steps, random in-memory batches. {}",
                    backend_note(backend)
                );
            }
            Ok(())
        }
    }
}

/// Benchmark rows as one pretty-printed JSON array on stdout.
fn print_json(rows: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// `negative_slope = 0.01, ...` from the config's own serialisation, so the listing can never
/// disagree with what the parser accepts.
fn parameters(config: &ActivationConfig) -> String {
    let value = toml::Value::try_from(config).expect("activation configs serialise");
    let table = value.as_table().expect("configs serialise to tables");
    let parts: Vec<String> = table
        .iter()
        .filter(|(key, _)| key.as_str() != "kind")
        .map(|(key, value)| format!("{key} = {value}"))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn backend_note(backend: Backend) -> String {
    format!(
        "Backend: {backend}, on a machine with {} CPU threads.",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// `--data-dir DIR` as the `--set` it stands for.
fn data_dir_override(dir: Option<PathBuf>) -> Option<String> {
    dir.map(|dir| format!("data.dir={}", toml_string(&dir.display().to_string())))
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.into()).to_string()
}
