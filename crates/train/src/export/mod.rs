//! Weights as safetensors with PyTorch's names and layouts, both ways: `fmnist export` writes
//! them for PyTorch, `fmnist import` reads PyTorch-trained ones (`scripts/torch_model.py
//! --train`). Both go through burn-store's `SafetensorsStore` with Burn's own
//! `BurnToPyTorchAdapter`/`PyTorchToBurnAdapter` (Linear weights transposed, BatchNorm
//! `gamma`/`beta` as `weight`/`bias`) and enum variants left out of the paths.
//!
//! Names are the model's module paths, so a `torch.nn.Module` with the same attribute names
//! (see `scripts/torch_model.py`) loads the file with `strict=True`:
//!
//! | tensor | shape | from Burn |
//! |---|---|---|
//! | `blocks.{i}.conv.weight`, `.bias` | `[out, in, 3, 3]`, `[out]` | as is |
//! | `blocks.{i}.norm.weight`, `.bias` | `[C]` | BatchNorm `gamma`, `beta` |
//! | `blocks.{i}.norm.running_mean`, `.running_var` | `[C]` | as is |
//! | `blocks.{i}.norm.num_batches_tracked` | `[]` (i64) | 0: unused with a fixed momentum |
//! | `dense.{j}.linear.weight`, `.bias` | `[out, in]`, `[out]` | Linear weight transposed |
//! | `output.weight`, `.bias` | `[10, in]`, `[10]` | Linear weight transposed |
//! | `….activation.weight` | `[1]` or `[C]` | PReLU slopes |
//! | `….activation.learnable_beta` | `[1]` | SiLU's learned β |
//! | `….activation.fc1.weight`, `bn1.weight`, … | | APReLU's SE network, same rules |
//!
//! The MLP has `dense.*` and `output.*` only. The ResNet has `stem.weight`,
//! `blocks.{i}.{norm1,activation1,conv1,norm2,activation2,conv2,shortcut}.*` (convolutions
//! without bias, `shortcut` only where a block projects), `head_norm.*`, `head_activation.*`
//! and `output.*`: the attribute names of `ResNet` in `scripts/torch_model.py`. The file's metadata holds `config` (the run's
//! resolved `config.toml`), so the architecture travels with the weights.
//!
//! Running variances: the CNN's and the ResNet's BatchNorms keep the *unbiased* batch variance
//! in their running estimate, as PyTorch does (`models::kernels::batch_norm`). APReLU's own
//! BatchNorm1d (`activation.bn1`, …) is still Burn's, which keeps the biased one: on its
//! `[N, C]` input the ratio is `N / (N − 1)`, 1 + 1/127 at batch 128.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod limits;

pub use limits::{MAX_SAFETENSORS_BYTES, MAX_SAFETENSORS_HEADER_BYTES, MAX_TENSOR_ELEMENTS};
use limits::{check_limits, read};

use burn::store::{
    BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
    SafetensorsStoreError,
};
use models::Model;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::config::RunConfig;
use crate::run::dir::write_atomic;
use crate::run::{RunDir, RunError};

/// PyTorch's BatchNorm counter, which Burn does not have: exported as 0, ignored on import.
const NUM_BATCHES_TRACKED: &str = "num_batches_tracked";

/// APReLU's and Meta-ACON's `bn1`/`bn2` and FReLU's `bn_frelu` are the activations crate's own
/// `BatchNorm1d`, whose `gamma`/`beta` Burn's adapters do not know (they rename those of
/// `burn::nn::BatchNorm` only): renamed by key remapping, (Burn pattern, PyTorch name) each way.
const ACTIVATION_NORMS: [(&str, &str, &str, &str); 2] = [
    (
        r"\.(bn\d|bn_frelu)\.gamma$",
        ".$1.weight",
        r"\.(bn\d|bn_frelu)\.weight$",
        ".$1.gamma",
    ),
    (
        r"\.(bn\d|bn_frelu)\.beta$",
        ".$1.bias",
        r"\.(bn\d|bn_frelu)\.bias$",
        ".$1.beta",
    ),
];

/// Weights that cannot be exported or imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// burn-store could not collect the model's tensors or serialise them.
    #[error("cannot export the weights")]
    Store(#[source] SafetensorsStoreError),
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a safetensors file (bad header, offsets outside the file, …).
    #[error("{} is not a valid safetensors file", path.display())]
    NotSafetensors {
        /// The file.
        path: PathBuf,
        /// The safetensors parser's error.
        source: safetensors::SafeTensorError,
    },
    /// A file over one of the limits on untrusted input ([`MAX_SAFETENSORS_BYTES`],
    /// [`MAX_SAFETENSORS_HEADER_BYTES`], [`MAX_TENSOR_ELEMENTS`]).
    #[error(
        "{} is refused: {what}, over the limit {limit}; it cannot be the weights of a network \
         these configs build",
        path.display()
    )]
    Limit {
        /// The file.
        path: PathBuf,
        /// What is too large.
        what: String,
        /// The limit's name.
        limit: &'static str,
    },
    /// The file's tensors do not fit the model of the config: missing, extra, or other shapes.
    #[error(
        "{} does not fit the model of this config: {problems}; give the config the weights were \
         trained with (--config), or export them again",
        path.display()
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not fit, tensor by tensor.
        problems: String,
    },
    /// Weights that fit the model but hold NaN or infinities.
    #[error("{} cannot be used: {reason}", path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Which parameters, and what to do.
        reason: String,
    },
    /// A config given neither on the command line nor in the file's metadata.
    #[error(
        "{} carries no config in its metadata; pass the model's config with --config",
        path.display()
    )]
    NoConfig {
        /// The file.
        path: PathBuf,
    },
    /// The exported file, or the imported run, could not be written.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The config for the imported weights cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Another process writes the run directory to import into.
    #[error(transparent)]
    Lock(#[from] crate::run::LockError),
    /// The run directory to import into already holds weights.
    #[error(
        "{} already holds a model; import into a new --out directory (nothing was changed)",
        dir.display()
    )]
    RunExists {
        /// The run directory.
        dir: PathBuf,
    },
}

