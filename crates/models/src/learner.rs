//! burn-train support (feature `learner`): [`Model`] implements `TrainStep` and `InferenceStep`
//! on batches of `(images [N, 1, 28, 28], labels [N])` — what `train::data::FashionMnistBatcher`
//! makes — with a cross-entropy loss and `ClassificationOutput`, so Burn's
//! `SupervisedTraining`/`Learner` train it with their metrics (accuracy, loss, learning rate),
//! checkpointers, early stopping, learning-rate schedulers and multi-device strategies.
//! `examples/learner.rs` (workspace root) trains the reference CNN that way.
use activations::burn::nn::loss::CrossEntropyLossConfig;
use activations::burn::tensor::{Int, Tensor};
use activations::burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

use crate::Model;

/// A batch: normalised images `[N, 1, 28, 28]` and class labels `[N]`.
pub type ImageBatch = (Tensor<4>, Tensor<1, Int>);

impl Model {
    /// Logits, mean cross-entropy loss and targets of a batch, as burn-train's metrics take
    /// them.
    pub fn classification(
        &self,
        images: Tensor<4>,
        targets: Tensor<1, Int>,
    ) -> ClassificationOutput {
        let logits = self.forward(images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), targets.clone());
        ClassificationOutput::new(loss, logits, targets)
    }
}

impl TrainStep for Model {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, (images, targets): ImageBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.classification(images, targets);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Model {
    type Input = ImageBatch;
    type Output = ClassificationOutput;

    fn step(&self, (images, targets): ImageBatch) -> ClassificationOutput {
        self.classification(images, targets)
    }
}
