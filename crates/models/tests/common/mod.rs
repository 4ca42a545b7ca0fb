//! Helpers shared by the kernel tests: the device, host-drawn data, and a forward+backward
//! run under a random upstream gradient.

use activations::burn::tensor::{Device, Gradients, Tensor, TensorData};
use activations::fused::without_fused;
use actlab_models::kernels::has_kernels;

/// Flex with autodiff, checked to run the kernels (else these tests would compare Burn with
/// itself).
pub fn device() -> Device {
    let device = Device::flex().autodiff();
    let probe = Tensor::<1>::zeros([1], &device);
    assert!(has_kernels(&probe), "the kernels are on for f32 on Flex");
    assert!(
        !without_fused(|| has_kernels(&probe)),
        "without_fused turns them off"
    );
    device
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Close within float rounding of sums of `scale`-sized terms (the two sum in different orders).
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32]) {
    assert_close_within(what, actual, expected, 2e-5);
}

/// [`assert_close`] with the tolerance relative to the scale given.
pub fn assert_close_within(what: &str, actual: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let same = (a.is_nan() && e.is_nan()) || a == e;
        assert!(
            same || (a - e).abs() <= tolerance * scale,
            "{what}[{i}]: kernel {a}, Burn {e} (scale {scale})"
        );
    }
}

/// The device RNG, for a test that seeds it and draws modules' parameters from it: the RNG is
/// shared by the test threads, and one test's draws landing in another's stream change that
/// test's parameters from run to run (its ReLU masks near zero, or a draw whose BatchNorm over
/// three samples amplifies rounding past the tolerance: one run in a few hundred). Hold the
/// turn while seeding and drawing.
#[allow(dead_code)] // tests/batch_norm.rs draws on the host only
pub fn device_rng_turn() -> std::sync::MutexGuard<'static, ()> {
    static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Standard-normal-ish values from a seed, drawn on the host: the device RNG is shared by the
/// test threads, so two draws with the same seed can differ when another test draws in between.
pub fn host_random<const D: usize>(dims: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let len: usize = dims.iter().product();
    let values: Vec<f32> = (0..len)
        .map(|_| {
            // SplitMix64, then a sum of uniforms (Irwin-Hall) for a bell shape.
            let mut sum = 0.0f32;
            for _ in 0..4 {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                sum += (z >> 40) as f32 / (1u64 << 24) as f32;
            }
            (sum - 2.0) * 1.7
        })
        .collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// Output, input gradient and parameter gradients of `forward` under a random upstream gradient.
pub fn run_with_grads(
    x: &Tensor<4>,
    upstream_seed: u64,
    forward: impl Fn(Tensor<4>) -> Tensor<4>,
    params: impl Fn(&Gradients) -> Vec<Vec<f32>>,
) -> Vec<Vec<f32>> {
    let x = x.clone().require_grad();
    let y = forward(x.clone());
    let upstream = host_random(y.dims(), upstream_seed, &x.device());
    let grads = (y.clone() * upstream).sum().backward();
    let mut out = vec![values(y), values(x.grad(&grads).unwrap())];
    out.extend(params(&grads));
    out
}

/// Two modules of `config` for `channels` channels with the same parameters and running
/// statistics, which they do not share.
#[allow(dead_code)] // the block tests use it, tests/kernels.rs does not
pub fn twins(
    config: &activations::ActivationConfig,
    channels: usize,
    device: &Device,
) -> (activations::Activation, activations::Activation) {
    use activations::burn::module::Module;
    let first = config.init(channels, device);
    let second = config
        .init(channels, device)
        .load_record(first.clone().into_record());
    (first, second)
}

/// A BatchNorm with drawn γ, β and running statistics (each call builds its own: running
/// statistics are shared between clones).
#[allow(dead_code)] // the BatchNorm tests use it, the others do not
pub fn drawn_norm(channels: usize, seed: u64, device: &Device) -> activations::burn::nn::BatchNorm {
    use activations::burn::module::{Param, RunningState};
    let mut norm = activations::burn::nn::BatchNormConfig::new(channels).init(device);
    norm.gamma = Param::from_tensor(host_random([channels], seed, device).add_scalar(1.0));
    norm.beta = Param::from_tensor(host_random([channels], seed + 1, device));
    norm.running_mean = RunningState::new(host_random([channels], seed + 2, device));
    norm.running_var = RunningState::new(host_random([channels], seed + 3, device).abs());
    norm
}
