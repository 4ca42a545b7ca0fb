//! Why an activation wins or loses: dead units, sparsity and saturation of every activation
//! slot on a fixed probe batch, and the size of each layer's weight gradient.
//!
//! - **dead**: a unit (a conv channel, or a dense neuron) whose output is never positive over
//!   the whole probe batch; for ReLU-like activations it no longer learns.
//! - **sparsity**: the fraction of outputs that are exactly zero.
//! - **saturation**: for bounded activations (see [`Activation::is_bounded`]), the fraction of
//!   inputs where `|f'(x)| < 1e-3`, where almost no gradient passes.
//! - **gradient norm**: the L2 norm of each layer's weight gradient, averaged over sampled
//!   training steps of the epoch. The first/last layer ratio shows vanishing gradients.
use activations::Activation;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use models::{LayerWeight, Model, Tap};
use serde::{Deserialize, Serialize};

/// Saturated: `|f'(x)|` below this.
pub const SATURATION_THRESHOLD: f64 = 1e-3;

/// Statistics of one activation slot on the probe batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotStats {
    /// `conv1`, ..., `fc1`, ...
    pub slot: String,
    /// Fraction of units never positive over the probe batch.
    pub dead_fraction: f64,
    /// Fraction of outputs exactly zero.
    pub sparsity: f64,
    /// Fraction of inputs with `|f'(x)| < 1e-3`; `None` for unbounded activations.
    pub saturation: Option<f64>,
}

/// One row of `diagnostics.csv`: a weighted layer or an activation slot in one epoch. Where a
/// slot bears its layer's name (the CNN's and MLP's `conv1`, `fc1`) one row holds both; where
/// the slots sit between the layers (the ResNet's `stage1.block1.1`, `head`) they get rows of
/// their own, without a gradient norm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// `conv1`, ..., `fc1`, ..., `output` (the output layer has a gradient but no activation),
    /// or a slot that is not a layer.
    pub layer: String,
    /// See [`SlotStats::dead_fraction`]; `None` for the output layer.
    pub dead_fraction: Option<f64>,
    /// See [`SlotStats::sparsity`].
    pub sparsity: Option<f64>,
    /// See [`SlotStats::saturation`].
    pub saturation: Option<f64>,
    /// Mean L2 norm of the layer's weight gradient over the sampled steps; `None` for a slot
    /// that is not a layer.
    pub grad_norm: Option<f64>,
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("a scalar")[0]
}

/// Statistics of one slot from its tap (`pre`, `post` as `[N, C, H, W]`) and its activation.
pub fn tap_stats(tap: &Tap, activation: &Activation) -> SlotStats {
    let [n, c, h, w] = tap.post.dims();
    let elements = (n * c * h * w) as f64;
    let unit_max = tap
        .post
        .clone()
        .max_dim(0)
        .max_dim(2)
        .max_dim(3)
        .reshape([c]);
    let dead = scalar(unit_max.lower_equal_elem(0.0).int().sum().float());
    let zeros = scalar(
        tap.post
            .clone()
            .equal_elem(0.0)
            .int()
            .sum()
            .float()
            .reshape([1]),
    );
    let saturation = activation
        .is_bounded()
        .then(|| activation.derivative(tap.pre.clone()))
        .flatten()
        .map(|derivative| {
            let saturated = derivative
                .abs()
                .lower_elem(SATURATION_THRESHOLD)
                .int()
                .sum()
                .float()
                .reshape([1]);
            scalar(saturated) / elements
        });
    SlotStats {
        slot: tap.name.clone(),
        dead_fraction: dead / c as f64,
        sparsity: zeros / elements,
        saturation,
    }
}

/// Slot statistics of `model` (in evaluation mode) on `probe` images.
pub fn probe_stats(model: &Model, probe: Tensor<4>) -> Vec<SlotStats> {
    let output = model.forward_with_taps(probe);
    output
        .taps
        .iter()
        .zip(model.slot_activations())
        .map(|(tap, activation)| tap_stats(tap, activation))
        .collect()
}

/// The layers with a weight, in order: `conv1`, ..., `fc1`, ..., `output`
/// ([`Model::layer_names`]).
pub fn layer_names(model: &Model) -> Vec<String> {
    model.layer_names()
}

