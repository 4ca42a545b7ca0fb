//! The CNN's convolution and max-pooling kernels (`actlab_models::kernels`) against Burn's own modules,
//! whose values and gradients follow PyTorch: forward, input, weight and bias gradients under a
//! random upstream gradient, over strides, paddings, dilations and odd sizes; PyTorch's tie and
//! NaN rule for max-pooling; the fallbacks; and a whole CNN training step both ways.

use activations::burn::module::{Module, Param};
use activations::burn::nn::conv::Conv2dConfig;
use activations::burn::nn::pool::MaxPool2dConfig;
use activations::burn::nn::{PaddingConfig2d, loss::CrossEntropyLossConfig};
use activations::burn::tensor::{Distribution, Gradients, Int, Tensor, TensorData};
use activations::fused::without_fused;
use activations::{Activation, ActivationConfig, LeakyReluConfig, PReluConfig, PauConfig};
use actlab_models::kernels::{conv_block, conv2d, conv2d_residual, max_pool2d};
use actlab_models::{CnnConfig, ModelConfig};

mod common;
use common::{assert_close, device, device_rng_turn, host_random, run_with_grads, values};

#[test]
fn conv2d_matches_burn_over_strides_paddings_and_dilations() {
    let _turn = device_rng_turn();
    let device = device();
    // (in, out, kernel, stride, padding [top, left, bottom, right], dilation, bias, height, width)
    let cases = [
        (1, 32, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], true, 28, 28),
        (32, 64, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], true, 14, 14),
        (3, 5, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true, 9, 8),
        (4, 6, [5, 3], [1, 2], [2, 0, 2, 0], [1, 1], false, 11, 10),
        (2, 3, [3, 3], [1, 1], [2, 2, 2, 2], [2, 2], true, 7, 9),
        (3, 4, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], true, 5, 5),
        (2, 2, [3, 2], [3, 1], [0, 1, 0, 1], [1, 3], true, 10, 7),
        // Same-size, stride 1: im2col copies shifted planes (kernels taller than the image,
        // padding as wide as the image on the general path).
        (2, 3, [5, 5], [1, 1], [2, 2, 2, 2], [1, 1], true, 3, 4),
        (2, 2, [5, 3], [1, 1], [2, 1, 2, 1], [1, 1], true, 1, 2),
        (1, 2, [5, 5], [1, 1], [2, 2, 2, 2], [1, 1], true, 2, 2),
        // The direct 3×3 path on AVX-512 (3×3, stride 1, padding 1; the forward and the input
        // gradient from 7×7, the weight gradient from 14×14): the ResNet's first stage; odd
        // planes whose last vector is partly outside the plane; output channel counts that
        // leave every tile size (8, 4, 2, 1 forward; 3, 2, 1 for the weights); no bias; 7×7 and
        // 9×8 (weight gradient through im2col).
        (16, 16, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], true, 28, 28),
        (3, 5, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], true, 15, 17),
        (5, 11, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], false, 14, 19),
        (2, 2, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], true, 21, 14),
        (6, 10, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], true, 7, 7),
        // Small planes stacked: 16 samples' 7×7 planes (above) or 2 of 8×7 per direct call.
        (3, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], false, 8, 7),
        // Stride 2, 3×3, padding 1 on even planes: the direct forward through phase planes
        // (the ResNet's stage transitions, with the weight gradient too at 14×14 outputs; odd
        // channel counts, 7×9 and 8×7 outputs; rows over 32 wide, split without permutations).
        (16, 32, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], false, 28, 28),
        (3, 5, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true, 14, 18),
        (2, 11, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true, 16, 14),
        (2, 3, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true, 14, 36),
        // Stride-2 rows longer than one vector (AVX-512 copies them 16 at a time), 3×3 and 1×1.
        (2, 3, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true, 5, 40),
        (4, 6, [1, 1], [2, 2], [0, 0, 0, 0], [1, 1], false, 9, 35),
        (3, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], true, 9, 8),
        // Planes of 64 positions and under: the weight gradient's own product on AVX-512
        // (6 patch rows × 64 output channels a tile; the cases above leave partial row and
        // channel tiles), here with a second tile of channels.
        (4, 70, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], false, 6, 6),
        // Stride 2 on an input twice the output: the input gradient by phases on AVX-512
        // (7×7 outputs stacked sixteen samples a call, full and short stacks; a 1×1
        // projection, whose odd phases get no gradient; 5×5, whose taps also read the output
        // gradient one row or column back).
        (3, 5, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true, 14, 14),
        (4, 6, [1, 1], [2, 2], [0, 0, 0, 0], [1, 1], false, 14, 14),
        (2, 3, [5, 5], [2, 2], [2, 2, 2, 2], [1, 1], true, 12, 16),
    ];
    for (index, (c_in, c_out, kernel, stride, [top, left, bottom, right], dilation, bias, h, w)) in
        cases.into_iter().enumerate()
    {
        device.seed(index as u64);
        let conv = Conv2dConfig::new([c_in, c_out], kernel)
            .with_stride(stride)
            .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
            .with_dilation(dilation)
            .with_bias(bias)
            .init(&device);
        // Large planes with enough samples (six per task) that the direct weight gradient sums
        // full groups (two samples of 28×28) and shorter ones (a group of up to eight, 14×14);
        // small ones (and stride-2 ones onto 7×7) with enough (17 or more per task) for full
        // and short stacks.
        let batch = match h * w {
            _ if stride == [2, 2] && h * w <= 196 => 71,
            196.. => 22,
            ..64 => 71,
            _ => 3,
        };
        let x: Tensor<4> =
            Tensor::random([batch, c_in, h, w], Distribution::Normal(0.0, 1.0), &device);
        let params = |grads: &_| {
            let mut list = vec![values(conv.weight.grad(grads).unwrap())];
            if let Some(bias) = &conv.bias {
                list.push(values(bias.grad(grads).unwrap()));
            }
            list
        };
        let kernel_run = run_with_grads(&x, 9, |x| conv2d(&conv, x), params);
        let burn_run = without_fused(|| run_with_grads(&x, 9, |x| conv.forward(x), params));
        for (name, (a, e)) in ["output", "input grad", "weight grad", "bias grad"]
            .iter()
            .zip(kernel_run.iter().zip(&burn_run))
        {
            assert_close(&format!("case {index} {name}"), a, e);
        }
    }
}

