//! Loss, accuracy and the confusion matrix of a model on a split.
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Device;
use models::Model;
use serde::{Deserialize, Serialize};

use crate::data::Split;

/// Which split a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    /// The training images (measured while training).
    Train,
    /// The held-out part of the training images (`data.validation`).
    Validation,
    /// The test images.
    Test,
}

impl SplitName {
    /// `train`, `validation` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Validation => "validation",
            Self::Test => "test",
        }
    }
}

impl std::fmt::Display for SplitName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `metrics.csv`: one split after one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// The split measured.
    pub split: SplitName,
    /// Mean cross-entropy (train: over the epoch's batches, while training).
    pub loss: f64,
    /// Fraction correct.
    pub accuracy: f64,
    /// Wall time of the pass.
    pub seconds: f64,
    /// Images per second of the pass.
    pub images_per_second: f64,
}

/// A model's results on one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction correct.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    /// Accuracy of each true class.
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(class, row)| {
                let total: u64 = row.iter().sum();
                if total == 0 {
                    0.0
                } else {
                    row[class] as f64 / total as f64
                }
            })
            .collect()
    }
}

/// Evaluates `model` (in evaluation mode, on a plain device) on `split`, 1,000 images at a time.
pub fn evaluate(model: &Model, split: &Split, device: &Device) -> Evaluation {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut confusion = vec![vec![0u64; 10]; 10];
    let mut loss_sum = 0.0f64;
    let indices: Vec<usize> = (0..split.len()).collect();
    for chunk in indices.chunks(1000) {
        let (images, labels) = split.batch(chunk, device);
        let logits = model.forward(images);
        let loss: f32 = loss_fn.forward(logits.clone(), labels).into_scalar();
        loss_sum += loss as f64 * chunk.len() as f64;
        let predicted: Vec<i64> = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec()
            .expect("argmax gives integers");
        for (&i, &p) in chunk.iter().zip(&predicted) {
            confusion[split.labels[i] as usize][p as usize] += 1;
        }
    }
    let correct: u64 = (0..10).map(|c| confusion[c][c]).sum();
    let n = split.len().max(1) as f64;
    Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        confusion,
    }
}
