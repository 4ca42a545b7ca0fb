//! `fmnist predict`.
use super::*;

/// Top-3 classes with probabilities for 28×28 grayscale PNGs (or any PNG, resized).
#[derive(Args)]
pub struct PredictArgs {
    /// A run directory written by `fmnist train`.
    #[arg(long)]
    pub model: PathBuf,
    /// PNG images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Invert the images (for dark objects on a light background).
    #[arg(long)]
    pub invert: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl PredictArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let Self {
            model,
            images,
            invert,
            backend,
        } = self;
        let backend = backend.resolve()?;
        let (_, network) = ::actlab_train::run::load_trained(&model, backend)?;
        let device = backend.device();
        for path in images {
            let pixels = ::actlab_train::data::image::load_png(&path, invert)?;
            let split = ::actlab_train::data::Split {
                images: pixels,
                labels: vec![0],
            };
            let (batch, _) = split.batch(&[0], &device);
            let probabilities =
                ::actlab_train::burn::tensor::activation::softmax(network.forward(batch), 1);
            let probabilities: Vec<f32> = probabilities
                .into_data()
                .convert::<f32>()
                .try_into_vec()
                .map_err(|e| anyhow::anyhow!("cannot read the probabilities: {e:?}"))?;
            let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<String> = ranked[..3]
                .iter()
                .map(|(class, p)| format!("{} {:.1}%", CLASS_NAMES[*class], 100.0 * p))
                .collect();
            println!("{}: {}", path.display(), top.join(", "));
        }
        Ok(())
    }
}
