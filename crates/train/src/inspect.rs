//! What a trained model's activations do on the test set, behind `fmnist inspect`:
//!
//! - every slot: the fraction of dead units (never positive on any test image), of exact zeros,
//!   and a histogram of the pre-activations;
//! - PReLU: the learned slopes, per channel when per-channel;
//! - APReLU: the per-sample, per-channel slopes α its SE network computes, over the whole test
//!   set: their distribution overall and per class, their mean per class and channel, and how
//!   much of their spread is between samples of one class rather than between classes: the
//!   paper's claim is that every sample gets its own transformation. The same for every kind
//!   that computes coefficients per sample (Meta-ACON's switching factor β, DyReLU's slopes a¹
//!   and a²: [`SlotInspection::coefficients`]);
//! - the learned per-channel parameters of the other learned kinds (ACON-C's p1, p2 and β, a
//!   learned SiLU β: [`SlotInspection::channel_parameters`]).
//!
//! [`inspect`] computes an [`Inspection`] from a model and a split; `report::inspect` draws
//! and writes it.
use activations::Activation;
use burn::tensor::Tensor;
use models::Model;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::data::Split;

/// Test images per forward pass: the taps of a ResNet's 13 slots stay within a few hundred MB.
const BATCH: usize = 200;
/// Pre-activation histograms cover this range; the rest is counted below and above it.
const PRE_RANGE: (f64, f64) = (-8.0, 8.0);
const PRE_BINS: usize = 64;
/// Bins of a coefficient's histogram over the interval it lies in.
const ALPHA_BINS: usize = 50;

/// Counts of values in equal bins over `[low, high)`, plus those outside.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub low: f64,
    pub high: f64,
    pub counts: Vec<u64>,
    /// Values below `low` (NaN never counts).
    pub below: u64,
    /// Values at or above `high`.
    pub above: u64,
}

impl Histogram {
    fn new(low: f64, high: f64, bins: usize) -> Self {
        Self {
            low,
            high,
            counts: vec![0; bins],
            below: 0,
            above: 0,
        }
    }

    fn add(&mut self, value: f64) {
        if value < self.low {
            self.below += 1;
        } else if value >= self.high {
            self.above += 1;
        } else if value >= self.low {
            let bins = self.counts.len();
            let bin = ((value - self.low) / (self.high - self.low) * bins as f64) as usize;
            self.counts[bin.min(bins - 1)] += 1;
        }
    }

    /// Values counted in range, below and above.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.below + self.above
    }

    /// The centre of bin `index`.
    pub fn centre(&self, index: usize) -> f64 {
        let width = (self.high - self.low) / self.counts.len() as f64;
        self.low + (index as f64 + 0.5) * width
    }
}

/// APReLU's slopes α over the test set, for one slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlphaSummary {
    /// Mean α over samples and channels.
    pub mean: f64,
    /// Every sample's and channel's α.
    pub histogram: Histogram,
    /// The same per true class (Fashion-MNIST's order).
    pub class_histograms: Vec<Histogram>,
    /// Mean α per class and channel, `[10][C]`.
    pub class_means: Vec<Vec<f64>>,
    /// Standard deviation of α between the samples of one class, pooled over classes and
    /// channels: what is specific to each sample.
    pub within_class_std: f64,
    /// Standard deviation of the class means around the overall mean, pooled over channels:
    /// what is specific to each class.
    pub between_class_std: f64,
    /// Standard deviation over channels of each channel's mean α: what is specific to each
    /// channel.
    pub between_channel_std: f64,
}

/// One activation slot on the test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotInspection {
    /// The slot's name (`conv1`, `fc1`, `s1b1.1`, ...).
    pub slot: String,
    /// The activation's registry name.
    pub activation: String,
    /// Units (conv channels or dense neurons) in the slot.
    pub channels: usize,
    /// Fraction of units whose output is never positive on any test image.
    pub dead_fraction: f64,
    /// Fraction of outputs exactly zero.
    pub zero_fraction: f64,
    /// The slot's inputs.
    pub preactivation: Histogram,
    /// PReLU's learned slopes (one, or one per channel).
    pub prelu_slopes: Option<Vec<f32>>,
    /// APReLU's computed slopes.
    pub aprelu: Option<AlphaSummary>,
    /// The coefficients other kinds compute per sample (Meta-ACON's `β`, DyReLU's `a¹`, `a²`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coefficients: Vec<CoefficientSummary>,
    /// The learned per-channel parameters of kinds other than PReLU (ACON-C's `p1`, `p2`, `β`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channel_parameters: Vec<ChannelParameter>,
    /// The learned element-wise function of each row of parameters (PReLU, ACON-C, learned
    /// SiLU, PAU), with the function the slot started as where that is known (PAU's fit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curves: Option<LearnedCurves>,
}

/// A learned activation's curves on [`CURVE_RANGE`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnedCurves {
    /// The inputs, evenly spaced.
    pub x: Vec<f32>,
    /// `f(x)` per row of parameters (one shared row, or one per channel).
    pub rows: Vec<Vec<f32>>,
    /// `f(x)` of the initial function, where known.
    pub initial: Option<Vec<f32>>,
}

