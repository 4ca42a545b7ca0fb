//! Learned parameters' gradients are reduced in a fixed order: two runs of the same step give
//! bit-identical gradients, whatever thread ran which part (Flex's tasks are fixed slices summed
//! in task order; the Cube kernels sum fixed runs, then Burn's reduction sums the runs). The
//! tensors are large enough to be split into many parallel tasks, with runs of one channel
//! crossing task boundaries.

mod common;
use actlab_activations::burn::module::Param;
use actlab_activations::burn::tensor::{Device, Distribution, Tensor, TensorData};
use actlab_activations::{AprReluConfig, FRelu, PRelu, PauConfig};
use common::{to_vec, wgpu_device};

fn bits(values: Vec<f32>) -> Vec<u32> {
    values.into_iter().map(f32::to_bits).collect()
}

/// PReLU's slope gradient on `shape` with `slopes` slopes, and the input gradient, as bits.
fn prelu_gradients(device: &Device, shape: [usize; 4], slopes: usize) -> (Vec<u32>, Vec<u32>) {
    let module = PRelu {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(
                (0..slopes).map(|c| 0.1 + 0.01 * c as f32).collect(),
                [slopes],
            ),
            device,
        )),
    };
    // The same input and upstream gradient on every call: seeded by their values alone.
    let count: usize = shape.iter().product();
    let input: Vec<f32> = (0..count)
        .map(|i| ((i * 7919) % 2003) as f32 / 1000.0 - 1.0)
        .collect();
    let upstream: Vec<f32> = (0..count)
        .map(|i| ((i * 104729) % 997) as f32 / 997.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(input, shape), device).require_grad();
    let upstream = Tensor::<4>::from_data(TensorData::new(upstream, shape), device);
    let grads = (module.forward(x.clone()) * upstream).sum().backward();
    (
        bits(to_vec(module.weight.val().grad(&grads).unwrap())),
        bits(to_vec(x.grad(&grads).unwrap())),
    )
}

fn prelu_is_deterministic(device: &Device) {
    // Per channel, with planes of 4096 (runs cross the 32768-element tasks); one shared slope
    // over 2^19 elements (16 tasks); [N, C]-like rows of all channels.
    for (shape, slopes) in [
        ([8, 16, 64, 64], 16),
        ([8, 16, 64, 64], 1),
        ([4096, 24, 1, 1], 24),
    ] {
        let first = prelu_gradients(device, shape, slopes);
        for _ in 0..3 {
            assert_eq!(
                prelu_gradients(device, shape, slopes),
                first,
                "PReLU {shape:?} with {slopes} slopes: a rerun changed a gradient"
            );
        }
    }
}

fn aprelu_is_deterministic(device: &Device) {
    let module = AprReluConfig::default().init(16, device);
    let input = Tensor::<4>::random([8, 16, 48, 48], Distribution::Normal(0.0, 1.0), device);
    let upstream = Tensor::<4>::random([8, 16, 48, 48], Distribution::Default, device);
    let run = || {
        let x = input.clone().require_grad();
        let grads = (module.forward(x.clone()) * upstream.clone())
            .sum()
            .backward();
        let mut parameters = Vec::new();
        for weight in [&module.fc1.weight, &module.fc2.weight] {
            parameters.push(bits(to_vec(weight.val().grad(&grads).unwrap())));
        }
        (parameters, bits(to_vec(x.grad(&grads).unwrap())))
    };
    let first = run();
    for _ in 0..3 {
        assert!(run() == first, "APReLU: a rerun changed a gradient");
    }
}

/// PAU: 10 coefficients (the reference's CUDA backward sums them with atomic adds), shared by
/// the layer over 2^19 elements and per channel.
fn pau_is_deterministic(device: &Device) {
    for per_channel in [false, true] {
        let config = PauConfig {
            per_channel,
            ..PauConfig::default()
        };
        let module = config.init(16, device);
        let input = Tensor::<4>::random([8, 16, 64, 64], Distribution::Normal(0.0, 2.0), device);
        let upstream = Tensor::<4>::random([8, 16, 64, 64], Distribution::Default, device);
        let run = || {
            let x = input.clone().require_grad();
            let grads = (module.forward(x.clone()) * upstream.clone())
                .sum()
                .backward();
            let parameters = [&module.numerator, &module.denominator]
                .map(|p| bits(to_vec(p.val().grad(&grads).unwrap())));
            (parameters, bits(to_vec(x.grad(&grads).unwrap())))
        };
        let first = run();
        for _ in 0..3 {
            assert!(
                run() == first,
                "PAU (per channel: {per_channel}): a rerun changed a gradient"
            );
        }
    }
}

/// FReLU's fused op: the depthwise weights', bias's, γ's and β's gradients are sums over
/// planes run in parallel, combined in sample order (Flex), or one unit's sums per channel
/// (Cube).
fn frelu_is_deterministic(device: &Device) {
    let module = FRelu::new(16, device);
    let input = Tensor::<4>::random([16, 16, 28, 28], Distribution::Normal(0.0, 1.0), device);
    let upstream = Tensor::<4>::random([16, 16, 28, 28], Distribution::Default, device);
    let run = || {
        let x = input.clone().require_grad();
        let grads = (module.forward(x.clone()) * upstream.clone())
            .sum()
            .backward();
        let weight = bits(to_vec(module.conv_frelu.weight.val().grad(&grads).unwrap()));
        let gamma = bits(to_vec(module.bn_frelu.gamma.val().grad(&grads).unwrap()));
        (weight, gamma, bits(to_vec(x.grad(&grads).unwrap())))
    };
    let first = run();
    for _ in 0..3 {
        assert!(run() == first, "FReLU: a rerun changed a gradient");
    }
}

#[test]
fn learned_parameter_gradients_are_bit_identical_across_runs() {
    let device = Device::flex().autodiff();
    prelu_is_deterministic(&device);
    aprelu_is_deterministic(&device);
    pau_is_deterministic(&device);
    frelu_is_deterministic(&device);
}

#[test]
fn learned_parameter_gradients_are_bit_identical_across_runs_on_wgpu() {
    if let Some(device) = wgpu_device() {
        prelu_is_deterministic(&device);
        aprelu_is_deterministic(&device);
        pau_is_deterministic(&device);
        frelu_is_deterministic(&device);
    }
}
