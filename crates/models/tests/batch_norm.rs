//! The fused BatchNorm (`kernels::batch_norm`) against Burn's `batch_norm_train` run as
//! composite tensor ops: output, every gradient and the running statistics, at odd shapes,
//! batch 1, one value per channel and a channel far from zero; and the running statistics
//! against PyTorch's rule computed on the host.
mod common;

use activations::burn::module::Param;
use activations::burn::nn::BatchNorm;
use activations::burn::tensor::{Device, Gradients, Tensor};
use activations::fused::without_fused;
use actlab_models::kernels::batch_norm;
use common::{assert_close, device, host_random, run_with_grads, values};

fn norm(channels: usize, seed: u64, device: &Device) -> BatchNorm {
    common::drawn_norm(channels, seed, device)
}

fn parameter_grads(norm: &BatchNorm, grads: &Gradients) -> Vec<Vec<f32>> {
    vec![
        values(norm.gamma.grad(grads).unwrap()),
        values(norm.beta.grad(grads).unwrap()),
    ]
}

fn running(norm: &BatchNorm) -> [Vec<f32>; 2] {
    [
        values(norm.running_mean.value_sync()),
        values(norm.running_var.value_sync()),
    ]
}

/// `batch_norm` through the kernels against Burn's composite ops on `x`, for two twin layers
/// from `make`: output, every gradient and the running statistics; returns the two layers.
fn check_against_composite(
    what: &str,
    x: &Tensor<4>,
    make: impl Fn() -> BatchNorm,
) -> (BatchNorm, BatchNorm) {
    let (fused_norm, burn_norm) = (make(), make());
    let fused = run_with_grads(
        x,
        3,
        |x| batch_norm(&fused_norm, x),
        |grads| parameter_grads(&fused_norm, grads),
    );
    let burn = without_fused(|| {
        run_with_grads(
            x,
            3,
            |x| batch_norm(&burn_norm, x),
            |grads| parameter_grads(&burn_norm, grads),
        )
    });
    for (name, (a, e)) in ["output", "input grad", "gamma grad", "beta grad"]
        .iter()
        .zip(fused.iter().zip(&burn))
    {
        assert_close(&format!("{what} {name}"), a, e);
    }
    for (name, (a, e)) in ["running mean", "running var"]
        .iter()
        .zip(running(&fused_norm).iter().zip(&running(&burn_norm)))
    {
        assert_close(&format!("{what} {name}"), a, e);
    }
    (fused_norm, burn_norm)
}

#[test]
fn fused_batch_norm_matches_burns_composite_op() {
    let device = device();
    let cases: [([usize; 4], f32); 7] = [
        ([3, 5, 7, 9], 0.0),
        ([1, 4, 5, 3], 0.0),
        ([2, 3, 1, 1], 0.0),
        ([4, 2, 28, 28], 0.0),
        ([5, 6, 4, 4], 0.0),
        // A mean far from zero: the statistics must keep the spread's digits.
        ([3, 4, 6, 6], 100.0),
        // Sums over runs of 8 samples: two full runs and a short one.
        ([19, 3, 5, 5], 0.0),
    ];
    for (index, (shape, offset)) in cases.into_iter().enumerate() {
        let seed = 10 * index as u64;
        let x = host_random(shape, seed, &device).add_scalar(offset);
        let _ = check_against_composite(&format!("case {index}"), &x, || {
            norm(shape[1], seed + 5, &device)
        });
    }
}

/// `running = 0.9 · running + 0.1 · batch`, with the batch's unbiased variance, as
/// `torch.nn.BatchNorm2d` (momentum 0.1) — through the kernels and through Burn's op.
#[test]
fn running_statistics_follow_pytorch() {
    let device = device();
    let shape = [3, 2, 4, 5];
    let x = host_random(shape, 7, &device);
    let data = values(x.clone());
    let plane = shape[2] * shape[3];
    let m = (shape[0] * plane) as f64;
    for fused in [true, false] {
        let norm = norm(shape[1], 11, &device);
        let [mean_before, var_before] = running(&norm);
        let step = || batch_norm(&norm, x.clone());
        let _ = if fused { step() } else { without_fused(step) };
        let [mean_after, var_after] = running(&norm);
        for c in 0..shape[1] {
            let channel: Vec<f64> = (0..shape[0])
                .flat_map(|n| {
                    let start = (n * shape[1] + c) * plane;
                    data[start..start + plane].iter().map(|&v| v as f64)
                })
                .collect();
            let mean = channel.iter().sum::<f64>() / m;
            let unbiased = channel.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0);
            let expected_mean = 0.9 * mean_before[c] as f64 + 0.1 * mean;
            let expected_var = 0.9 * var_before[c] as f64 + 0.1 * unbiased;
            assert!(
                (mean_after[c] as f64 - expected_mean).abs() < 1e-5,
                "fused {fused}, channel {c}: running mean {} != {expected_mean}",
                mean_after[c]
            );
            assert!(
                (var_after[c] as f64 - expected_var).abs() < 1e-5,
                "fused {fused}, channel {c}: running var {} != {expected_var}",
                var_after[c]
            );
        }
    }
}

