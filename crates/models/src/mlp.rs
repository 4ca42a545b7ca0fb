use activations::burn::module::Module;
use activations::burn::nn::{Dropout, Linear};
use activations::burn::tensor::{Device, Tensor};
use activations::{Activation, ActivationConfig};
use serde::{Deserialize, Serialize};

use crate::slots::{
    check_activations, check_dropout, check_slots, check_widths, dense, dropout_for, is_selu,
    slot_activations, slot_key,
};
use crate::{AlphaDropout, ConfigError, IMAGE_SIZE, NUM_CLASSES, Tap};

/// A fully connected network on the flattened 784 pixels: per entry of `hidden`,
/// Linear → activation → dropout; then Linear to 10 classes. Deep, narrow stacks
/// (`hidden = [256, 256, 256, 256, 256]`) show vanishing gradients with sigmoid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    /// Width of each hidden layer. Default `[256, 256, 256]`.
    pub hidden: Vec<usize>,
    /// Dropout after each hidden activation (AlphaDropout after SELU). Default 0.
    pub dropout: f64,
    /// The activation of every slot without an override. Default relu.
    pub activation: ActivationConfig,
    /// One activation per hidden layer, overriding `activation`.
    pub hidden_activations: Option<Vec<ActivationConfig>>,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![256, 256, 256],
            dropout: 0.0,
            activation: ActivationConfig::Relu,
            hidden_activations: None,
        }
    }
}

impl MlpConfig {
    pub(crate) fn slots(&self) -> Result<Vec<ActivationConfig>, ConfigError> {
        slot_activations(
            &self.activation,
            &self.hidden_activations,
            self.hidden.len(),
            "hidden_activations",
            "hidden",
        )
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_widths("hidden", &self.hidden)?;
        check_dropout(self.dropout)?;
        check_activations("activation", std::slice::from_ref(&self.activation))?;
        check_activations("hidden_activations", &self.slots()?)?;
        let key = slot_key(&self.hidden_activations, "hidden_activations");
        check_slots(key, &self.slots()?, &self.hidden, false)?;
        Ok(())
    }

    /// Builds the network.
    ///
    /// # Panics
    /// On an invalid config (see [`validate`](Self::validate)).
    pub fn init(&self, device: &Device) -> Mlp {
        if let Err(error) = self.validate() {
            panic!("invalid MLP config: {error}");
        }
        let (dense, output) = dense_stack(
            IMAGE_SIZE * IMAGE_SIZE,
            &self.hidden,
            &self.slots().unwrap(),
            self.dropout,
            device,
        );
        Mlp { dense, output }
    }
}

/// Linear → activation → (Alpha)Dropout.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// The linear layer.
    pub linear: Linear,
    /// The slot's activation.
    pub activation: Activation,
    /// Dropout after a non-SELU activation.
    pub dropout: Option<Dropout>,
    /// AlphaDropout after SELU.
    pub alpha_dropout: Option<AlphaDropout>,
}

impl DenseBlock {
    /// Runs the blocks in order, recording `fc1`, `fc2`, ... taps.
    pub(crate) fn run_all(
        blocks: &[DenseBlock],
        mut x: Tensor<2>,
        taps: &mut Option<Vec<Tap>>,
    ) -> Tensor<2> {
        for (index, block) in blocks.iter().enumerate() {
            let pre = block.linear.forward(x);
            let post = match taps {
                Some(taps) => {
                    let post = block.activation.forward(pre.clone());
                    let [n, width] = pre.dims();
                    taps.push(Tap::new(
                        format!("fc{}", index + 1),
                        pre.reshape([n, width, 1, 1]),
                        post.clone().reshape([n, width, 1, 1]),
                    ));
                    post
                }
                // Nothing else holds `pre`: a fused activation may overwrite it.
                None => block.activation.forward(pre),
            };
            x = match (&block.dropout, &block.alpha_dropout) {
                (Some(dropout), _) => dropout.forward(post),
                (_, Some(alpha)) => alpha.forward(post),
                _ => post,
            };
        }
        x
    }
}

/// Hidden dense blocks from `d_input` and the output layer, with SELU's pairing per slot.
pub(crate) fn dense_stack(
    d_input: usize,
    hidden: &[usize],
    slots: &[ActivationConfig],
    dropout: f64,
    device: &Device,
) -> (Vec<DenseBlock>, Linear) {
    let mut width = d_input;
    let blocks = hidden
        .iter()
        .zip(slots)
        .map(|(&units, activation)| {
            let selu = is_selu(activation);
            let (dropout, alpha_dropout) = dropout_for(dropout, selu);
            let block = DenseBlock {
                linear: dense(width, units, selu, device),
                activation: activation.init(units, device),
                dropout,
                alpha_dropout,
            };
            width = units;
            block
        })
        .collect();
    (blocks, dense(width, NUM_CLASSES, false, device))
}

/// The network built by [`MlpConfig`].
#[derive(Module, Debug)]
pub struct Mlp {
    /// Hidden layers.
    pub dense: Vec<DenseBlock>,
    /// Linear to the class logits.
    pub output: Linear,
}

impl Mlp {
    pub(crate) fn run(&self, images: Tensor<4>, taps: &mut Option<Vec<Tap>>) -> Tensor<2> {
        let [n, ..] = images.dims();
        let flat = images.reshape([n, IMAGE_SIZE * IMAGE_SIZE]);
        let hidden = DenseBlock::run_all(&self.dense, flat, taps);
        self.output.forward(hidden)
    }

    /// Names of the activation slots, in order (`fc1`, ...).
    pub fn slot_names(&self) -> Vec<String> {
        (1..=self.dense.len()).map(|i| format!("fc{i}")).collect()
    }
}