/// The safetensors bytes of `model` with PyTorch names and layouts, the run's resolved config
/// in the metadata (`config`), and a zero `num_batches_tracked` beside each BatchNorm's
/// running statistics, so PyTorch's `load_state_dict(strict=True)` finds every buffer.
pub fn safetensors_bytes(model: &Model, config_toml: &str) -> Result<Vec<u8>, ExportError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .clear_metadata()
        .metadata("format", "pt")
        .metadata("config", config_toml);
    for (burn, pytorch, _, _) in ACTIVATION_NORMS {
        store = store.with_key_remapping(burn, pytorch);
    }
    model.save_into(&mut store).map_err(ExportError::Store)?;
    let bytes = store.get_bytes().map_err(ExportError::Store)?;
    // burn-store's own output: it parses, and each running_var gets its counter.
    let parsed = SafeTensors::deserialize(&bytes).expect("burn-store writes valid safetensors");
    let (_, header) = SafeTensors::read_metadata(&bytes).expect("and a valid header");
    let zero = 0i64.to_le_bytes();
    let mut tensors: Vec<(String, TensorView<'_>)> = parsed.tensors();
    let counters: Vec<String> = tensors
        .iter()
        .filter_map(|(name, _)| name.strip_suffix(".running_var"))
        .map(|prefix| format!("{prefix}.{NUM_BATCHES_TRACKED}"))
        .collect();
    for name in counters {
        let view = TensorView::new(Dtype::I64, Vec::new(), &zero).expect("a scalar of 8 bytes");
        tensors.push((name, view));
    }
    let metadata: Option<HashMap<String, String>> = header.metadata().clone();
    Ok(safetensors::serialize(tensors, metadata).expect("valid views serialise"))
}

/// Writes `model` to `path` as safetensors (atomically), with the run's config as metadata.
pub fn export_safetensors(
    model: &Model,
    config_toml: &str,
    path: &Path,
) -> Result<(), ExportError> {
    Ok(write_atomic(path, &safetensors_bytes(model, config_toml)?)?)
}

/// The `config` metadata of a safetensors file written by [`export_safetensors`] (or by
/// `scripts/torch_model.py --train`), if it has one.
pub fn config_in(path: &Path) -> Result<Option<String>, ExportError> {
    let bytes = read(path)?;
    let (_, header) = parse(path, &bytes)?;
    Ok(header
        .metadata()
        .as_ref()
        .and_then(|metadata| metadata.get("config").cloned()))
}

/// Checks the limits, parses the header and checks every tensor's offsets against the file
/// before burn-store sees the bytes.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(SafeTensors<'a>, safetensors::tensor::Metadata), ExportError> {
    check_limits(path, bytes)?;
    let invalid = |source| ExportError::NotSafetensors {
        path: path.into(),
        source,
    };
    let parsed = SafeTensors::deserialize(bytes).map_err(invalid)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(invalid)?;
    Ok((parsed, header))
}

/// `fmnist import`: the weights of `from` (PyTorch names) loaded into the model of `config`
/// (by default the config in the file's metadata, with `overrides`) and written as a new run
/// directory `out` (`config.toml` and `model.bpk`), which `fmnist eval`, `predict` and
/// `export` then use like a trained run. Returns the config used.
pub fn import_run(
    from: &Path,
    config: Option<&Path>,
    overrides: &[String],
    out: &Path,
) -> Result<RunConfig, ExportError> {
    let config = match config {
        Some(path) => RunConfig::load(path, overrides)?,
        None => {
            let text =
                config_in(from)?.ok_or_else(|| ExportError::NoConfig { path: from.into() })?;
            RunConfig::parse(
                &text,
                &format!("the config in {}", from.display()),
                overrides,
            )?
        }
    };
    let model = import_safetensors(config.model.init(&burn::tensor::Device::flex()), from)?;
    let run = RunDir::create(out)?;
    let _lock = run.lock()?;
    if run.model_path().exists() || run.config_path().exists() {
        return Err(ExportError::RunExists { dir: out.into() });
    }
    run.write_weights(&config, &model)?;
    Ok(config)
}

/// Loads PyTorch-named safetensors weights into `model` (built from the config they were
/// trained with). Every tensor of the model must be in the file with its shape, and the file
/// may hold nothing else but PyTorch's `num_batches_tracked` counters.
pub fn import_safetensors(mut model: Model, path: &Path) -> Result<Model, ExportError> {
    let bytes = read(path)?;
    parse(path, &bytes)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .skip_enum_variants(true)
        .allow_partial(true);
    for (_, _, pytorch, burn) in ACTIVATION_NORMS {
        store = store.with_key_remapping(pytorch, burn);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|error| ExportError::Mismatch {
            path: path.into(),
            problems: error.to_string(),
        })?;
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(
        result
            .missing
            .iter()
            .map(|(name, _)| format!("{name} is missing")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .filter(|name| !name.ends_with(NUM_BATCHES_TRACKED))
            .map(|name| format!("{name} is not in the model")),
    );
    if !problems.is_empty() {
        return Err(ExportError::Mismatch {
            path: path.into(),
            problems: problems.join("; "),
        });
    }
    if let Some(reason) = crate::run::dir::non_finite_reason(&model) {
        return Err(ExportError::NonFinite {
            path: path.into(),
            reason,
        });
    }
    Ok(model)
}

#[cfg(test)]
mod tests;
