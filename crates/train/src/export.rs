//! `fmnist export`: a trained model's weights as a safetensors file PyTorch users can load.
//!
//! Names are the model's module paths with PyTorch's conventions, so a `torch.nn.Module` with
//! the same attribute names (see `scripts/torch_model.py`) loads the file with `strict=True`:
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
//! The MLP has `dense.*` and `output.*` only. The file's metadata holds `config` (the run's
//! resolved `config.toml`), so the architecture travels with the weights.
//!
//! One semantic difference: Burn's 2-D BatchNorm keeps the *biased* running variance where
//! PyTorch keeps the unbiased one. With batch 128 on 28×28 maps the ratio is 1 + 1/100,352,
//! far below float precision of the result.
use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use models::Model;

use crate::run::dir::write_atomic;

/// One exported tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportTensor {
    /// PyTorch-style name, e.g. `blocks.0.conv.weight`.
    pub name: String,
    /// Shape in PyTorch's layout.
    pub shape: Vec<usize>,
    /// The values (`F32`), or `None` for the i64 `num_batches_tracked` counters (all 0).
    pub values: Option<Vec<f32>>,
}

/// Collects the parameters of a model with PyTorch names and layouts.
pub fn pytorch_tensors(model: &Model) -> Vec<ExportTensor> {
    let mut collector = Collector::default();
    model.visit(&mut collector);
    collector.tensors
}

#[derive(Default)]
struct Collector {
    /// (field, variant or index; the type of the module holding it) down to the parameter.
    path: Vec<(String, String)>,
    tensors: Vec<ExportTensor>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Burn names each step with the type that holds it, e.g. ("weight", "Struct:Linear").
        let Some(((field, parent_type), parents)) = self.path.split_last() else {
            return;
        };
        let parent_type = parent_type.as_str();
        // Enum variants (`Model::Cnn`, `Activation::Prelu`) are not attributes in PyTorch.
        let mut segments: Vec<&str> = parents
            .iter()
            .filter(|(_, container)| !container.starts_with("Enum:"))
            .map(|(name, _)| name.as_str())
            .collect();
        let is_norm = parent_type.starts_with("Struct:BatchNorm");
        let leaf = match field.as_str() {
            "gamma" if is_norm => "weight",
            "beta" if is_norm => "bias",
            other => other,
        };
        segments.push(leaf);
        let name = segments.join(".");

        let mut tensor = param.val();
        let transpose = parent_type == "Struct:Linear" && leaf == "weight" && D == 2;
        if transpose {
            tensor = tensor.transpose();
        }
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("float parameters convert to f32");
        self.tensors.push(ExportTensor {
            name,
            shape,
            values: Some(values),
        });
        if is_norm && leaf == "running_var" {
            let prefix = segments[..segments.len() - 1].join(".");
            self.tensors.push(ExportTensor {
                name: format!("{prefix}.num_batches_tracked"),
                shape: Vec::new(),
                values: None,
            });
        }
    }
}

/// The bytes of a safetensors file holding `tensors`, with string `metadata`.
///
/// Format: an 8-byte little-endian header length, a JSON header (name → dtype, shape, byte
/// offsets; padded with spaces to 8 bytes), then the tensors' little-endian bytes back to back.
pub fn safetensors_bytes(tensors: &[ExportTensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).expect("string map serialises"),
    );
    let mut data: Vec<u8> = Vec::new();
    for tensor in tensors {
        let start = data.len();
        let dtype = match &tensor.values {
            Some(values) => {
                for value in values {
                    data.extend_from_slice(&value.to_le_bytes());
                }
                "F32"
            }
            None => {
                let count: usize = tensor.shape.iter().product();
                for _ in 0..count {
                    data.extend_from_slice(&0i64.to_le_bytes());
                }
                "I64"
            }
        };
        header.insert(
            tensor.name.clone(),
            serde_json::json!({
                "dtype": dtype,
                "shape": tensor.shape,
                "data_offsets": [start, data.len()],
            }),
        );
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = Vec::with_capacity(8 + header.len() + data.len());
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&data);
    bytes
}

