//! APReLU's conv block (`actlab_models::kernels::conv_block` with APReLU: the convolution with the
//! squeeze in its output pass, the excitation by Burn, the apply and the pooling in one pass,
//! and a backward that builds each sample's output gradient once) against the three layers run
//! by Burn: output, input gradient, the convolution's and every APReLU parameter's gradient,
//! the running statistics, and evaluation mode.

use activations::burn::module::Module;
use activations::burn::nn::PaddingConfig2d;
use activations::burn::nn::conv::{Conv2d, Conv2dConfig};
use activations::burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use activations::burn::tensor::{Device, Gradients, Tensor};
use activations::fused::without_fused;
use activations::{Activation, ActivationConfig, AprRelu};
use actlab_models::kernels::conv_block;

mod common;
use common::{assert_close, device, device_rng_turn, host_random, run_with_grads, twins, values};

/// The module inside an APReLU activation.
fn aprelu(activation: &Activation) -> &AprRelu {
    match activation {
        Activation::Aprelu(module) => module,
        _ => unreachable!("built as APReLU"),
    }
}

/// The gradients of the convolution's and APReLU's parameters, in a fixed order.
fn parameter_grads(conv: &Conv2d, activation: &Activation, grads: &Gradients) -> Vec<Vec<f32>> {
    let module = aprelu(activation);
    let mut list = vec![
        values(conv.weight.grad(grads).unwrap()),
        values(conv.bias.as_ref().unwrap().grad(grads).unwrap()),
    ];
    for linear in [&module.fc1, &module.fc2] {
        list.push(values(linear.weight.grad(grads).unwrap()));
        list.push(values(linear.bias.as_ref().unwrap().grad(grads).unwrap()));
    }
    for norm in [&module.bn1, &module.bn2] {
        list.push(values(norm.gamma.grad(grads).unwrap()));
        list.push(values(norm.beta.grad(grads).unwrap()));
    }
    list
}

/// Both batch norms' running means and variances.
fn running_statistics(activation: &Activation) -> Vec<Vec<f32>> {
    let module = aprelu(activation);
    [&module.bn1, &module.bn2]
        .iter()
        .flat_map(|norm| {
            [
                values(norm.running_mean.value_sync()),
                values(norm.running_var.value_sync()),
            ]
        })
        .collect()
}

/// Two APReLU modules with the same parameters and running statistics, which they do not share.
fn twin_modules(channels: usize, device: &Device) -> (Activation, Activation) {
    twins(
        &ActivationConfig::Aprelu(Default::default()),
        channels,
        device,
    )
}

fn layers(conv: &Conv2d, activation: &Activation, pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    pool.forward(activation.forward(conv.forward(x)))
}

#[test]
fn aprelu_conv_block_matches_the_three_layers_run_by_burn() {
    let _turn = device_rng_turn();
    let device = device();
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    // (batch, in, out, kernel, stride, padding, height, width): even and odd output planes,
    // a single input channel, a strided 5×5 convolution.
    let cases = [
        (4, 1, 8, [3, 3], [1, 1], 1, 10, 10),
        (3, 3, 5, [3, 3], [1, 1], 1, 9, 7),
        (5, 2, 3, [5, 5], [2, 2], 2, 11, 12),
    ];
    for (index, (batch, c_in, c_out, kernel, stride, padding, h, w)) in
        cases.into_iter().enumerate()
    {
        device.seed(20 + index as u64);
        let conv = Conv2dConfig::new([c_in, c_out], kernel)
            .with_stride(stride)
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .init(&device);
        let (fused_act, layers_act) = twin_modules(c_out, &device);
        let before = running_statistics(&fused_act);
        let x = host_random([batch, c_in, h, w], 40 + index as u64, &device);

        let fused = |x| conv_block(&conv, &fused_act, &pool, x).expect("the block runs fused");
        let kernel_run = run_with_grads(&x, 9, fused, |g| parameter_grads(&conv, &fused_act, g));
        let separate = |x| layers(&conv, &layers_act, &pool, x);
        let params = |g: &Gradients| parameter_grads(&conv, &layers_act, g);
        let burn_run = without_fused(|| run_with_grads(&x, 9, separate, params));

        let names = [
            "output",
            "input grad",
            "conv weight grad",
            "conv bias grad",
            "fc1 weight grad",
            "fc1 bias grad",
            "fc2 weight grad",
            "fc2 bias grad",
            "bn1 gamma grad",
            "bn1 beta grad",
            "bn2 gamma grad",
            "bn2 beta grad",
        ];
        assert_eq!(kernel_run.len(), names.len());
        assert_eq!(burn_run.len(), names.len());
        for (name, (a, e)) in names.iter().zip(kernel_run.iter().zip(&burn_run)) {
            assert_close(&format!("case {index} {name}"), a, e);
        }

        let after = running_statistics(&fused_act);
        assert_ne!(
            before, after,
            "case {index}: a training step updates the statistics"
        );
        for (i, (a, e)) in after
            .iter()
            .zip(running_statistics(&layers_act))
            .enumerate()
        {
            assert_close(&format!("case {index} running statistic {i}"), a, &e);
        }

        // Evaluation: no autodiff, the running statistics.
        let (conv, fused_act, layers_act) = (conv.valid(), fused_act.valid(), layers_act.valid());
        let x = x.inner();
        let expected = without_fused(|| layers(&conv, &layers_act, &pool, x.clone()));
        let actual = conv_block(&conv, &fused_act, &pool, x).expect("the block runs fused");
        assert_close(
            &format!("case {index} evaluation output"),
            &values(actual),
            &values(expected),
        );
    }
}

/// A block whose APReLU was built for another channel count is left to the layers (which
/// report it), as is a block with the kernels off.
#[test]
fn aprelu_conv_blocks_the_kernels_do_not_take_fall_back() {
    let _turn = device_rng_turn();
    let device = device();
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let conv = Conv2dConfig::new([2, 3], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x = host_random([2, 2, 6, 6], 3, &device);
    let (wrong_width, _) = twin_modules(4, &device);
    assert!(conv_block(&conv, &wrong_width, &pool, x.clone()).is_err());
    let (aprelu, _) = twin_modules(3, &device);
    assert!(without_fused(
        || conv_block(&conv, &aprelu, &pool, x).is_err()
    ));
}
