//! Trains the reference CNN through the library API, as `fmnist train` does.
//!
//! ```text
//! cargo run --release --example train -- --backend flex --activation gelu --epochs 1
//! ```
use std::path::PathBuf;

use burn_activation_lab::activations::ActivationConfig;
use burn_activation_lab::train::{Backend, RunConfig, TrainOptions, train};

fn main() {
    burn_activation_lab::train::backend::keep_freed_memory();
    let mut backend = Backend::Flex;
    let mut config = RunConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--backend" => backend = value.parse().unwrap_or_else(|e: String| fail(&e)),
            "--activation" => config.model.set_activation(
                value
                    .parse::<ActivationConfig>()
                    .unwrap_or_else(|e| fail(&e.to_string())),
            ),
            "--epochs" => {
                config.train.epochs = value
                    .parse()
                    .unwrap_or_else(|_| fail("--epochs takes a whole number"))
            }
            "--train-limit" => {
                config.data.train_limit = value
                    .parse()
                    .unwrap_or_else(|_| fail("--train-limit takes a whole number"))
            }
            other => fail(&format!(
                "unknown flag {other}; use --backend, --activation, --epochs, --train-limit"
            )),
        }
    }
    if let Err(error) = config.validate() {
        fail(&error);
    }
    let out = PathBuf::from("runs/example").join(config.model.activation().name());
    let options = TrainOptions {
        backend,
        out_dir: out,
        resume: false,
        quiet: false,
        stop_after: None,
        diagnostics: false,
    };
    match train(&config, &options) {
        Ok(summary) => println!(
            "{} on {}: test accuracy {:.2}%, {:.0} training images/s",
            summary.activation,
            summary.backend,
            100.0 * summary.test_accuracy,
            summary.train_images_per_second
        ),
        Err(error) => fail(&error.0),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}
