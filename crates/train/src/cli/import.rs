//! `fmnist import`.
use super::*;

/// Bring PyTorch-trained weights (safetensors, PyTorch names) into a new run directory.
#[derive(Args)]
pub struct ImportArgs {
    /// A safetensors file with PyTorch names (`scripts/torch_model.py --train`, or `fmnist
    /// export`).
    #[arg(long = "from")]
    pub from: PathBuf,
    /// The run config of the weights' model (default: the config in the file's metadata).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config value, e.g. `--set model.activation=gelu`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// The new run directory to write (`config.toml`, `model.bpk`).
    #[arg(long)]
    pub out: PathBuf,
}

impl ImportArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self {
            from,
            config,
            sets,
            out,
        } = self;
        let config = ::actlab_train::export::import_run(&from, config.as_deref(), &sets, &out)?;
        println!(
            "imported {} into {} ({} parameters); evaluate it with `fmnist eval --model {}`",
            from.display(),
            out.display(),
            config.model.init(&Backend::Flex.device()).num_params(),
            out.display()
        );
        Ok(())
    }
}
