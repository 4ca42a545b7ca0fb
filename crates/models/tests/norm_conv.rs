//! `norm_conv2d` and `norm_conv2d_residual` (BatchNorm, activation and convolution as one op)
//! against the same three layers run one by one through the kernels — output, the gradients of
//! x, γ, β, the weight, the bias and the residual, and the running statistics, all to the bit
//! — and against Burn's composite ops within rounding: on the direct path at 28×28, 7×7
//! planes stacked with a short stack, stride 2, the im2col path at batch 1 and a 1×1
//! projection, with activations whose backward reads the input or the output; in evaluation;
//! and a residual block whose first BatchNorm takes the shortcut's gradient (the handoff).
mod common;

use activations::burn::module::{Module, Param};
use activations::burn::nn::conv::{Conv2d, Conv2dConfig};
use activations::burn::nn::{BatchNorm, PaddingConfig2d};
use activations::burn::tensor::TensorData;
use activations::burn::tensor::{Device, Gradients, Tensor};
use activations::fused::without_fused;
use activations::{Activation, ActivationConfig, PReluConfig};
use actlab_models::kernels::{
    ResidualHandoff, batch_norm, batch_norm_of_residual, conv2d, conv2d_residual, norm_conv2d,
    norm_conv2d_residual,
};
use common::{assert_close, device, host_random, run_with_grads, values};

fn norm(channels: usize, seed: u64, device: &Device) -> BatchNorm {
    common::drawn_norm(channels, seed, device)
}

/// A convolution with drawn weights (and bias).
#[allow(clippy::too_many_arguments)]
fn conv(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    bias: bool,
    seed: u64,
    device: &Device,
) -> Conv2d {
    let padding = kernel / 2;
    let mut conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(bias)
        .init(device);
    let scale = 1.0 / ((c_in * kernel * kernel) as f32).sqrt();
    conv.weight = Param::from_tensor(
        host_random([c_out, c_in, kernel, kernel], seed, device).mul_scalar(scale),
    );
    if bias {
        conv.bias = Some(Param::from_tensor(host_random([c_out], seed + 1, device)));
    }
    conv
}

/// The layers of one case; each call builds its own (running statistics are shared between
/// clones).
struct Layers {
    norm: BatchNorm,
    activation: Activation,
    conv: Conv2d,
}

/// The parameters' gradients: γ, β, the weight, the bias when there is one, the residual's
/// when given.
fn parameter_grads(
    layers: &Layers,
    residual: Option<&Tensor<4>>,
    grads: &Gradients,
) -> Vec<Vec<f32>> {
    let mut list = vec![
        values(layers.norm.gamma.grad(grads).unwrap()),
        values(layers.norm.beta.grad(grads).unwrap()),
        values(layers.conv.weight.grad(grads).unwrap()),
    ];
    if let Some(bias) = &layers.conv.bias {
        list.push(values(bias.grad(grads).unwrap()));
    }
    if let Some(residual) = residual {
        list.push(values(residual.grad(grads).unwrap()));
    }
    list
}

fn running(norm: &BatchNorm) -> Vec<f32> {
    let mut list = values(norm.running_mean.value_sync());
    list.extend(values(norm.running_var.value_sync()));
    list
}

/// `[output, x grad, parameter grads..., running statistics]` of the fused op (`fused`) or
/// the layers one by one.
/// Every parameter gradient of `module` that `grads` holds, in module order.
fn module_grads(module: &Activation, grads: &Gradients) -> Vec<Vec<f32>> {
    struct Collect<'a>(&'a Gradients, Vec<Vec<f32>>);
    impl activations::burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = param.grad(self.0) {
                self.1.push(values(grad));
            }
        }
    }
    let mut collect = Collect(grads, Vec::new());
    module.visit(&mut collect);
    collect.1
}

