//! `fmnist inspect`.
use super::*;

/// What a trained model's activations do on the test set: dead units, pre-activation
/// distributions, PReLU's learned slopes and APReLU's per-sample slopes.
#[derive(Args)]
pub struct InspectArgs {
    /// A run directory written by `fmnist train` (or `fmnist import`).
    #[arg(long)]
    pub model: PathBuf,
    /// Where to write summary.json, report.md and the plots (default: MODEL/inspect).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Directory with the four IDX files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl InspectArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let backend = self.backend.resolve()?;
        let (mut config, network) = ::actlab_train::run::load_trained(&self.model, backend)?;
        if self.data_dir.is_some() {
            config.data.dir = self.data_dir;
        }
        // The whole test set, whatever subset the run was trained and tested on.
        config.data.train_limit = 0;
        config.data.test_limit = 0;
        config.data.validation = 0;
        let data = ::actlab_train::run::load_data(&config)?;
        let inspection = ::actlab_train::inspect::inspect(&network, &data.test, backend);
        let out = self.out.unwrap_or_else(|| self.model.join("inspect"));
        ::actlab_train::report::write_inspection(
            &inspection,
            &self.model,
            &format!(
                "{} with {}",
                config.model,
                config
                    .model
                    .mixed_label()
                    .unwrap_or_else(|| config.model.activation().to_string())
            ),
            &out,
        )?;
        for slot in &inspection.slots {
            let mut line = format!(
                "{:<10} {:<12} dead {:>5.1}%  zeros {:>5.1}%",
                slot.slot,
                slot.activation,
                100.0 * slot.dead_fraction,
                100.0 * slot.zero_fraction
            );
            if let Some(alpha) = &slot.aprelu {
                line += &format!(
                    "  α mean {:.3}, spread within classes {:.3}, between classes {:.3}",
                    alpha.mean, alpha.within_class_std, alpha.between_class_std
                );
            }
            if let Some(slopes) = &slot.prelu_slopes {
                let mean = slopes.iter().sum::<f32>() / slopes.len().max(1) as f32;
                line += &format!("  slope mean {mean:.3} over {}", slopes.len());
            }
            println!("{line}");
        }
        println!(
            "\n{} test images; wrote {}",
            inspection.images,
            out.join("report.md").display()
        );
        Ok(())
    }
}
