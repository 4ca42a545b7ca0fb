//! Fashion-MNIST in your own Burn code, without the `fmnist` CLI's dependencies:
//!
//! ```sh
//! cargo run --release -p train --no-default-features --features flex,download --example fashion_mnist
//! ```
//!
//! Finds the data (a directory in `$FASHION_MNIST_DIR`, the cache, the Debian package
//! `dataset-fashion-mnist`, or a download into the cache), checks its SHA-256, and trains a
//! softmax regression on it for one epoch with Burn's `DataLoader`, `Adam` and autodiff.
use actlab_train::burn::data::dataloader::DataLoaderBuilder;
use actlab_train::burn::data::dataset::Dataset;
use actlab_train::burn::module::Module;
use actlab_train::burn::nn::loss::CrossEntropyLossConfig;
use actlab_train::burn::nn::{Linear, LinearConfig};
use actlab_train::burn::optim::{AdamConfig, GradientsParams};
use actlab_train::burn::tensor::{Device, Int, Tensor};
use actlab_train::data::{CLASS_NAMES, FashionMnistBatcher, FashionMnistDataset};

#[derive(Module, Debug)]
struct SoftmaxRegression {
    linear: Linear,
}

impl SoftmaxRegression {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let [batch, ..] = images.dims();
        self.linear.forward(images.reshape([batch, 28 * 28]))
    }
}

fn accuracy(logits: Tensor<2>, labels: Tensor<1, Int>) -> f64 {
    let total = labels.dims()[0] as f64;
    let correct: i64 = logits
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(labels)
        .int()
        .sum()
        .into_scalar::<i64>();
    correct as f64 / total
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex().autodiff();
    let train_set = FashionMnistDataset::train()?;
    let test_set = FashionMnistDataset::test()?;
    println!(
        "{} training and {} test images; classes: {}",
        train_set.len(),
        test_set.len(),
        CLASS_NAMES.join(", ")
    );

    let loader = DataLoaderBuilder::new(FashionMnistBatcher)
        .batch_size(128)
        .shuffle(42)
        .set_device(device.clone())
        .build(train_set);
    let mut model = SoftmaxRegression {
        linear: LinearConfig::new(28 * 28, 10).init(&device),
    };
    let mut optimizer = AdamConfig::new().init();
    let loss = CrossEntropyLossConfig::new().init(&device);
    for batch in loader.iter() {
        let (images, labels) = batch?;
        let step_loss = loss.forward(model.forward(images), labels);
        let gradients = GradientsParams::from_grads(step_loss.backward(), &model);
        model = optimizer.step(1e-3, model, gradients);
    }

    let test = DataLoaderBuilder::new(FashionMnistBatcher)
        .batch_size(10_000)
        .set_device(device.clone())
        .build(test_set);
    let model = model.valid();
    for batch in test.iter() {
        let (images, labels) = batch?;
        let logits = model.forward(images.inner());
        println!(
            "softmax regression, 1 epoch: test accuracy {:.2}%",
            100.0 * accuracy(logits, labels.inner())
        );
    }
    Ok(())
}
