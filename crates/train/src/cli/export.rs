//! `fmnist export`.
use super::*;

/// Write a trained model's weights for PyTorch (names: see scripts/torch_model.py).
#[derive(Args)]
pub struct ExportArgs {
    /// A run directory written by `fmnist train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Only `safetensors` for now.
    #[arg(long, default_value = "safetensors", value_parser = ["safetensors"])]
    pub format: String,
    /// The file to write (default: model.safetensors in the run directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl ExportArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self { model, format, out } = self;
        let (config, network) = ::actlab_train::run::load_trained(&model, Backend::Flex)?;
        let out = out.unwrap_or_else(|| model.join(format!("model.{format}")));
        ::actlab_train::export::export_safetensors(&network, &config.to_toml(), &out)?;
        println!(
            "wrote {} ({} parameters); load it in PyTorch with \
             `python scripts/torch_model.py {}`",
            out.display(),
            network.num_params(),
            model.display()
        );
        Ok(())
    }
}
