//! Benchmarks behind `fmnist bench`: activation kernels, and training throughput.
//!
//! - [`bench_activations`]: forward and forward+backward of each activation on one 4M-element
//!   f32 tensor, through the fused kernels and through Burn's built-in ops (the modules'
//!   composite path, [`activations::fused::without_fused`]) in the same process.
//! - [`bench_train`]: training steps per second of the reference CNN (forward, cross-entropy,
//!   backward, Adam) on in-memory batches, after warm-up, and the process's peak memory.
//!
//! `benches/pytorch_bench.py` measures the same two things with PyTorch, with the same JSON keys.

use std::time::Instant;

use activations::fused::without_fused;
use activations::{ActivationConfig, GeluApproximation, GeluConfig};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use models::{Model, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::RunConfig;
use crate::rng::SplitMix64;
use crate::sweep::label;

/// The benchmark tensor: `[128, 32, 32, 32]` = 4,194,304 f32 (16 MiB), channels on axis 1 so
/// that per-channel PReLU applies.
pub const ACTIVATION_SHAPE: [usize; 4] = [128, 32, 32, 32];

/// One row of `fmnist bench activations`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActivationTiming {
    pub activation: String,
    pub backend: String,
    /// Median milliseconds of the forward pass, through the fused kernel when there is one.
    pub forward_ms: f64,
    /// Median milliseconds of forward plus backward (seeded with ones) with autodiff.
    pub forward_backward_ms: f64,
    /// The same two through Burn's built-in tensor ops.
    pub builtin_forward_ms: f64,
    pub builtin_forward_backward_ms: f64,
}

/// The network `fmnist bench train` times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchModel {
    /// The reference CNN of configs/default.toml (conv32-conv64-fc128).
    #[default]
    Cnn,
    /// The MLP of configs/compare.toml (784-256-256-256-10), where the activation is the only
    /// nonlinearity and so the largest share of a step.
    Mlp,
    /// The pre-activation ResNet of configs/resnet.toml (the `resnet` defaults).
    Resnet,
}

impl BenchModel {
    pub fn name(self) -> &'static str {
        match self {
            BenchModel::Cnn => "cnn",
            BenchModel::Mlp => "mlp",
            BenchModel::Resnet => "resnet",
        }
    }

    /// The model's configuration with `activation` in every slot.
    pub fn config(self, activation: &ActivationConfig) -> ModelConfig {
        let mut config = match self {
            BenchModel::Cnn => RunConfig::default().model,
            BenchModel::Mlp => {
                toml::from_str("kind = \"mlp\"\nhidden = [256, 256, 256]").expect("a valid MLP")
            }
            BenchModel::Resnet => ModelConfig::Resnet(Default::default()),
        };
        config.set_activation(activation.clone());
        config
    }

    /// The layer sizes, for the benchmark's footnote.
    pub fn description(self) -> &'static str {
        match self {
            BenchModel::Cnn => "reference CNN (conv32-conv64-fc128)",
            BenchModel::Mlp => "compare MLP (784-256-256-256-10)",
            BenchModel::Resnet => "ResNet (stem 16, stages [16, 32, 64], 2 blocks per stage)",
        }
    }
}

/// One row of `fmnist bench train`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainTiming {
    /// `cnn` or `mlp` ([`BenchModel`]).
    pub model: BenchModel,
    pub activation: String,
    pub backend: String,
    pub batch_size: usize,
    pub train_images_per_second: f64,
    /// Inference images/s of the trained model (no autodiff, batches of
    /// [`EVAL_BATCH_SIZE`]), as `fmnist eval` runs it; `null` in files from before it was measured.
    #[serde(default)]
    pub eval_images_per_second: Option<f64>,
    /// The process's peak resident memory in MiB (Linux; `null` elsewhere).
    pub peak_memory_mib: Option<f64>,
}