/// `conv2d_residual` (the addition in the convolution's output pass) against Burn's
/// `conv.forward(x) + residual`: output and the gradients of x, weight, bias and the residual,
/// on the direct path, the im2col path and a 1×1 stride-2 projection, at batch 1 and without
/// bias; a residual that only broadcasts takes Burn's `+`.
#[test]
fn conv2d_residual_matches_burns_conv_plus_residual() {
    let _turn = device_rng_turn();
    let device = device();
    // (in, out, kernel, stride, padding, bias, batch, height, width, broadcast residual)
    let cases = [
        (16, 16, 3, 1, 1, true, 3, 28, 28, false),
        (3, 5, 3, 2, 1, true, 2, 9, 8, false),
        (4, 6, 1, 2, 0, false, 1, 9, 35, false),
        (6, 10, 3, 1, 1, false, 1, 7, 7, false),
        // 7×7 planes stacked sixteen at a time (the residual added to each sample's output
        // after the stack is copied back), with short stacks at each task's end.
        (6, 10, 3, 1, 1, true, 71, 7, 7, false),
        (4, 6, 3, 1, 1, true, 2, 5, 6, true),
    ];
    for (index, (c_in, c_out, kernel, stride, padding, bias, batch, h, w, broadcast)) in
        cases.into_iter().enumerate()
    {
        device.seed(100 + index as u64);
        let conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_bias(bias)
            .init(&device);
        let x: Tensor<4> =
            Tensor::random([batch, c_in, h, w], Distribution::Normal(0.0, 1.0), &device);
        let out_h = (h + 2 * padding - kernel) / stride + 1;
        let out_w = (w + 2 * padding - kernel) / stride + 1;
        let residual_shape = if broadcast {
            [1, c_out, 1, 1]
        } else {
            [batch, c_out, out_h, out_w]
        };
        let residual = host_random(residual_shape, 7 + index as u64, &device).require_grad();
        let params = |grads: &_| {
            let mut list = vec![values(conv.weight.grad(grads).unwrap())];
            if let Some(bias) = &conv.bias {
                list.push(values(bias.grad(grads).unwrap()));
            }
            list.push(values(residual.grad(grads).unwrap()));
            list
        };
        let fused = run_with_grads(
            &x,
            5,
            |x| conv2d_residual(&conv, x, residual.clone(), None),
            params,
        );
        let burn =
            without_fused(|| run_with_grads(&x, 5, |x| conv.forward(x) + residual.clone(), params));
        assert_eq!(fused.len(), burn.len());
        for (slot, (a, e)) in fused.iter().zip(&burn).enumerate() {
            assert_close(&format!("case {index} value {slot}"), a, e);
        }
    }
}