/// Where learned curves are drawn: the bulk of the pre-activations of the reference CNN.
pub const CURVE_RANGE: (f32, f32) = (-4.0, 4.0);
const CURVE_POINTS: usize = 161;

/// The curves of a learned element-wise slot with `channels` channels; `None` for kinds
/// without parameters per channel (fixed kinds, per-sample ones).
fn learned_curves(activation: &Activation, channels: usize) -> Option<LearnedCurves> {
    let (op, parameters) = activation.channelwise(channels)?;
    let [rows, count] = parameters.dims();
    let values: Vec<f32> = parameters
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .ok()?;
    let (low, high) = CURVE_RANGE;
    let step = (high - low) / (CURVE_POINTS - 1) as f32;
    let x: Vec<f32> = (0..CURVE_POINTS).map(|i| low + step * i as f32).collect();
    let curve = |f: activations::fused::Pointwise| x.iter().map(|&v| f.value(v)).collect();
    let rows = (0..rows)
        .map(|row| curve(op.at(&values[row * count..][..count])))
        .collect();
    let initial = activation.initial_formula().map(curve);
    Some(LearnedCurves { x, rows, initial })
}

/// One kind of per-sample coefficient of a slot over the test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoefficientSummary {
    /// Its symbol (`β`).
    pub symbol: String,
    pub summary: AlphaSummary,
}

/// One learned parameter of every channel of a slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelParameter {
    /// Its name (`p1`).
    pub name: String,
    pub values: Vec<f32>,
}

/// Every slot of a model on a split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// Images inspected.
    pub images: usize,
    pub slots: Vec<SlotInspection>,
}

/// Running sums of one kind of per-sample coefficient of a slot (APReLU's α, ...).
struct AlphaSums {
    histogram: Histogram,
    class_histograms: Vec<Histogram>,
    /// Per class and channel: count, Σα, Σα².
    count: [f64; 10],
    sum: Vec<Vec<f64>>,
    sum_sq: Vec<Vec<f64>>,
}

impl AlphaSums {
    /// Sums for `channels` channels of coefficients in `range`.
    fn new(channels: usize, range: (f64, f64)) -> Self {
        Self {
            histogram: Histogram::new(range.0, range.1, ALPHA_BINS),
            class_histograms: vec![Histogram::new(range.0, range.1, ALPHA_BINS); 10],
            count: [0.0; 10],
            sum: vec![vec![0.0; channels]; 10],
            sum_sq: vec![vec![0.0; channels]; 10],
        }
    }

    fn add(&mut self, alphas: &[f32], labels: &[u8], channels: usize) {
        for (row, &label) in alphas.chunks(channels).zip(labels) {
            let class = label as usize;
            self.count[class] += 1.0;
            for (c, &alpha) in row.iter().enumerate() {
                let alpha = alpha as f64;
                self.histogram.add(alpha);
                self.class_histograms[class].add(alpha);
                self.sum[class][c] += alpha;
                self.sum_sq[class][c] += alpha * alpha;
            }
        }
    }

    fn finish(self) -> AlphaSummary {
        let channels = self.sum[0].len();
        let classes: Vec<usize> = (0..10).filter(|&k| self.count[k] > 0.0).collect();
        let total: f64 = classes.iter().map(|&k| self.count[k]).sum();
        let class_means: Vec<Vec<f64>> = (0..10)
            .map(|k| {
                let n = self.count[k].max(1.0);
                self.sum[k].iter().map(|s| s / n).collect()
            })
            .collect();
        let channel_means: Vec<f64> = (0..channels)
            .map(|c| classes.iter().map(|&k| self.sum[k][c]).sum::<f64>() / total)
            .collect();
        let mean = channel_means.iter().sum::<f64>() / channels as f64;
        // Pooled variances, weighted by samples: within = Σ_k Σ_i (α - m_k)², between =
        // Σ_k n_k (m_k - m)², both per channel and then averaged over channels.
        let (mut within, mut between) = (0.0, 0.0);
        for c in 0..channels {
            for &k in &classes {
                let n = self.count[k];
                let m = class_means[k][c];
                within += (self.sum_sq[k][c] - n * m * m).max(0.0);
                between += n * (m - channel_means[c]).powi(2);
            }
        }
        let per_value = total * channels as f64;
        let channel_variance = channel_means
            .iter()
            .map(|m| (m - mean).powi(2))
            .sum::<f64>()
            / channels as f64;
        AlphaSummary {
            mean,
            histogram: self.histogram,
            class_histograms: self.class_histograms,
            class_means,
            within_class_std: (within / per_value).sqrt(),
            between_class_std: (between / per_value).sqrt(),
            between_channel_std: channel_variance.sqrt(),
        }
    }
}