/// The activations that `bench activations` measures by default: each one with a fused kernel
/// in its default configuration, plus GELU's tanh form.
pub fn default_activations() -> Vec<ActivationConfig> {
    let mut list: Vec<ActivationConfig> = ActivationConfig::catalog()
        .into_iter()
        .filter(ActivationConfig::has_fused_kernel)
        .collect();
    let gelu_tanh = ActivationConfig::Gelu(GeluConfig {
        approximate: GeluApproximation::Tanh,
    });
    let gelu_at = list
        .iter()
        .position(|c| c.name() == "gelu")
        .map_or(list.len(), |i| i + 1);
    list.insert(gelu_at, gelu_tanh);
    list
}

/// Median of `repeats` timings of `f` in milliseconds, after `warmup` untimed calls.
fn median_ms(warmup: usize, repeats: usize, device: &Device, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            f();
            // Wait for asynchronous backends (wgpu) so the time covers the work.
            let _ = device.sync();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Times every activation in `configs` on a `shape` tensor (channels on axis 1) on `backend`,
/// fused and built-in, `repeats` times each.
pub fn bench_activations(
    backend: Backend,
    configs: &[ActivationConfig],
    shape: [usize; 4],
    repeats: usize,
    mut progress: impl FnMut(&ActivationTiming),
) -> Vec<ActivationTiming> {
    let device = backend.device();
    let autodiff = device.clone().autodiff();
    device.seed(7);
    let input: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.0, 2.0), &device);
    let channels = shape[1];
    configs
        .iter()
        .map(|config| {
            // Evaluation-mode modules (`valid`): RReLU then uses its fixed mean slope, the
            // form with a kernel; the others are the same in both modes.
            let activation = config.init(channels, &device);
            let tracked = config.init(channels, &autodiff).valid();
            let forward = || {
                let _ = activation.forward(input.clone());
            };
            let forward_backward = || {
                let x = input.clone().autodiff().require_grad();
                let y = tracked.forward(x.clone());
                let grads = y.backward();
                let _ = x.grad(&grads);
            };
            let warmup = 2;
            let timing = ActivationTiming {
                activation: label(config),
                backend: backend.name().to_string(),
                forward_ms: median_ms(warmup, repeats, &device, forward),
                forward_backward_ms: median_ms(warmup, repeats, &device, forward_backward),
                builtin_forward_ms: without_fused(|| median_ms(warmup, repeats, &device, forward)),
                builtin_forward_backward_ms: without_fused(|| {
                    median_ms(warmup, repeats, &device, forward_backward)
                }),
            };
            progress(&timing);
            timing
        })
        .collect()
}

/// The batch size of the evaluation measurement: `fmnist eval`'s default and PyTorch's side.
pub const EVAL_BATCH_SIZE: usize = 1000;

/// Timed evaluation batches (after two untimed ones).
const EVAL_BATCHES: usize = 10;

