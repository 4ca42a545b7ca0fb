//! burn-train's steps on the models (feature `learner`): a training step returns the loss and
//! a gradient for every parameter, and an optimiser step with them lowers the loss on the same
//! batch; the inference step computes the same loss without a graph.
#![cfg(feature = "learner")]
use actlab_models::ModelConfig;
use actlab_models::activations::burn::module::{Module, ModuleVisitor, Param};
use actlab_models::activations::burn::optim::{AdamConfig, GradientsParams};
use actlab_models::activations::burn::tensor::{Device, Distribution, Int, Tensor};
use actlab_models::activations::burn::train::{InferenceStep, TrainStep};

#[test]
fn train_and_inference_steps_drive_a_model() {
    let device = Device::flex().autodiff();
    // The only test in this binary, so nothing else draws from the device RNG in between.
    device.seed(11);
    let config: ModelConfig =
        toml::from_str("kind = \"cnn\"\nchannels = [4]\nhidden = [8]\nactivation = \"prelu\"")
            .unwrap();
    let model = config.init(&device);
    let images = Tensor::<4>::random([6, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let labels = Tensor::<1, Int>::from_ints([0, 1, 2, 3, 4, 5], &device);

    let output = TrainStep::step(&model, (images.clone(), labels.clone()));
    assert_eq!(output.item.output.dims(), [6, 10]);
    let loss_before: f32 = output.item.loss.clone().into_scalar();
    let mut count = CountGrads {
        grads: &output.grads,
        with_gradient: 0,
        total: 0,
    };
    model.visit(&mut count);
    assert!(count.total >= 7, "{}", count.total);
    assert_eq!(
        count.with_gradient, count.total,
        "every parameter has a gradient"
    );

    // A small step, so the first-order decrease dominates for any initialisation: at 1e-2 one
    // Adam step (every parameter moves by about the rate) overshot on some random draws.
    let mut optimizer = AdamConfig::new().init();
    let model = optimizer.step(1e-3, model, output.grads);
    let after: f32 = TrainStep::step(&model, (images.clone(), labels.clone()))
        .item
        .loss
        .into_scalar();
    assert!(after < loss_before, "{after} < {loss_before}");

    let valid = model.valid();
    let inference = InferenceStep::step(&valid, (images.inner(), labels.inner()));
    let loss: f32 = inference.loss.into_scalar();
    assert!((loss - after).abs() < 1e-5, "{loss} vs {after}");
}

struct CountGrads<'a> {
    grads: &'a GradientsParams,
    with_gradient: usize,
    total: usize,
}

impl ModuleVisitor for CountGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.total += 1;
        if self.grads.get::<D>(param.id).is_some() {
            self.with_gradient += 1;
        }
    }
}