/// Running sums of one slot.
struct SlotSums {
    positive: Vec<bool>,
    zeros: u64,
    elements: u64,
    preactivation: Histogram,
    /// Each per-sample coefficient's symbol and sums.
    coefficients: Vec<(&'static str, AlphaSums)>,
}

fn host(tensor: Tensor<4>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("converted to f32")
}

/// Runs `model` over `split` in batches and summarises every activation slot.
pub fn inspect(model: &Model, split: &Split, backend: Backend) -> Inspection {
    let device = backend.device();
    let activations = model.slot_activations();
    let names = model.slot_names();
    let mut sums: Vec<Option<SlotSums>> = (0..names.len()).map(|_| None).collect();
    let indices: Vec<usize> = (0..split.len()).collect();
    for chunk in indices.chunks(BATCH) {
        let (images, _) = split.batch(chunk, &device);
        let labels: Vec<u8> = chunk.iter().map(|&i| split.labels[i]).collect();
        let output = model.forward_with_taps(images);
        for ((tap, activation), slot) in output.taps.into_iter().zip(&activations).zip(&mut sums) {
            let [_, channels, h, w] = tap.pre.dims();
            let slot = slot.get_or_insert_with(|| SlotSums {
                positive: vec![false; channels],
                zeros: 0,
                elements: 0,
                preactivation: Histogram::new(PRE_RANGE.0, PRE_RANGE.1, PRE_BINS),
                coefficients: Vec::new(),
            });
            for (index, coefficients) in activation
                .per_sample_coefficients(tap.pre.clone())
                .into_iter()
                .enumerate()
            {
                if slot.coefficients.len() == index {
                    let sums = AlphaSums::new(channels, coefficients.range);
                    slot.coefficients.push((coefficients.symbol, sums));
                }
                let values: Vec<f32> = coefficients
                    .values
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec()
                    .expect("converted to f32");
                slot.coefficients[index].1.add(&values, &labels, channels);
            }
            let plane = h * w;
            for (index, &value) in host(tap.post).iter().enumerate() {
                if value > 0.0 {
                    slot.positive[(index / plane) % channels] = true;
                }
                slot.zeros += u64::from(value == 0.0);
            }
            let pre = host(tap.pre);
            slot.elements += pre.len() as u64;
            for value in pre {
                slot.preactivation.add(value as f64);
            }
        }
    }
    let slots = names
        .into_iter()
        .zip(activations)
        .zip(sums)
        .filter_map(|((slot, activation), sums)| {
            let sums = sums?;
            let channels = sums.positive.len();
            let mut coefficients: Vec<CoefficientSummary> = sums
                .coefficients
                .into_iter()
                .map(|(symbol, sums)| CoefficientSummary {
                    symbol: symbol.to_string(),
                    summary: sums.finish(),
                })
                .collect();
            let mut channel_parameters: Vec<ChannelParameter> = activation
                .channel_parameters()
                .into_iter()
                .map(|(name, values)| ChannelParameter {
                    name: name.to_string(),
                    values,
                })
                .collect();
            // PReLU's slopes and APReLU's α keep the fields they always had.
            let prelu_slopes = matches!(activation, Activation::Prelu(_))
                .then(|| channel_parameters.remove(0).values);
            let aprelu =
                matches!(activation, Activation::Aprelu(_)).then(|| coefficients.remove(0).summary);
            Some(SlotInspection {
                slot,
                activation: activation.name().to_string(),
                channels,
                dead_fraction: sums.positive.iter().filter(|p| !**p).count() as f64
                    / channels as f64,
                zero_fraction: sums.zeros as f64 / sums.elements.max(1) as f64,
                preactivation: sums.preactivation,
                prelu_slopes,
                aprelu,
                coefficients,
                channel_parameters,
                curves: learned_curves(activation, channels),
            })
        })
        .collect();
    Inspection {
        images: split.len(),
        slots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_value_once() {
        let mut h = Histogram::new(0.0, 1.0, 4);
        for v in [-0.5, 0.0, 0.24, 0.25, 0.99, 1.0, 3.0, f64::NAN] {
            h.add(v);
        }
        assert_eq!(h.counts, [2, 1, 0, 1]);
        assert_eq!((h.below, h.above), (1, 2));
        assert_eq!(h.total(), 7, "NaN is not counted");
        assert_eq!(h.centre(0), 0.125);
    }

    /// Known numbers: two classes, one channel; class 0 has α 0.2 and 0.4, class 1 has 0.6 and
    /// 0.8. Within-class deviations are ±0.1, class means 0.3 and 0.7 around 0.5.
    #[test]
    fn alpha_spread_splits_into_within_and_between_classes() {
        let mut sums = AlphaSums::new(1, (0.0, 1.0));
        sums.add(&[0.2, 0.4, 0.6, 0.8], &[0, 0, 1, 1], 1);
        let summary = sums.finish();
        // α arrives as f32: 0.2f32 is 0.2 to about 1e-8.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(summary.mean, 0.5), "{}", summary.mean);
        assert!(close(summary.within_class_std, 0.1));
        assert!(close(summary.between_class_std, 0.2));
        assert_eq!(summary.between_channel_std, 0.0);
        assert!(close(summary.class_means[1][0], 0.7));
        assert_eq!(summary.class_histograms[1].total(), 2);
        assert_eq!(summary.histogram.total(), 4);
    }
}
