//! FReLU's fused Flex op (`fused::spatial_max`: depthwise 3×3 conv, BatchNorm and max in a few
//! passes per plane) against its composite (Burn's grouped convolution, the crate's
//! BatchNorm1d, the tie-splitting maximum): value, input gradient, every parameter's gradient
//! and the running statistics, in training and evaluation mode, at odd shapes, one sample, a
//! 1-pixel-wide plane, and NaN. `tests/golden.rs` checks the module against PyTorch.

mod common;
use actlab_activations::FRelu;
use actlab_activations::burn::module::Param;
use actlab_activations::burn::tensor::{Device, Tensor, TensorData};
use actlab_activations::fused::without_fused;
use common::{to_vec, wgpu_device};

/// A fixed pseudo-random sequence in [-1, 1).
fn host_values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The module with fixed parameters and running statistics.
fn module(channels: usize, seed: u64, training: bool, device: &Device) -> FRelu {
    let mut frelu = FRelu::new(channels, device);
    let weights = host_values(channels * 9, seed)
        .iter()
        .map(|v| 0.6 * v)
        .collect();
    frelu.conv_frelu.weight = Param::from_tensor(tensor(weights, [channels, 1, 3, 3], device));
    let bias = host_values(channels, seed + 1)
        .iter()
        .map(|v| 0.3 * v)
        .collect();
    frelu.conv_frelu.bias = Some(Param::from_tensor(tensor(bias, [channels], device)));
    let gamma = host_values(channels, seed + 2)
        .iter()
        .map(|v| 1.0 + 0.5 * v)
        .collect();
    frelu.bn_frelu.gamma = Param::from_tensor(tensor(gamma, [channels], device));
    let beta = host_values(channels, seed + 3)
        .iter()
        .map(|v| 0.2 * v)
        .collect();
    frelu.bn_frelu.beta = Param::from_tensor(tensor(beta, [channels], device));
    let mean = host_values(channels, seed + 4)
        .iter()
        .map(|v| 0.1 * v)
        .collect();
    frelu
        .bn_frelu
        .running_mean
        .update(tensor(mean, [channels], device));
    let var = host_values(channels, seed + 5)
        .iter()
        .map(|v| 1.0 + 0.4 * v)
        .collect();
    frelu
        .bn_frelu
        .running_var
        .update(tensor(var, [channels], device));
    if !training {
        frelu.bn_frelu.training = Param::from_bool(false);
    }
    frelu
}

/// Everything one step produces: output, input gradient, the four parameter gradients, the
/// running statistics after the step.
fn step(device: &Device, shape: [usize; 4], seed: u64, training: bool) -> Vec<(String, Vec<f32>)> {
    let device = device.clone();
    let frelu = module(shape[1], seed, training, &device);
    let count = shape.iter().product();
    let mut input = host_values(count, seed + 6)
        .iter()
        .map(|v| 2.0 * v)
        .collect::<Vec<_>>();
    // NaN in evaluation mode (training turns the whole channel's statistics NaN on both paths,
    // and then only Burn's convolution multiplies the padding's zeros by NaN gradients).
    if !training && count > 3 {
        input[3] = f32::NAN;
    }
    let x = tensor(input, shape, &device).require_grad();
    let upstream = tensor(host_values(count, seed + 7), shape, &device);
    let y = frelu.forward(x.clone());
    let grads = (y.clone() * upstream).sum().backward();
    let grad = |p: &Param<Tensor<1>>| to_vec(p.val().grad(&grads).unwrap());
    vec![
        ("output".into(), to_vec(y)),
        ("input grad".into(), to_vec(x.grad(&grads).unwrap())),
        (
            "weight grad".into(),
            to_vec(frelu.conv_frelu.weight.val().grad(&grads).unwrap()),
        ),
        (
            "bias grad".into(),
            grad(frelu.conv_frelu.bias.as_ref().unwrap()),
        ),
        ("gamma grad".into(), grad(&frelu.bn_frelu.gamma)),
        ("beta grad".into(), grad(&frelu.bn_frelu.beta)),
        (
            "running mean".into(),
            to_vec(frelu.bn_frelu.running_mean.value_sync()),
        ),
        (
            "running var".into(),
            to_vec(frelu.bn_frelu.running_var.value_sync()),
        ),
    ]
}

#[test]
fn the_fused_spatial_max_equals_the_composite() {
    check(&Device::flex().autodiff());
}

/// The Cube kernels (`fused/cube/spatial_max/`) on wgpu (lavapipe in CI).
#[test]
fn the_fused_spatial_max_equals_the_composite_on_wgpu() {
    if let Some(device) = wgpu_device() {
        check(&device);
    }
}

fn check(device: &Device) {
    let shapes = [
        [2, 3, 5, 7],
        [1, 2, 4, 4],
        [3, 2, 6, 1],
        [2, 4, 1, 5],
        [4, 16, 14, 14],
    ];
    for (index, shape) in shapes.into_iter().enumerate() {
        for training in [true, false] {
            let seed = 10 * index as u64 + 1;
            let fused = step(device, shape, seed, training);
            let composite = without_fused(|| step(device, shape, seed, training));
            // Parameter gradients are sums over the batch, and the bias's is zero in exact
            // arithmetic (a BatchNorm follows): all are compared on the scale of the largest.
            let largest = |list: &[(String, Vec<f32>)]| {
                list.iter()
                    .filter(|(what, _)| what.ends_with(" grad") && what != "input grad")
                    .flat_map(|(_, v)| v.iter().copied())
                    .filter(|v| v.is_finite())
                    .fold(1.0f32, |m, v| m.max(v.abs()))
            };
            let parameter_scale = largest(&composite);
            for ((what, a), (_, e)) in fused.iter().zip(&composite) {
                let scale = if what.ends_with(" grad") && what != "input grad" {
                    2.0 * parameter_scale
                } else {
                    e.iter()
                        .filter(|v| v.is_finite())
                        .fold(1.0f32, |m, v| m.max(v.abs()))
                };
                for (i, (&a, &e)) in a.iter().zip(e).enumerate() {
                    let same = (a.is_nan() && e.is_nan()) || a == e;
                    let close = (a - e).abs() <= 1e-5 * scale + 1e-4 * e.abs();
                    assert!(
                        same || close,
                        "{shape:?} training {training}: {what}[{i}]: fused {a}, composite {e}"
                    );
                }
            }
        }
    }
}
