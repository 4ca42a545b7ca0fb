//! The conv block of the kinds whose parameters a network computes per sample from the channel
//! means (Meta-ACON, DyReLU: `Activation::per_sample_channelwise`, the path APReLU's block
//! takes, `tests/aprelu_block.rs`) against the three layers run by Burn: output, input
//! gradient, the convolution's and the activation's parameter gradients, in training and in
//! evaluation.

use activations::burn::module::Module;
use activations::burn::nn::PaddingConfig2d;
use activations::burn::nn::conv::{Conv2d, Conv2dConfig};
use activations::burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use activations::burn::tensor::{Gradients, Tensor};
use activations::fused::without_fused;
use activations::{Activation, ActivationConfig};
use actlab_models::kernels::conv_block;

mod common;
use common::{
    assert_close, assert_close_within, device, device_rng_turn, host_random, run_with_grads, twins,
    values,
};

/// The gradients of the convolution's and the activation's parameters, in a fixed order.
fn parameter_grads(conv: &Conv2d, activation: &Activation, grads: &Gradients) -> Vec<Vec<f32>> {
    let mut list = vec![
        values(conv.weight.grad(grads).unwrap()),
        values(conv.bias.as_ref().unwrap().grad(grads).unwrap()),
    ];
    let linears = match activation {
        Activation::MetaAcon(module) => {
            list.push(values(module.p1.grad(grads).unwrap()));
            list.push(values(module.p2.grad(grads).unwrap()));
            for norm in [&module.bn1, &module.bn2] {
                list.push(values(norm.gamma.grad(grads).unwrap()));
            }
            [&module.fc1, &module.fc2]
        }
        Activation::Dyrelu(module) => [&module.fc1, &module.fc2],
        other => unreachable!("built as a per-sample kind, got {}", other.name()),
    };
    for linear in linears {
        list.push(values(linear.weight.grad(grads).unwrap()));
        list.push(values(linear.bias.as_ref().unwrap().grad(grads).unwrap()));
    }
    list
}

/// Whether tensor `index` of a run (the output, the input gradient, then [`parameter_grads`])
/// is 0 by construction: Meta-ACON's linear biases feed training-mode BatchNorms, which
/// subtract the batch mean and with it the bias.
fn zero_by_construction(activation: &Activation, index: usize) -> bool {
    matches!(activation, Activation::MetaAcon(_)) && (index == 9 || index == 11)
}

fn layers(conv: &Conv2d, activation: &Activation, pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    pool.forward(activation.forward(conv.forward(x)))
}

#[test]
fn per_sample_conv_blocks_match_the_three_layers_run_by_burn() {
    let _turn = device_rng_turn();
    let device = device();
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let kinds = [
        r#"{ kind = "meta_acon", reduction = 2 }"#,
        r#"{ kind = "dyrelu", reduction = 2 }"#,
    ];
    for kind in kinds {
        let config: ActivationConfig = toml::from_str::<toml::Table>(&format!("a = {kind}"))
            .unwrap()["a"]
            .clone()
            .try_into()
            .unwrap();
        // (batch, in, out, height, width): even and odd output planes.
        for (index, (batch, c_in, c_out, h, w)) in
            [(4, 2, 6, 10, 10), (3, 3, 4, 9, 7)].into_iter().enumerate()
        {
            device.seed(30 + index as u64);
            let conv = Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&device);
            let (fused_act, layers_act) = twins(&config, c_out, &device);
            let x = host_random([batch, c_in, h, w], 60 + index as u64, &device);
            let fused = |x| conv_block(&conv, &fused_act, &pool, x).expect("the block runs fused");
            let kernel_run =
                run_with_grads(&x, 9, fused, |g| parameter_grads(&conv, &fused_act, g));
            let separate = |x| layers(&conv, &layers_act, &pool, x);
            let params = |g: &Gradients| parameter_grads(&conv, &layers_act, g);
            let burn_run = without_fused(|| run_with_grads(&x, 9, separate, params));
            assert_eq!(kernel_run.len(), burn_run.len());
            for (i, (a, e)) in kernel_run.iter().zip(&burn_run).enumerate() {
                let label = format!("{} case {index} tensor {i}", config.name());
                if zero_by_construction(&fused_act, i) {
                    // Both sides are rounding noise around 0 (up to 3e-5 seen, in either
                    // sign), which no closeness test of the two can compare.
                    for v in a.iter().chain(e) {
                        assert!(v.abs() <= 1e-4, "{label}: {v} should be 0 up to rounding");
                    }
                } else if matches!(fused_act, Activation::MetaAcon(_)) && i >= 6 {
                    // Meta-ACON's network's parameters: their gradients come through its
                    // BatchNorms' backward, whose cancelling sums leave 2e-5 of rounding.
                    assert_close_within(&label, a, e, 1e-4);
                } else {
                    assert_close(&label, a, e);
                }
            }

            let (conv, fused_act, layers_act) =
                (conv.valid(), fused_act.valid(), layers_act.valid());
            let x = x.inner();
            let expected = without_fused(|| layers(&conv, &layers_act, &pool, x.clone()));
            let actual = conv_block(&conv, &fused_act, &pool, x).expect("the block runs fused");
            let label = format!("{} case {index} evaluation output", config.name());
            assert_close(&label, &values(actual), &values(expected));
        }
    }
}