/// `([output, x grad, parameter grads..., running statistics], the activation's parameter
/// grads)` of the fused op (`fused`) or the layers one by one.
fn run(
    layers: &Layers,
    x: &Tensor<4>,
    residual: Option<&Tensor<4>>,
    fused: bool,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let Layers {
        norm,
        activation,
        conv,
    } = layers;
    let forward = |x: Tensor<4>| match (residual, fused) {
        (None, true) => norm_conv2d(norm, activation, conv, x, None),
        (Some(residual), true) => {
            norm_conv2d_residual(norm, activation, conv, x, residual.clone(), None)
        }
        (None, false) => conv2d(conv, activation.forward(batch_norm(norm, x))),
        (Some(residual), false) => conv2d_residual(
            conv,
            activation.forward(batch_norm(norm, x)),
            residual.clone(),
            None,
        ),
    };
    let learned = std::cell::RefCell::new(Vec::new());
    let mut out = run_with_grads(x, 3, forward, |grads| {
        *learned.borrow_mut() = module_grads(activation, grads);
        parameter_grads(layers, residual, grads)
    });
    out.push(running(norm));
    (out, learned.into_inner())
}

const NAMES: [&str; 8] = [
    "output",
    "x grad",
    "gamma grad",
    "beta grad",
    "weight grad",
    "bias grad",
    "residual grad",
    "running",
];

#[test]
fn norm_conv_matches_the_layers_one_by_one() {
    let device = device();
    // (activation, in, out, kernel, stride, bias, batch, height, width, residual)
    let cases = [
        ("relu", 16, 16, 3, 1, false, 3, 28, 28, true),
        // 7×7 planes stacked sixteen at a time; 19 samples leave short stacks.
        ("relu", 5, 7, 3, 1, true, 19, 7, 7, true),
        // Stride 2 on phase planes; GELU's backward reads the input.
        ("gelu", 4, 6, 3, 2, true, 2, 14, 14, false),
        // Batch 1 on the im2col path (a 6×5 output); ELU's backward reads the output.
        ("elu", 3, 5, 3, 1, false, 1, 6, 5, false),
        // A 1×1 stride-2 projection (GEMM).
        ("silu", 4, 6, 1, 2, false, 2, 9, 9, false),
        ("leaky_relu", 6, 6, 3, 1, true, 4, 9, 9, true),
        // Channel-wise: PReLU's one slope, then one per channel (set to both signs below),
        // whose gradients the op sums.
        ("prelu", 4, 5, 3, 1, false, 3, 8, 8, true),
        ("prelu_per_channel", 5, 5, 3, 1, false, 19, 7, 7, true),
    ];
    for (index, (name, c_in, c_out, kernel, stride, bias, batch, h, w, with_residual)) in
        cases.into_iter().enumerate()
    {
        let seed = 100 * index as u64;
        let config: ActivationConfig = match name {
            "prelu_per_channel" => ActivationConfig::Prelu(PReluConfig {
                per_channel: true,
                init: 0.25,
            }),
            name => name.parse().unwrap(),
        };
        let layers = |train: bool| {
            let mut norm = norm(c_in, seed + 1, &device);
            if !train {
                norm.training = Param::from_bool(false);
            }
            let mut activation = config.init(c_in, &device);
            if let Activation::Prelu(prelu) = &mut activation {
                let count = prelu.weight.dims()[0];
                let slopes: Vec<f32> = (0..count).map(|c| 0.3 - 0.2 * c as f32).collect();
                let slopes = TensorData::new(slopes, [count]);
                prelu.weight = Param::from_tensor(Tensor::from_data(slopes, &device));
            }
            Layers {
                norm,
                activation,
                conv: conv(c_in, c_out, kernel, stride, bias, seed + 10, &device),
            }
        };
        let x = host_random([batch, c_in, h, w], seed + 20, &device);
        let out = [
            (h + 2 * (kernel / 2) - kernel) / stride + 1,
            (w + 2 * (kernel / 2) - kernel) / stride + 1,
        ];
        let residual = with_residual.then(|| {
            host_random([batch, c_out, out[0], out[1]], seed + 30, &device).require_grad()
        });
        for train in [true, false] {
            let what = format!("case {index} ({name}, training {train})");
            let (fused, fused_learned) = run(&layers(train), &x, residual.as_ref(), true);
            let (split, split_learned) = run(&layers(train), &x, residual.as_ref(), false);
            let (burn, burn_learned) =
                without_fused(|| run(&layers(train), &x, residual.as_ref(), false));
            // The slopes' gradients: summed per sample and plane here, over the tensor there.
            assert_eq!(fused_learned.len(), usize::from(name.starts_with("prelu")));
            for (slot, ((fused, split), burn)) in fused_learned
                .iter()
                .zip(&split_learned)
                .zip(&burn_learned)
                .enumerate()
            {
                assert_close(&format!("{what}: slope grad {slot}"), fused, split);
                assert_close(
                    &format!("{what}: slope grad {slot} against Burn"),
                    fused,
                    burn,
                );
            }
            let names = NAMES.iter().filter(|name| match **name {
                "bias grad" => bias,
                "residual grad" => with_residual,
                _ => true,
            });
            assert_eq!(fused.len(), split.len());
            for (name, ((fused, split), burn)) in names.zip(fused.iter().zip(&split).zip(&burn)) {
                assert_eq!(fused, split, "{what}: {name} against the layers one by one");
                assert_close(&format!("{what}: {name} against Burn"), fused, burn);
            }
        }
    }
}