/// Trains `model` (with configs/default.toml's optimiser, Adam 1e-3) with `activation` in every
/// slot for `steps` timed steps after `warmup` steps, on random in-memory batches; then times
/// the trained model's inference on batches of [`EVAL_BATCH_SIZE`].
pub fn bench_train(
    backend: Backend,
    model_kind: BenchModel,
    activation: &ActivationConfig,
    batch_size: usize,
    warmup: usize,
    steps: usize,
) -> TrainTiming {
    let mut config = RunConfig::default();
    config.model = model_kind.config(activation);
    let device = backend.device().autodiff();
    device.seed(1);
    let mut model = config.model.init(&device);
    let mut optim = crate::run::training::optimizer(&config);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);

    // A few distinct batches in memory, as the training loop holds the data set in memory.
    let mut rng = SplitMix64::new(1);
    let batches: Vec<(Tensor<4>, Tensor<1, Int>)> = (0..4)
        .map(|_| {
            let images = Tensor::random([batch_size, 1, 28, 28], Distribution::Default, &device);
            let labels: Vec<i64> = (0..batch_size)
                .map(|_| (rng.next_u64() % 10) as i64)
                .collect();
            let labels = Tensor::from_data(TensorData::new(labels, [batch_size]), &device);
            (images, labels)
        })
        .collect();

    // The model moves through each step, as in the training loop: a clone kept alive across
    // `optim.step` would stop the optimiser from updating the parameters in place.
    let mut step = |model: Model, index: usize| {
        let (images, labels) = batches[index % batches.len()].clone();
        let loss = loss_fn.forward(model.forward(images), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(config.train.lr, model, grads)
    };
    for index in 0..warmup {
        model = step(model, index);
    }
    let _ = device.sync();
    let started = Instant::now();
    for index in 0..steps {
        model = step(model, index);
    }
    let _ = device.sync();
    let seconds = started.elapsed().as_secs_f64();
    let eval_images_per_second = bench_eval(model.valid(), &backend.device());
    TrainTiming {
        model: model_kind,
        activation: label(activation),
        backend: backend.name().to_string(),
        batch_size,
        train_images_per_second: (steps * batch_size) as f64 / seconds,
        eval_images_per_second: Some(eval_images_per_second),
        peak_memory_mib: peak_memory_mib(),
    }
}

/// Inference images/s of `model` on random batches of [`EVAL_BATCH_SIZE`].
fn bench_eval(model: Model, device: &Device) -> f64 {
    device.seed(2);
    let images: Tensor<4> =
        Tensor::random([EVAL_BATCH_SIZE, 1, 28, 28], Distribution::Default, device);
    let run = || {
        let _ = model.forward(images.clone()).argmax(1);
    };
    for _ in 0..2 {
        run();
    }
    let _ = device.sync();
    let started = Instant::now();
    for _ in 0..EVAL_BATCHES {
        run();
    }
    let _ = device.sync();
    (EVAL_BATCHES * EVAL_BATCH_SIZE) as f64 / started.elapsed().as_secs_f64()
}

/// `VmHWM` from /proc/self/status: the peak resident set size.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_has_every_fused_kernel_once() {
        let labels: Vec<String> = default_activations().iter().map(label).collect();
        for expected in [
            "relu",
            "sigmoid",
            "tanh",
            "elu",
            "selu",
            "celu",
            "gelu",
            "gelu(approximate=tanh)",
            "silu",
            "mish",
            "softplus",
            "softsign",
            "logsigmoid",
            "hardswish",
            "hardsigmoid",
            "leaky_relu",
            "prelu",
            "rrelu",
        ] {
            assert_eq!(
                labels.iter().filter(|l| *l == expected).count(),
                1,
                "{expected} in {labels:?}"
            );
        }
        assert!(!labels.iter().any(|l| l == "identity" || l == "softmax"));
    }

    #[test]
    fn timings_are_positive_and_json_has_the_issue_keys() {
        let configs: Vec<ActivationConfig> = vec!["gelu".parse().unwrap()];
        let rows = bench_activations(Backend::Flex, &configs, [2, 3, 4, 5], 1, |_| {});
        let json = serde_json::to_value(&rows).unwrap();
        let row = &json[0];
        for key in [
            "activation",
            "backend",
            "forward_ms",
            "forward_backward_ms",
            "builtin_forward_ms",
            "builtin_forward_backward_ms",
        ] {
            assert!(row.get(key).is_some(), "{key} missing from {row}");
        }
        assert!(rows[0].forward_ms > 0.0 && rows[0].builtin_forward_backward_ms > 0.0);
        for model in [BenchModel::Cnn, BenchModel::Mlp] {
            let train = bench_train(Backend::Flex, model, &"aprelu".parse().unwrap(), 8, 1, 2);
            assert!(train.train_images_per_second > 0.0);
            assert_eq!(train.batch_size, 8);
            assert_eq!(serde_json::to_value(&train).unwrap()["model"], model.name());
        }
    }
}