#[test]
fn max_pool2d_matches_burn_with_overlap_padding_and_odd_sizes() {
    let _turn = device_rng_turn();
    let device = device();
    // (kernel, stride, padding, dilation, height, width)
    let cases = [
        ([2, 2], [2, 2], [0, 0], [1, 1], 28, 28),
        ([2, 2], [2, 2], [0, 0], [1, 1], 7, 9),
        ([3, 3], [2, 2], [1, 1], [1, 1], 8, 7),
        ([3, 3], [1, 1], [0, 0], [1, 1], 6, 6),
        ([2, 3], [1, 2], [1, 1], [2, 1], 9, 10),
    ];
    for (index, (kernel, stride, [pad_h, pad_w], dilation, h, w)) in cases.into_iter().enumerate() {
        device.seed(100 + index as u64);
        let pool = MaxPool2dConfig::new(kernel)
            .with_strides(stride)
            .with_padding(PaddingConfig2d::Explicit(pad_h, pad_w, pad_h, pad_w))
            .with_dilation(dilation)
            .init();
        let x: Tensor<4> = Tensor::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
        let kernel_run = run_with_grads(&x, 5, |x| max_pool2d(&pool, x), |_| vec![]);
        let burn_run = without_fused(|| run_with_grads(&x, 5, |x| pool.forward(x), |_| vec![]));
        assert_close(
            &format!("case {index} output"),
            &kernel_run[0],
            &burn_run[0],
        );
        assert_close(
            &format!("case {index} input grad"),
            &kernel_run[1],
            &burn_run[1],
        );
    }
}

#[test]
fn max_pool2d_follows_pytorch_on_ties_nan_and_minus_infinity() {
    // Expected values and gradients printed by PyTorch 2.15 (`max_pool2d(x, 2)`, `sum().backward()`).
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let cases: [([f32; 4], f32, [f32; 4]); 8] = [
        ([1.0, 1.0, 0.0, 0.0], 1.0, [1.0, 0.0, 0.0, 0.0]),
        ([1.0, nan, nan, 0.0], nan, [0.0, 0.0, 1.0, 0.0]),
        ([nan, 0.0, 3.0, 0.0], nan, [1.0, 0.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0, nan], nan, [0.0, 0.0, 0.0, 1.0]),
        ([1.0, 2.0, nan, nan], nan, [0.0, 0.0, 0.0, 1.0]),
        ([0.0, nan, 1.0, 2.0], nan, [0.0, 1.0, 0.0, 0.0]),
        ([-inf, -inf, -inf, -inf], -inf, [1.0, 0.0, 0.0, 0.0]),
        ([2.0, 5.0, 5.0, 1.0], 5.0, [0.0, 1.0, 0.0, 0.0]),
    ];
    let device = device();
    let pool = MaxPool2dConfig::new([2, 2]).init();
    for (input, output, grad) in cases {
        let x: Tensor<4> =
            Tensor::from_data(TensorData::new(input.to_vec(), [1, 1, 2, 2]), &device)
                .require_grad();
        let y = max_pool2d(&pool, x.clone());
        let got = values(y.clone())[0];
        assert!(
            got == output || (got.is_nan() && output.is_nan()),
            "{input:?}: max {got}, PyTorch {output}"
        );
        let grads = y.sum().backward();
        assert_eq!(values(x.grad(&grads).unwrap()), grad, "{input:?}: gradient");
    }
}