/// Outside autodiff the op normalises with the running statistics and leaves them alone.
#[test]
fn evaluation_uses_the_running_statistics() {
    let device = Device::flex();
    let norm = norm(4, 1, &device);
    let activation = ActivationConfig::Relu.init(4, &device);
    let conv = conv(4, 5, 3, 1, true, 2, &device);
    let x = host_random([3, 4, 8, 8], 3, &device);
    let before = running(&norm);
    let fused = values(norm_conv2d(&norm, &activation, &conv, x.clone(), None));
    let split = values(conv2d(&conv, activation.forward(batch_norm(&norm, x))));
    assert_eq!(fused, split);
    assert_eq!(running(&norm), before);
}

/// A pre-activation block, `norm_conv2d_residual(norm_conv2d(x)) + x`, whose first BatchNorm
/// takes the shortcut's gradient through the handoff: every gradient equals the block built
/// from the layers one by one with the same handoff, to the bit.
#[test]
fn a_block_with_the_residual_handoff_matches_the_layers() {
    let device = device();
    let channels = 8;
    let x = host_random([5, channels, 7, 9], 1, &device);
    let make = || {
        let first = Layers {
            norm: norm(channels, 2, &device),
            activation: ActivationConfig::Relu.init(channels, &device),
            conv: conv(channels, channels, 3, 1, false, 3, &device),
        };
        let second = Layers {
            norm: norm(channels, 4, &device),
            activation: ActivationConfig::Relu.init(channels, &device),
            conv: conv(channels, channels, 3, 1, false, 5, &device),
        };
        (first, second)
    };
    let block = |fused: bool| {
        let (first, second) = make();
        let forward = |x: Tensor<4>| {
            let handoff = ResidualHandoff::default();
            if fused {
                let hidden = norm_conv2d(
                    &first.norm,
                    &first.activation,
                    &first.conv,
                    x.clone(),
                    Some(&handoff),
                );
                norm_conv2d_residual(
                    &second.norm,
                    &second.activation,
                    &second.conv,
                    hidden,
                    x,
                    Some(&handoff),
                )
            } else {
                let pre = batch_norm_of_residual(&first.norm, x.clone(), &handoff);
                let hidden = conv2d(&first.conv, first.activation.forward(pre));
                let activated = second.activation.forward(batch_norm(&second.norm, hidden));
                conv2d_residual(&second.conv, activated, x, Some(&handoff))
            }
        };
        run_with_grads(&x, 3, forward, |grads| {
            let mut list = parameter_grads(&first, None, grads);
            list.extend(parameter_grads(&second, None, grads));
            list
        })
    };
    let (fused, split) = (block(true), block(false));
    let burn = without_fused(|| block(false));
    for (slot, ((fused, split), burn)) in fused.iter().zip(&split).zip(&burn).enumerate() {
        assert_eq!(fused, split, "value {slot} against the layers one by one");
        assert_close(&format!("value {slot} against Burn"), fused, burn);
    }
}