/// Writes `model` to `path` as safetensors (atomically), with the run's config as metadata.
pub fn export_safetensors(
    model: &Model,
    config_toml: &str,
    path: &Path,
) -> Result<(), crate::run::RunError> {
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("config".to_string(), config_toml.to_string()),
    ]);
    write_atomic(path, &safetensors_bytes(&pytorch_tensors(model), &metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use models::ModelConfig;

    fn model(text: &str) -> Model {
        #[derive(serde::Deserialize)]
        struct File {
            model: ModelConfig,
        }
        let file: File = toml::from_str(text).unwrap();
        file.model.init(&Device::flex())
    }

    #[test]
    fn reference_cnn_has_pytorch_names_and_layouts() {
        let model = model("[model]\nkind = \"cnn\"");
        let tensors = pytorch_tensors(&model);
        let shapes: Vec<(&str, &[usize])> = tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                ("blocks.0.conv.weight", &[32, 1, 3, 3][..]),
                ("blocks.0.conv.bias", &[32][..]),
                ("blocks.1.conv.weight", &[64, 32, 3, 3][..]),
                ("blocks.1.conv.bias", &[64][..]),
                ("dense.0.linear.weight", &[128, 3136][..]),
                ("dense.0.linear.bias", &[128][..]),
                ("output.weight", &[10, 128][..]),
                ("output.bias", &[10][..]),
            ]
        );
        let count: usize = tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        assert_eq!(count, model.num_params());

        // The linear weight is Burn's [in, out] transposed: element (o, i) = burn (i, o).
        let Model::Cnn(cnn) = &model else { panic!() };
        let burn_weight: Vec<f32> = cnn.output.weight.val().into_data().try_to_vec().unwrap();
        let exported = tensors.iter().find(|t| t.name == "output.weight").unwrap();
        let values = exported.values.as_ref().unwrap();
        for (o, i) in [(0, 0), (3, 17), (9, 127)] {
            assert_eq!(values[o * 128 + i], burn_weight[i * 10 + o]);
        }
    }

    #[test]
    fn batch_norm_prelu_and_aprelu_follow_pytorch_names() {
        let model = model(
            "[model]\nkind = \"cnn\"\nchannels = [4]\nhidden = [8]\nbatch_norm = true\n\
             conv_activations = [{ kind = \"prelu\", per_channel = true }]\n\
             hidden_activations = [\"aprelu\"]",
        );
        let names: Vec<String> = pytorch_tensors(&model)
            .into_iter()
            .map(|t| t.name)
            .collect();
        for expected in [
            "blocks.0.norm.weight",
            "blocks.0.norm.bias",
            "blocks.0.norm.running_mean",
            "blocks.0.norm.running_var",
            "blocks.0.norm.num_batches_tracked",
            "blocks.0.activation.weight",
            "dense.0.activation.fc1.weight",
            "dense.0.activation.bn1.weight",
            "dense.0.activation.bn2.running_var",
            "dense.0.activation.bn2.num_batches_tracked",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("gamma") || n.contains("Cnn"))
        );
    }

    #[test]
    fn safetensors_layout_is_valid() {
        let tensors = vec![
            ExportTensor {
                name: "a".into(),
                shape: vec![2, 1],
                values: Some(vec![1.5, -2.0]),
            },
            ExportTensor {
                name: "n".into(),
                shape: vec![],
                values: None,
            },
        ];
        let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = safetensors_bytes(&tensors, &metadata);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert!(header_len.is_multiple_of(8));
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
        assert_eq!(header["a"]["dtype"], "F32");
        assert_eq!(header["a"]["shape"], serde_json::json!([2, 1]));
        assert_eq!(header["a"]["data_offsets"], serde_json::json!([0, 8]));
        assert_eq!(header["n"]["dtype"], "I64");
        assert_eq!(header["n"]["data_offsets"], serde_json::json!([8, 16]));
        assert_eq!(header["__metadata__"]["format"], "pt");
        let data = &bytes[8 + header_len..];
        assert_eq!(data.len(), 16);
        assert_eq!(f32::from_le_bytes(data[4..8].try_into().unwrap()), -2.0);
    }
}