#[test]
fn layers_the_kernels_do_not_cover_fall_back_to_burn() {
    let _turn = device_rng_turn();
    let device = device();
    let x: Tensor<4> = Tensor::random([2, 4, 7, 7], Distribution::Normal(0.0, 1.0), &device);
    let grouped = Conv2dConfig::new([4, 4], [3, 3])
        .with_groups(2)
        .init(&device);
    let same = Conv2dConfig::new([4, 3], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(&device);
    let asymmetric = Conv2dConfig::new([4, 3], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 0, 0, 1))
        .init(&device);
    for conv in [grouped, same, asymmetric] {
        assert_close(
            "fallback conv",
            &values(conv2d(&conv, x.clone())),
            &values(conv.forward(x.clone())),
        );
    }
    let ceil = MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init();
    let y = max_pool2d(&ceil, x.clone());
    assert_eq!(
        y.dims(),
        [2, 4, 4, 4],
        "ceil mode keeps the last partial window"
    );
    assert_close(
        "fallback pool",
        &values(y),
        &values(ceil.forward(x.clone())),
    );
}

#[test]
fn conv_block_matches_the_three_layers_run_by_burn() {
    let device = device();
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    // (activation, in, out, kernel, stride, padding, height, width): even and odd output
    // planes (the odd last row/column is dropped), strided and non-"same" convolutions, and
    // activations whose backward reads the output (leaky_relu, elu, sigmoid) or the input.
    let cases = [
        ("relu", 1, 8, [3, 3], [1, 1], 1, 28, 28),
        ("gelu", 3, 5, [3, 3], [1, 1], 1, 9, 7),
        ("leaky_relu", 2, 4, [3, 3], [2, 2], 1, 11, 10),
        ("elu", 2, 3, [5, 5], [1, 1], 2, 8, 8),
        ("sigmoid", 4, 2, [1, 1], [1, 1], 0, 5, 6),
        ("hardswish", 2, 3, [3, 3], [1, 1], 0, 7, 9),
        // PReLU: its slopes (set to distinct values below) get a gradient too.
        ("prelu", 2, 4, [3, 3], [1, 1], 1, 9, 8),
        ("prelu_per_channel", 3, 4, [3, 3], [1, 1], 1, 8, 7),
        // PAU per channel (17 coefficients per row in the kernel, 10 of them learned).
        ("pau_per_channel", 2, 3, [3, 3], [1, 1], 1, 9, 8),
    ];
    for (index, (activation, c_in, c_out, kernel, stride, padding, h, w)) in
        cases.into_iter().enumerate()
    {
        let config = match activation {
            "leaky_relu" => ActivationConfig::LeakyRelu(LeakyReluConfig {
                negative_slope: 0.2,
            }),
            "prelu_per_channel" => ActivationConfig::Prelu(PReluConfig {
                per_channel: true,
                init: 0.25,
            }),
            "pau_per_channel" => ActivationConfig::Pau(PauConfig {
                per_channel: true,
                ..PauConfig::default()
            }),
            name => name.parse().unwrap(),
        };
        let mut act = config.init(c_out, &device);
        if let Activation::Prelu(prelu) = &mut act {
            // Slopes of both signs, a different one per channel.
            let count = prelu.weight.dims()[0];
            let slopes: Vec<f32> = (0..count).map(|c| 0.3 - 0.2 * c as f32).collect();
            prelu.weight =
                Param::from_tensor(Tensor::from_data(TensorData::new(slopes, [count]), &device));
        }
        if let Activation::Pau(pau) = &mut act {
            // A different rational function per channel.
            let [rows, width] = pau.numerator.dims();
            let scale: Vec<f32> = (0..rows * width)
                .map(|i| 1.0 + 0.1 * (i / width) as f32 - 0.03 * (i % width) as f32)
                .collect();
            let scale = Tensor::from_data(TensorData::new(scale, [rows, width]), &device);
            pau.numerator = Param::from_tensor((pau.numerator.val() * scale).detach());
        }
        let conv = Conv2dConfig::new([c_in, c_out], kernel)
            .with_stride(stride)
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .init(&device);
        let x = host_random([3, c_in, h, w], 20 + index as u64, &device);
        let params = |grads: &_| {
            let mut list = vec![
                values(conv.weight.grad(grads).unwrap()),
                values(conv.bias.as_ref().unwrap().grad(grads).unwrap()),
            ];
            if let Activation::Prelu(prelu) = &act {
                list.push(values(prelu.weight.grad(grads).unwrap()));
            }
            if let Activation::Pau(pau) = &act {
                list.push(values(pau.numerator.grad(grads).unwrap()));
                list.push(values(pau.denominator.grad(grads).unwrap()));
            }
            list
        };
        let fused = |x| conv_block(&conv, &act, &pool, x).expect("the block runs fused");
        let kernel_run = run_with_grads(&x, 7, fused, params);
        let layers = |x| pool.forward(act.forward(conv.forward(x)));
        let burn_run = without_fused(|| run_with_grads(&x, 7, layers, params));
        assert_eq!(kernel_run.len(), burn_run.len());
        let names = [
            "output",
            "input grad",
            "weight grad",
            "bias grad",
            "parameter grad",
            "denominator grad",
        ];
        for (name, (a, e)) in names.iter().zip(kernel_run.iter().zip(&burn_run)) {
            assert_close(&format!("{activation} {name}"), a, e);
        }
    }

    // Blocks the fused kernel does not take.
    let x = host_random([2, 2, 6, 6], 3, &device);
    let conv = Conv2dConfig::new([2, 3], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let relu = ActivationConfig::Relu.init(3, &device);
    let wide_pool = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init();
    let ceil_pool = MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init();
    let tiny = host_random([2, 2, 1, 3], 4, &device);
    assert!(
        conv_block(&conv, &relu, &wide_pool, x.clone()).is_err(),
        "3×3 pool"
    );
    assert!(
        conv_block(&conv, &relu, &ceil_pool, x.clone()).is_err(),
        "ceil mode"
    );
    assert!(
        conv_block(&conv, &relu, &pool, tiny).is_err(),
        "a 1-row output"
    );
    assert!(
        without_fused(|| conv_block(&conv, &relu, &pool, x).is_err()),
        "kernels off"
    );
}

#[test]
fn conv_block_follows_pytorch_on_ties_nan_and_minus_infinity() {
    // A 1×1 identity convolution, so the block pools the activation of these values; the
    // separate kernels (checked against PyTorch's printed values above) are the reference.
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let windows: [[f32; 4]; 9] = [
        [1.0, 1.0, 0.0, 0.0],
        [1.0, nan, nan, 0.0],
        [nan, 0.0, 3.0, 0.0],
        [0.0, 0.0, 0.0, nan],
        [1.0, 2.0, nan, nan],
        [0.0, nan, 1.0, 2.0],
        [-inf, -inf, -inf, -inf],
        [2.0, 5.0, 5.0, 1.0],
        [-1.0, -2.0, 0.5, 0.5],
    ];
    let device = device();
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let mut conv = Conv2dConfig::new([1, 1], [1, 1]).init(&device);
    conv.weight = Param::from_tensor(Tensor::ones([1, 1, 1, 1], &device));
    conv.bias = Some(Param::from_tensor(Tensor::zeros([1], &device)));
    // The windows side by side in a 2-row plane.
    let plane = |windows: &[[f32; 4]]| {
        let width = 2 * windows.len();
        let mut plane = vec![0.0f32; 2 * width];
        for (w, [a, b, c, d]) in windows.iter().enumerate() {
            plane[2 * w] = *a;
            plane[2 * w + 1] = *b;
            plane[width + 2 * w] = *c;
            plane[width + 2 * w + 1] = *d;
        }
        Tensor::<4>::from_data(TensorData::new(plane, [1, 1, 2, width]), &device)
    };
    let leaky = ActivationConfig::LeakyRelu(LeakyReluConfig {
        negative_slope: 0.5,
    });
    for config in [ActivationConfig::Relu, "gelu".parse().unwrap(), leaky] {
        let activation = config.name();
        let act = config.init(1, &device);
        // Where a window holds two non-finite values, the separate layers also write NaN at
        // the one that lost (0 · gelu'(NaN)); the block writes 0 there (its winner's gradient
        // is NaN either way). The selects of relu and leaky_relu give 0 in both.
        let x = if activation == "gelu" {
            let at_most_one = |w: &&[f32; 4]| w.iter().filter(|v| !v.is_finite()).count() <= 1;
            plane(
                &windows
                    .iter()
                    .filter(at_most_one)
                    .copied()
                    .collect::<Vec<_>>(),
            )
        } else {
            plane(&windows)
        };
        let fused = |x| conv_block(&conv, &act, &pool, x).expect("the block runs fused");
        let separate = |x| max_pool2d(&pool, act.forward(conv2d(&conv, x)));
        let a = run_with_grads(&x, 8, fused, |_| vec![]);
        let e = run_with_grads(&x, 8, separate, |_| vec![]);
        assert_close(&format!("{activation} output"), &a[0], &e[0]);
        assert_close(&format!("{activation} input grad"), &a[1], &e[1]);
    }
}

#[test]
fn a_cnn_training_step_gives_the_same_loss_and_gradients_with_and_without_kernels() {
    let _turn = device_rng_turn();
    let device = device();
    for activation in ["relu", "gelu", "prelu", "aprelu"] {
        device.seed(3);
        let config = ModelConfig::Cnn(CnnConfig {
            activation: activation.parse::<ActivationConfig>().unwrap(),
            ..CnnConfig::default()
        });
        let model = config.init(&device);
        let images: Tensor<4> = Tensor::random([8, 1, 28, 28], Distribution::Default, &device);
        let labels: Tensor<1, Int> = Tensor::from_data(
            TensorData::new((0..8i64).map(|i| i % 10).collect::<Vec<_>>(), [8]),
            &device,
        );
        let step = || loss_and_gradients(&model, &images, &labels);
        let with = step();
        let without = without_fused(step);
        assert_eq!(with.len(), without.len());
        // PReLU adds one slope per slot (conv1, conv2, fc1), APReLU two linears and two batch
        // norms per slot, two tensors each.
        let extra = match activation {
            "prelu" => 3,
            "aprelu" => 3 * 8,
            _ => 0,
        };
        assert_eq!(
            with.len(),
            1 + 8 + extra,
            "loss and every parameter's gradient"
        );
        for (index, (a, e)) in with.iter().zip(&without).enumerate() {
            assert_close(&format!("{activation} tensor {index}"), a, e);
        }
    }
}

/// The ResNet sends stride-2 3×3 and 1×1 convolutions without bias through the kernels, with
/// BatchNorm and the residual additions in between.
#[test]
fn a_resnet_training_step_gives_the_same_loss_and_gradients_with_and_without_kernels() {
    let _turn = device_rng_turn();
    let device = device();
    for activation in ["relu", "prelu", "aprelu"] {
        device.seed(5);
        let config: ModelConfig = toml::from_str(&format!(
            "kind = \"resnet\"\nstem = 4\nstages = [4, 8]\nblocks_per_stage = 1\n\
             activation = \"{activation}\""
        ))
        .unwrap();
        let model = config.init(&device);
        let images: Tensor<4> = Tensor::random([6, 1, 28, 28], Distribution::Default, &device);
        let labels: Tensor<1, Int> =
            Tensor::from_data(TensorData::new((0..6i64).collect::<Vec<_>>(), [6]), &device);
        let step = || loss_and_gradients(&model, &images, &labels);
        let with = step();
        let without = without_fused(step);
        assert_eq!(with.len(), without.len());
        // The loss, then the stem, 2 blocks × (2 norms × 2 + 2 convs), 1 projection, the head
        // norm's 2 and the linear's 2; plus the learnable activations' parameters.
        let expected = 1 + 18;
        if activation == "relu" {
            assert_eq!(with.len(), expected);
        } else {
            assert!(
                with.len() > expected,
                "{activation}: {} tensors",
                with.len()
            );
        }
        for (index, (a, e)) in with.iter().zip(&without).enumerate() {
            assert_close(&format!("resnet {activation} tensor {index}"), a, e);
        }
    }
}

/// The cross-entropy loss of one batch, then every parameter's gradient in module order.
fn loss_and_gradients(
    model: &actlab_models::Model,
    images: &Tensor<4>,
    labels: &Tensor<1, Int>,
) -> Vec<Vec<f32>> {
    let loss_fn = CrossEntropyLossConfig::new().init(&images.device());
    let loss = loss_fn.forward(model.forward(images.clone()), labels.clone());
    let grads = loss.backward();
    let mut out = vec![values(loss)];
    model.visit(&mut CollectGrads(&grads, &mut out));
    out
}

/// Collects every parameter's gradient, in module order.
struct CollectGrads<'a>(&'a Gradients, &'a mut Vec<Vec<f32>>);

impl activations::burn::module::ModuleVisitor for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &activations::burn::module::Param<Tensor<D>>) {
        if let Some(grad) = param.grad(self.0) {
            self.1.push(values(grad));
        }
    }
}