/// L2 norm of each layer's weight gradient, in the order of [`layer_names`].
pub fn weight_grad_norms(model: &Model, grads: &GradientsParams) -> Vec<f64> {
    fn norm<const D: usize>(grad: Option<Tensor<D>>) -> f64 {
        grad.map_or(0.0, |g| scalar(g.powf_scalar(2.0).sum().sqrt()))
    }
    model
        .layer_weights()
        .into_iter()
        .map(|weight| match weight {
            LayerWeight::Conv(id) => norm(grads.get::<4>(id)),
            LayerWeight::Dense(id) => norm(grads.get::<2>(id)),
        })
        .collect()
}

/// Sums gradient norms over sampled steps.
#[derive(Clone, Debug, Default)]
pub struct GradNormMeter {
    sums: Vec<f64>,
    count: usize,
}

impl GradNormMeter {
    /// Adds one step's norms.
    pub fn add(&mut self, norms: Vec<f64>) {
        if self.sums.is_empty() {
            self.sums = vec![0.0; norms.len()];
        }
        for (sum, norm) in self.sums.iter_mut().zip(norms) {
            *sum += norm;
        }
        self.count += 1;
    }

    /// The per-layer sums as f64 bit patterns, and the count: what a mid-epoch checkpoint
    /// keeps to continue the meter exactly.
    pub(crate) fn to_bits(&self) -> (Vec<u64>, usize) {
        (self.sums.iter().map(|s| s.to_bits()).collect(), self.count)
    }

    /// The inverse of [`to_bits`](Self::to_bits).
    pub(crate) fn from_bits(sums: &[u64], count: usize) -> Self {
        Self {
            sums: sums.iter().map(|&s| f64::from_bits(s)).collect(),
            count,
        }
    }

    /// The mean norm per layer (empty when nothing was added).
    pub fn means(&self) -> Vec<f64> {
        self.sums
            .iter()
            .map(|s| s / self.count.max(1) as f64)
            .collect()
    }
}

