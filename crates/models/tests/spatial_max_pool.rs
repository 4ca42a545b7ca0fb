//! FReLU followed by the CNN's 2×2 max-pool as one op (`kernels::activation_max_pool`, the
//! spatial max's output pooled plane by plane) against the two layers run by Burn (FReLU's
//! composite grouped convolution, BatchNorm and maximum, then `MaxPool2d`): output, input
//! gradient, every parameter gradient and the running statistics, in training and in
//! evaluation, at even and odd plane sizes and batch 1.

use activations::burn::module::Module;
use activations::burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use activations::burn::tensor::Gradients;
use activations::fused::without_fused;
use activations::{Activation, ActivationConfig};
use actlab_models::kernels::activation_max_pool;

mod common;
use common::{assert_close, device, device_rng_turn, host_random, run_with_grads, twins, values};

/// The gradients of FReLU's parameters: the depthwise weights and bias, then γ and β.
fn parameter_grads(activation: &Activation, grads: &Gradients) -> Vec<Vec<f32>> {
    let Activation::Frelu(module) = activation else {
        unreachable!("built as frelu");
    };
    vec![
        values(module.conv_frelu.weight.grad(grads).unwrap()),
        values(
            module
                .conv_frelu
                .bias
                .as_ref()
                .unwrap()
                .grad(grads)
                .unwrap(),
        ),
        values(module.bn_frelu.gamma.grad(grads).unwrap()),
        values(module.bn_frelu.beta.grad(grads).unwrap()),
    ]
}

fn running(activation: &Activation) -> Vec<f32> {
    let Activation::Frelu(module) = activation else {
        unreachable!("built as frelu");
    };
    let bn = &module.bn_frelu;
    let mut list = values(bn.running_mean.value_sync());
    list.extend(values(bn.running_var.value_sync()));
    list
}

fn layers(
    activation: &Activation,
    pool: &MaxPool2d,
    x: activations::burn::tensor::Tensor<4>,
) -> activations::burn::tensor::Tensor<4> {
    pool.forward(activation.forward(x))
}

#[test]
fn frelu_and_max_pool_as_one_op_match_the_two_layers_run_by_burn() {
    let _turn = device_rng_turn();
    let device = device();
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let config: ActivationConfig = "frelu".parse().unwrap();
    // (batch, channels, height, width): even planes, odd planes (a dropped last row and
    // column), batch 1, and the smallest plane with a window.
    for (index, (batch, channels, h, w)) in
        [(4, 6, 10, 10), (3, 5, 9, 7), (1, 3, 6, 5), (2, 2, 2, 3)]
            .into_iter()
            .enumerate()
    {
        device.seed(50 + index as u64);
        let (fused_act, layers_act) = twins(&config, channels, &device);
        let x = host_random([batch, channels, h, w], 70 + index as u64, &device);
        let fused = |x| activation_max_pool(&fused_act, &pool, x);
        let kernel_run = run_with_grads(&x, 11, fused, |g| parameter_grads(&fused_act, g));
        // Reduced in a fixed order: a second run gives the same bits (the running statistics
        // move, but in training they do not enter the output).
        let again = run_with_grads(&x, 11, fused, |g| parameter_grads(&fused_act, g));
        for (i, (a, b)) in kernel_run.iter().zip(&again).enumerate() {
            let (a, b): (Vec<u32>, Vec<u32>) = (
                a.iter().map(|v| v.to_bits()).collect(),
                b.iter().map(|v| v.to_bits()).collect(),
            );
            assert_eq!(a, b, "case {index} tensor {i}: two runs differ");
        }
        let separate = |x| layers(&layers_act, &pool, x);
        let params = |g: &Gradients| parameter_grads(&layers_act, g);
        let burn_run = without_fused(|| run_with_grads(&x, 11, separate, params));
        // As many training steps as the fused side, for the running statistics.
        without_fused(|| run_with_grads(&x, 11, separate, params));
        assert_eq!(kernel_run.len(), burn_run.len());
        for (i, (a, e)) in kernel_run.iter().zip(&burn_run).enumerate() {
            assert_close(&format!("case {index} tensor {i}"), a, e);
        }
        let label = format!("case {index} running statistics");
        assert_close(&label, &running(&fused_act), &running(&layers_act));

        let (fused_act, layers_act) = (fused_act.valid(), layers_act.valid());
        let x = x.inner();
        let expected = without_fused(|| layers(&layers_act, &pool, x.clone()));
        let actual = activation_max_pool(&fused_act, &pool, x);
        let label = format!("case {index} evaluation output");
        assert_close(&label, &values(actual), &values(expected));
    }
}

/// Ties between `x` and the condition (here `γ = β = 0`, so the condition is 0, and a third of
/// the inputs exactly 0, often a window's winner): each side gets half the gradient, as
/// `torch.max(a, b)` gives it. The fused backward's first pass reads codes the forward kept at
/// the winners, which carry no half shares; a tie there must send the plane back to its dense
/// gradient.
#[test]
fn ties_at_the_spatial_max_split_the_gradient_as_the_two_layers_do() {
    use activations::burn::module::Param;
    use activations::burn::tensor::Tensor;
    let _turn = device_rng_turn();
    let device = device();
    device.seed(60);
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let config: ActivationConfig = "frelu".parse().unwrap();
    let (channels, zeroed) = (4, |activation: Activation| {
        let Activation::Frelu(mut module) = activation else {
            unreachable!("built as frelu");
        };
        let zeros = Tensor::<1>::zeros([4], &device);
        module.bn_frelu.gamma = Param::from_tensor(zeros.clone());
        module.bn_frelu.beta = Param::from_tensor(zeros);
        Activation::Frelu(module)
    });
    let (fused_act, layers_act) = twins(&config, channels, &device);
    let (fused_act, layers_act) = (zeroed(fused_act), zeroed(layers_act));
    // Values in (−3.4, 3.4) shifted down: about a third at or above 0, clamped to exactly 0.
    let x = host_random([3, channels, 8, 6], 77, &device)
        .sub_scalar(1.5)
        .clamp_max(0.0);
    let fused = |x| activation_max_pool(&fused_act, &pool, x);
    let kernel_run = run_with_grads(&x, 13, fused, |g| parameter_grads(&fused_act, g));
    let separate = |x| layers(&layers_act, &pool, x);
    let params = |g: &Gradients| parameter_grads(&layers_act, g);
    let burn_run = without_fused(|| run_with_grads(&x, 13, separate, params));
    for (i, (a, e)) in kernel_run.iter().zip(&burn_run).enumerate() {
        assert_close(&format!("ties: tensor {i}"), a, e);
    }
}
