//! `fmnist eval`.
use super::*;

/// Test accuracy, per-class accuracy and confusion matrix of a trained model.
#[derive(Args)]
pub struct EvalArgs {
    /// A run directory written by `fmnist train`.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value = "flex", value_parser = parse_backend)]
    pub backend: Backend,
    /// Directory with the four IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl EvalArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self {
            model,
            backend,
            data_dir,
        } = self;
        let (mut config, network) = ::train::run::load_trained(&model, backend)?;
        if data_dir.is_some() {
            config.data.dir = data_dir;
        }
        // The whole test set, whatever subset the run was trained and tested on.
        config.data.train_limit = 0;
        config.data.test_limit = 0;
        config.data.validation = 0;
        let data = ::train::run::load_data(&config)?;
        let result = ::train::run::evaluate_split(&network, &data.test, backend);
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
}