/// One epoch's records: every layer with its gradient norm, joined by name with its slot's
/// statistics, then the slots that are no layer's.
pub fn epoch_records(
    epoch: usize,
    layers: &[String],
    stats: &[SlotStats],
    grad_norms: &[f64],
) -> Vec<DiagnosticRecord> {
    let record = |layer: &str, slot: Option<&SlotStats>, grad_norm| DiagnosticRecord {
        epoch,
        layer: layer.to_string(),
        dead_fraction: slot.map(|s| s.dead_fraction),
        sparsity: slot.map(|s| s.sparsity),
        saturation: slot.and_then(|s| s.saturation),
        grad_norm,
    };
    let layer_rows = layers.iter().enumerate().map(|(i, layer)| {
        let slot = stats.iter().find(|s| &s.slot == layer);
        record(
            layer,
            slot,
            Some(grad_norms.get(i).copied().unwrap_or(f64::NAN)),
        )
    });
    let slot_rows = stats
        .iter()
        .filter(|s| !layers.contains(&s.slot))
        .map(|s| record(&s.slot, Some(s), None));
    layer_rows.chain(slot_rows).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use activations::ActivationConfig;
    use burn::tensor::{Device, TensorData};

    fn tap(pre: Vec<f32>, post: Vec<f32>, shape: [usize; 4]) -> Tap {
        let device = Device::flex();
        Tap {
            name: "conv1".into(),
            pre: Tensor::<1>::from_data(TensorData::new(pre.clone(), [pre.len()]), &device)
                .reshape(shape),
            post: Tensor::<1>::from_data(TensorData::new(post.clone(), [post.len()]), &device)
                .reshape(shape),
        }
    }

    #[test]
    fn dead_units_and_sparsity_on_hand_made_relu_outputs() {
        // [N=2, C=3, 1, 2]: channel 0 alive, channel 1 always zero (dead), channel 2 positive
        // once (alive).
        let post = vec![
            1.0, 0.0, /* c1 */ 0.0, 0.0, /* c2 */ 0.0, 0.0, //
            0.0, 2.0, /* c1 */ 0.0, 0.0, /* c2 */ 0.5, 0.0,
        ];
        let pre: Vec<f32> = post
            .iter()
            .map(|&v| if v > 0.0 { v } else { -1.0 })
            .collect();
        let relu = ActivationConfig::Relu.init(3, &Device::flex());
        let stats = tap_stats(&tap(pre, post, [2, 3, 1, 2]), &relu);
        assert_eq!(stats.dead_fraction, 1.0 / 3.0);
        assert_eq!(stats.sparsity, 9.0 / 12.0);
        assert_eq!(stats.saturation, None, "relu is unbounded");
    }

    #[test]
    fn saturation_counts_flat_regions_of_bounded_activations() {
        // sigmoid'(x) < 1e-3 for |x| > ~6.9.
        let pre = vec![-10.0, -7.0, 0.0, 3.0, 6.0, 8.0, 20.0, 0.5];
        let sigmoid = ActivationConfig::Sigmoid.init(1, &Device::flex());
        let post: Vec<f32> = pre.iter().map(|x: &f32| 1.0 / (1.0 + (-x).exp())).collect();
        let stats = tap_stats(&tap(pre, post, [8, 1, 1, 1]), &sigmoid);
        assert_eq!(stats.saturation, Some(4.0 / 8.0));
        assert_eq!(stats.dead_fraction, 0.0);
        assert_eq!(stats.sparsity, 0.0);
    }

    #[test]
    fn records_join_slots_and_gradients_by_layer() {
        let layers = vec!["conv1".to_string(), "fc1".into(), "output".into()];
        let stats = vec![
            SlotStats {
                slot: "conv1".into(),
                dead_fraction: 0.5,
                sparsity: 0.25,
                saturation: None,
            },
            SlotStats {
                slot: "fc1".into(),
                dead_fraction: 0.0,
                sparsity: 0.1,
                saturation: Some(0.2),
            },
        ];
        let mut meter = GradNormMeter::default();
        meter.add(vec![1.0, 2.0, 3.0]);
        meter.add(vec![3.0, 4.0, 5.0]);
        let records = epoch_records(2, &layers, &stats, &meter.means());
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].grad_norm, Some(2.0));
        assert_eq!(records[1].saturation, Some(0.2));
        assert_eq!(records[2].dead_fraction, None);
        assert_eq!(records[2].grad_norm, Some(4.0));
        // Empty cells where a value does not apply.
        let csv = String::from_utf8(crate::records::to_csv(&records)).unwrap();
        assert_eq!(csv.lines().last(), Some("2,output,,,,4.0"));
    }

    #[test]
    fn slots_between_layers_get_rows_of_their_own() {
        // A ResNet: its slots (`stage1.block1.1`, `head`) are no layer's name; their statistics
        // used to be dropped, so its diagnostics had no dead units or sparsity at all.
        let layers = vec![
            "stem".to_string(),
            "stage1.block1.conv1".into(),
            "output".into(),
        ];
        let stats = ["stage1.block1.1", "head"].map(|slot| SlotStats {
            slot: slot.into(),
            dead_fraction: 0.5,
            sparsity: 0.75,
            saturation: None,
        });
        let records = epoch_records(1, &layers, &stats, &[1.0, 2.0, 3.0]);
        let names: Vec<&str> = records.iter().map(|r| r.layer.as_str()).collect();
        assert_eq!(
            names,
            [
                "stem",
                "stage1.block1.conv1",
                "output",
                "stage1.block1.1",
                "head"
            ]
        );
        assert!(records[..3].iter().all(|r| r.dead_fraction.is_none()));
        assert!(records[3..].iter().all(|r| r.grad_norm.is_none()));
        assert_eq!(records[4].sparsity, Some(0.75));
        let csv = String::from_utf8(crate::records::to_csv(&records)).unwrap();
        assert_eq!(csv.lines().last(), Some("1,head,0.5,0.75,,"));
    }

    #[test]
    fn gradient_norms_follow_the_layers() {
        let device = Device::flex().autodiff();
        // Identity, so no unit is dead whatever the random initialisation: with ReLU, two conv
        // channels on a constant image were both dead often enough to fail now and then.
        let config: models::ModelConfig = toml::from_str(
            "kind = \"cnn\"\nchannels = [2]\nhidden = [4]\nactivation = \"identity\"",
        )
        .unwrap();
        let model = config.init(&device);
        let images = Tensor::<4>::ones([2, 1, 28, 28], &device);
        let loss = model.forward(images).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let norms = weight_grad_norms(&model, &grads);
        assert_eq!(layer_names(&model), vec!["conv1", "fc1", "output"]);
        assert_eq!(norms.len(), 3);
        assert!(norms.iter().all(|n| n.is_finite() && *n > 0.0), "{norms:?}");
    }
}
