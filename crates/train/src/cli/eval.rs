//! `fmnist eval`.
use super::*;

/// Test accuracy, per-class accuracy and confusion matrix of a trained model.
#[derive(Args)]
pub struct EvalArgs {
    /// A run directory written by `fmnist train`.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Directory with the four IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print the evaluation as one JSON object on stdout instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// `fmnist eval --json`.
#[derive(serde::Serialize)]
struct EvalOutput<'a> {
    run_dir: &'a std::path::Path,
    backend: String,
    images: usize,
    test_accuracy: f64,
    test_loss: f64,
    classes: &'a [&'a str],
    /// In the order of `classes`.
    per_class_accuracy: Vec<f64>,
    /// `[true][predicted]`, in the order of `classes`.
    confusion: &'a [Vec<u64>],
}

impl EvalArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self {
            model,
            backend,
            data_dir,
            json,
        } = self;
        let backend = backend.resolve()?;
        let (mut config, network) = ::actlab_train::run::load_trained(&model, backend)?;
        if data_dir.is_some() {
            config.data.dir = data_dir;
        }
        // The whole test set, whatever subset the run was trained and tested on.
        config.data.train_limit = 0;
        config.data.test_limit = 0;
        config.data.validation = 0;
        let data = ::actlab_train::run::load_data(&config)?;
        let result = ::actlab_train::run::evaluate_split(&network, &data.test, backend);
        if json {
            return print_json(&EvalOutput {
                run_dir: &model,
                backend: backend.to_string(),
                images: data.test.len(),
                test_accuracy: result.accuracy,
                test_loss: result.loss,
                classes: &CLASS_NAMES,
                per_class_accuracy: result.per_class_accuracy(),
                confusion: &result.confusion,
            });
        }
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
