use activations::burn::module::Module;
use activations::burn::tensor::Tensor;

use crate::{Cnn, IMAGE_SIZE, Mlp, Resnet};

/// A network built from a [`ModelConfig`](crate::ModelConfig).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Model {
    /// See [`Cnn`].
    Cnn(Cnn),
    /// See [`Mlp`].
    Mlp(Mlp),
    /// See [`Resnet`].
    Resnet(Resnet),
}

/// A layer's weight parameter, by the rank of its tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerWeight {
    /// A convolution's `[out, in, k, k]` weight.
    Conv(activations::burn::module::ParamId),
    /// A linear layer's `[in, out]` weight.
    Dense(activations::burn::module::ParamId),
}

/// One activation slot's input and output, as `[N, C, H, W]` (dense layers: `[N, units, 1, 1]`),
/// so statistics per unit are reductions over dims 0, 2 and 3.
#[derive(Clone, Debug)]
pub struct Tap {
    /// `conv1`, `conv2`, ..., `fc1`, ... (ResNet: `s1b1.1`, `s1b1.2`, ..., `head`)
    pub name: String,
    /// Pre-activation.
    pub pre: Tensor<4>,
    /// Post-activation.
    pub post: Tensor<4>,
}

impl Tap {
    pub(crate) fn new(name: String, pre: Tensor<4>, post: Tensor<4>) -> Self {
        Self { name, pre, post }
    }
}

/// Logits and taps from [`Model::forward_with_taps`].
#[derive(Clone, Debug)]
pub struct ModelOutput {
    /// Class logits `[N, 10]`.
    pub logits: Tensor<2>,
    /// One entry per activation slot, in network order.
    pub taps: Vec<Tap>,
}

impl Model {
    fn images<const D: usize>(images: Tensor<D>) -> Tensor<4> {
        let dims = images.dims();
        let per_image: usize = dims[1..].iter().product();
        assert!(
            (D == 3 || D == 4) && per_image == IMAGE_SIZE * IMAGE_SIZE,
            "expected images [N, 1, 28, 28] or [N, 28, 28], got {dims:?}"
        );
        images.reshape([dims[0], 1, IMAGE_SIZE, IMAGE_SIZE])
    }

    fn run(&self, images: Tensor<4>, taps: &mut Option<Vec<crate::Tap>>) -> Tensor<2> {
        match self {
            Self::Cnn(m) => m.run(images, taps),
            Self::Mlp(m) => m.run(images, taps),
            Self::Resnet(m) => m.run(images, taps),
        }
    }

    /// Class logits `[N, 10]` for images `[N, 1, 28, 28]` or `[N, 28, 28]`.
    pub fn forward<const D: usize>(&self, images: Tensor<D>) -> Tensor<2> {
        self.run(Self::images(images), &mut None)
    }

    /// Logits plus each activation slot's pre- and post-activation tensors.
    pub fn forward_with_taps<const D: usize>(&self, images: Tensor<D>) -> ModelOutput {
        let mut taps = Some(Vec::new());
        let logits = self.run(Self::images(images), &mut taps);
        ModelOutput {
            logits,
            taps: taps.unwrap_or_default(),
        }
    }

    /// The activation module of each slot, in the order of [`slot_names`](Self::slot_names).
    pub fn slot_activations(&self) -> Vec<&activations::Activation> {
        match self {
            Self::Cnn(m) => m
                .blocks
                .iter()
                .map(|b| &b.activation)
                .chain(m.dense.iter().map(|d| &d.activation))
                .collect(),
            Self::Mlp(m) => m.dense.iter().map(|d| &d.activation).collect(),
            Self::Resnet(m) => m.slot_activations(),
        }
    }

    /// The parameters holding a NaN or an infinity, by their path in the module as
    /// `fmnist export` names it (`blocks.0.activation.p1`), with the count of such values: a loaded file that is
    /// damaged or comes from a run that diverged. Empty for a usable model.
    pub fn non_finite_parameters(&self) -> Vec<(String, usize)> {
        struct Finder {
            path: Vec<String>,
            found: Vec<(String, usize)>,
        }
        impl activations::burn::module::ModuleVisitor for Finder {
            fn enter_module(&mut self, name: &str, container_type: &str) {
                // An enum's variant (`Cnn`, `AconC`) is no part of the exported names.
                let variant = container_type.starts_with("Enum:");
                self.path.push(if variant {
                    String::new()
                } else {
                    name.to_string()
                });
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(
                &mut self,
                param: &activations::burn::module::Param<Tensor<D>>,
            ) {
                let values: Vec<f32> = param
                    .val()
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec()
                    .unwrap_or_default();
                let bad = values.iter().filter(|v| !v.is_finite()).count();
                if bad > 0 {
                    let path = self.path.iter().filter(|p| !p.is_empty()).cloned();
                    self.found.push((path.collect::<Vec<_>>().join("."), bad));
                }
            }
        }
        let mut finder = Finder {
            path: Vec::new(),
            found: Vec::new(),
        };
        self.visit(&mut finder);
        finder.found
    }

    /// The weight of each layer that has one, in the order of
    /// [`layer_names`](Self::layer_names): conv weights `[out, in, k, k]`, dense and output
    /// weights `[in, out]`. Their ids find the gradients in a `GradientsParams`.
    pub fn layer_weights(&self) -> Vec<LayerWeight> {
        let (conv, dense, output): (Vec<LayerWeight>, &[crate::DenseBlock], _) = match self {
            Self::Cnn(m) => (
                m.blocks
                    .iter()
                    .map(|b| LayerWeight::Conv(b.conv.weight.id))
                    .collect(),
                &m.dense,
                &m.output,
            ),
            Self::Mlp(m) => (Vec::new(), &m.dense, &m.output),
            Self::Resnet(m) => (
                m.convolutions()
                    .into_iter()
                    .map(|(_, conv)| LayerWeight::Conv(conv.weight.id))
                    .collect(),
                &[],
                &m.output,
            ),
        };
        conv.into_iter()
            .chain(dense.iter().map(|d| LayerWeight::Dense(d.linear.weight.id)))
            .chain(std::iter::once(LayerWeight::Dense(output.weight.id)))
            .collect()
    }

    /// The names of the layers with a weight, in order, ending with `output`: the CNN's and
    /// MLP's are their slot names (`conv1`, ..., `fc1`, ...); the ResNet's are `stem`, then
    /// `s1b1.conv1`, `s1b1.conv2`, `s1b1.shortcut` (where there is one), ...
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = match self {
            Self::Cnn(_) | Self::Mlp(_) => self.slot_names(),
            Self::Resnet(m) => m.convolutions().into_iter().map(|(n, _)| n).collect(),
        };
        names.push("output".into());
        names
    }

    /// Names of the activation slots, in order.
    pub fn slot_names(&self) -> Vec<String> {
        match self {
            Self::Cnn(m) => m.slot_names(),
            Self::Mlp(m) => m.slot_names(),
            Self::Resnet(m) => m.slot_names(),
        }
    }
}
