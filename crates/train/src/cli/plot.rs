//! `fmnist plot`.
use super::*;
use anyhow::Context;

/// Plot activations and their derivatives on [-6, 6] (default: every registry kind).
#[derive(Args)]
pub struct PlotArgs {
    /// Directory for activations.png and activations.svg.
    #[arg(long, default_value = "runs/plots")]
    pub out: PathBuf,
    /// Only these (names or TOML tables, e.g. 'relu' '{ kind = "elu", alpha = 0.5 }').
    pub activations: Vec<String>,
}

impl PlotArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self { out, activations } = self;
        let list = if activations.is_empty() {
            ActivationConfig::catalog()
        } else {
            activations
                .iter()
                .map(|a| parse_activation(a))
                .collect::<Result<Vec<_>, _>>()?
        };
        for (activation, why) in ::actlab_train::report::plots::left_out(&list) {
            eprintln!(
                "note: {} has no curve here: {why}",
                ::actlab_train::sweep::label(&activation)
            );
        }
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        ::actlab_train::report::plots::activation_grid(&list, &out.join("activations"))?;
        println!("wrote {} and .svg", out.join("activations.png").display());
        Ok(())
    }
}