/// In evaluation (the layer's training flag off) on an autodiff device, the fused op with the
/// running statistics as constants against Burn's composite forward: output, input gradient
/// and γ's and β's gradients, at the shapes of the training test; and an infinite input keeps
/// a finite gradient (the statistics are constants, so x does not enter it).
#[test]
fn evaluation_gradients_match_burns_composite_op() {
    let device = device();
    for (index, shape) in [[3, 5, 7, 9], [1, 4, 5, 3], [2, 3, 1, 1], [4, 2, 28, 28]]
        .into_iter()
        .enumerate()
    {
        let seed = 100 + 10 * index as u64;
        let x = host_random(shape, seed, &device);
        let (fused_norm, burn_norm) =
            check_against_composite(&format!("eval case {index}"), &x, || {
                let mut norm = norm(shape[1], seed + 5, &device);
                norm.training = Param::from_bool(false);
                norm
            });
        // Evaluation leaves the running statistics exactly as they were.
        assert_eq!(
            running(&fused_norm),
            running(&burn_norm),
            "eval case {index}"
        );
    }
    let mut norm = norm(2, 7, &device);
    norm.training = Param::from_bool(false);
    let x = Tensor::<4>::from_floats(
        [[[[f32::INFINITY, 1.0]], [[-2.0, f32::NEG_INFINITY]]]],
        &device,
    )
    .require_grad();
    let grads = batch_norm(&norm, x.clone()).sum().backward();
    let input_grad = values(x.grad(&grads).unwrap());
    assert!(input_grad.iter().all(|g| g.is_finite()), "{input_grad:?}");
}

/// Outside training (no autodiff, or the layer's training flag off) it uses the running
/// statistics, as Burn's forward, and leaves them alone.
#[test]
fn evaluation_uses_the_running_statistics() {
    let device = Device::flex();
    let norm = norm(3, 21, &device);
    let x: Tensor<4> = host_random([2, 3, 4, 4], 22, &device);
    let before = running(&norm);
    assert_close(
        "eval",
        &values(batch_norm(&norm, x.clone())),
        &values(norm.forward(x)),
    );
    assert_eq!(running(&norm), before);
}

/// A residual block's shape, `conv2(relu(conv1(relu(bn(x))))) + x`, with the BatchNorm taking
/// the residual's gradient for `x` ([`batch_norm_of_residual`] and [`conv2d_residual`] sharing
/// a handoff): every gradient equals the same graph without the handoff to the bit (the sum is
/// the one autodiff makes), and Burn's composite ops within rounding; with the handoff given
/// to a residual that is another tensor, the gradient still reaches `x` through autodiff.
#[test]
fn a_residual_handoff_gives_autodiffs_gradients() {
    use activations::burn::nn::PaddingConfig2d;
    use activations::burn::nn::conv::{Conv2d, Conv2dConfig};
    use actlab_models::kernels::{ResidualHandoff, batch_norm_of_residual, conv2d_residual};

    let device = device();
    let shape = [3, 8, 9, 7];
    let x = host_random(shape, 21, &device);
    let conv = |seed: u64| -> Conv2d {
        let mut conv = Conv2dConfig::new([8, 8], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        conv.weight = Param::from_tensor(host_random([8, 8, 3, 3], seed, &device).mul_scalar(0.2));
        conv
    };
    let (first, second) = (conv(31), conv(32));
    // 0: with the handoff; 1: without; 2: a handoff whose residual is not the BatchNorm's input.
    let block = |variant: usize, norm: &BatchNorm, x: Tensor<4>| {
        let handoff = ResidualHandoff::default();
        let pre = match variant {
            1 => batch_norm(norm, x.clone()),
            _ => batch_norm_of_residual(norm, x.clone(), &handoff),
        };
        let hidden = first.forward(pre.clamp_min(0.0)).clamp_min(0.0);
        let residual = match variant {
            2 => x.clone().mul_scalar(1.0),
            _ => x,
        };
        conv2d_residual(
            &second,
            hidden,
            residual,
            (variant != 1).then_some(&handoff),
        )
    };
    let run = |variant: usize| {
        let norm = norm(8, 41, &device);
        run_with_grads(
            &x,
            3,
            |x| block(variant, &norm, x),
            |grads| parameter_grads(&norm, grads),
        )
    };
    let (handed, plain, other) = (run(0), run(1), run(2));
    let burn = without_fused(|| run(1));
    for (slot, name) in ["output", "input grad", "gamma grad", "beta grad"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            handed[slot], plain[slot],
            "{name}: with and without the handoff"
        );
        assert_close(
            &format!("another residual's {name}"),
            &other[slot],
            &plain[slot],
        );
        assert_close(&format!("Burn's {name}"), &handed[slot], &burn[slot]);
    }
}
