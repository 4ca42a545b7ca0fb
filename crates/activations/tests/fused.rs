//! The fused kernels against the composite formulation they replace, beyond the golden grid:
//! multi-dimensional and strided inputs, upstream gradients that are not all ones, the in-place
//! paths (a unique input or gradient is overwritten, a shared one never is), and PReLU's three
//! layouts. `tests/golden.rs` checks both paths against PyTorch itself.

mod common;
use actlab_activations::burn::module::Module;
use actlab_activations::burn::tensor::{Device, Tensor, TensorData};
use actlab_activations::fused::{self, Pointwise, without_fused};
use actlab_activations::{
    ActivationConfig, GeluFormula, LeakyReluFormula, PReluConfig, SigmoidFormula, TanhFormula,
};
use common::wgpu_device;

fn device() -> Device {
    Device::flex().autodiff()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

fn assert_close(what: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let same = (a.is_nan() && e.is_nan()) || a == e;
        let close = (a as f64 - e as f64).abs() <= 2e-6 + 1e-5 * (e as f64).abs();
        assert!(same || close, "{what}[{i}]: fused {a}, composite {e}");
    }
}

/// Every configuration with a kernel, with parameters away from the defaults too.
fn configs() -> Vec<ActivationConfig> {
    // APReLU, Meta-ACON, DyReLU and ACON-C (by default) initialise randomly, so two `init`s
    // differ: `aprelu_matches_its_composite_*` and the unit tests of Meta-ACON and DyReLU
    // compare one module on both paths, ACON-C runs with its deterministic `init = "swish"`.
    // FReLU takes [N, C, H, W] only; its unit tests compare its two paths.
    let mut list: Vec<ActivationConfig> = ActivationConfig::catalog()
        .into_iter()
        .filter(ActivationConfig::has_fused_kernel)
        .filter(|c| !["aprelu", "acon_c", "meta_acon", "dyrelu", "frelu"].contains(&c.name()))
        .collect();
    for extra in [
        r#"kind = "gelu"
approximate = "tanh""#,
        r#"kind = "elu"
alpha = 0.5"#,
        r#"kind = "celu"
alpha = 2.0"#,
        r#"kind = "silu"
beta = 1.7"#,
        r#"kind = "softplus"
beta = 2.0
threshold = 5.0"#,
        r#"kind = "leaky_relu"
negative_slope = -0.3"#,
        r#"kind = "acon_c"
init = "swish"
beta = 1.5"#,
        r#"kind = "silu"
beta = 0.8
learnable = true
per_channel = true"#,
    ] {
        list.push(toml::from_str(extra).unwrap());
    }
    list
}

/// Value and input gradient (with a random upstream gradient).
fn run(config: &ActivationConfig, input: &Tensor<3>, upstream: &Tensor<3>) -> Vec<Vec<f32>> {
    let activation = config.init(input.dims()[1], &input.device()).valid();
    let x = input.clone().require_grad();
    let y = activation.forward(x.clone());
    let grads = (y.clone() * upstream.clone()).sum().backward();
    vec![values(y), values(x.grad(&grads).unwrap())]
}

/// Every kernel against the composite on `device`, including special values.
fn check_every_kernel(device: Device) {
    // A length divisible by 4 (the Cube kernels load 4 lanes at a time) and an odd one (one).
    for shape in [[4, 6, 9], [3, 5, 7]] {
        let len = shape.iter().product();
        let mut data: Vec<f32> = host_normal(len, 3).iter().map(|v| 4.0 * v).collect();
        data[..8].copy_from_slice(&[0.0, -0.0, 3.0, -3.0, 25.0, -25.0, 1e-4, f32::NAN]);
        let upstream = host_normal(len, 4);
        let input = Tensor::<3>::from_data(TensorData::new(data, shape), &device);
        let upstream = Tensor::<3>::from_data(TensorData::new(upstream, shape), &device);
        for config in configs() {
            let fused = run(&config, &input, &upstream);
            let composite = without_fused(|| run(&config, &input, &upstream));
            let label = format!("{config:?} {shape:?}");
            assert_close(&format!("{label} value"), &fused[0], &composite[0]);
            assert_close(&format!("{label} grad"), &fused[1], &composite[1]);
        }
    }
}

#[test]
fn every_kernel_equals_its_composite_on_3d_inputs_with_random_gradients() {
    check_every_kernel(device());
}

/// `Activation::pointwise`, the op fused layers apply in their epilogue, computes what the
/// module computes (value and gradient), parameters included; ReLU's kernel too, whose module
/// runs Burn's `relu`.
fn check_every_pointwise_op(device: Device, at_least: usize) {
    let mut data: Vec<f32> = host_normal(4 * 6 * 9, 5).iter().map(|v| 4.0 * v).collect();
    data[..8].copy_from_slice(&[0.0, -0.0, 3.0, -3.0, 25.0, -25.0, 1e-4, f32::NAN]);
    let upstream = host_normal(4 * 6 * 9, 6);
    let input = Tensor::<3>::from_data(TensorData::new(data, [4, 6, 9]), &device);
    let upstream = Tensor::<3>::from_data(TensorData::new(upstream, [4, 6, 9]), &device);
    let mut list = configs();
    list.push(ActivationConfig::Relu);
    let mut checked = 0;
    for config in list {
        let Some(op) = config.init(6, &device).pointwise() else {
            // Learned parameters (PReLU, ACON-C, a learned β) take the channel-wise kernel;
            // RReLU's slope is drawn at random in training.
            assert!(
                config.is_learnable() || config.name() == "rrelu",
                "{config:?}: no op"
            );
            continue;
        };
        let x = input.clone().require_grad();
        let Ok(y) = fused::pointwise(x.clone(), op) else {
            // Softsign stays composite on the Cube backends.
            continue;
        };
        let grads = (y.clone() * upstream.clone()).sum().backward();
        let fused = [values(y), values(x.grad(&grads).unwrap())];
        let module = without_fused(|| run(&config, &input, &upstream));
        assert_close(&format!("{config:?} value"), &fused[0], &module[0]);
        assert_close(&format!("{config:?} grad"), &fused[1], &module[1]);
        checked += 1;
    }
    assert!(checked >= at_least, "{checked} ops checked");
    let learnable: ActivationConfig = toml::from_str("kind = \"silu\"\nlearnable = true").unwrap();
    assert_eq!(learnable.init(6, &device).pointwise(), None, "learnable β");
    let positive: ActivationConfig = toml::from_str("kind = \"elu\"\nalpha = -0.5").unwrap();
    assert_eq!(
        positive.init(6, &device).pointwise(),
        None,
        "ELU with α ≤ 0 is composite"
    );
}

#[test]
fn every_pointwise_op_computes_what_its_module_computes() {
    check_every_pointwise_op(device(), 20);
}

#[test]
fn every_pointwise_op_computes_what_its_module_computes_on_wgpu() {
    if let Some(device) = wgpu_device() {
        // Softsign stays composite; without the Cube kernels compiled in, every op does.
        let cube = cfg!(any(feature = "wgpu", feature = "cuda"));
        check_every_pointwise_op(device, if cube { 19 } else { 0 });
    }
}

/// The CubeCL kernel on wgpu (lavapipe in CI; `ACTIVATIONS_REQUIRE_WGPU=1` makes a missing
/// device fail instead of skip, as in the golden tests).
#[test]
fn every_cube_kernel_equals_its_composite_on_wgpu() {
    if let Some(device) = wgpu_device() {
        check_every_kernel(device);
    }
}

/// PReLU's and APReLU's Cube kernels (per-channel, shared and per-sample slopes, with their
/// reductions) against the composite, on wgpu.
#[test]
fn prelu_and_aprelu_cube_kernels_equal_their_composites_on_wgpu() {
    if let Some(device) = wgpu_device() {
        prelu_layouts(&device);
        // The GPU's composite reductions sum in another order than the kernels', and the batch
        // norms in training mode (over 4 to 8 samples) amplify the squeeze's rounding: 1e-4
        // still fails a slope gradient or mean off by 0.1%.
        aprelu_shapes(&device, 1e-4);
    }
}

#[test]
fn strided_views_are_read_in_logical_order() {
    let device = device();
    let values_3: Vec<f32> = host_normal(5 * 4 * 6, 8).iter().map(|v| 3.0 * v).collect();
    let base = Tensor::<3>::from_data(TensorData::new(values_3, [5, 4, 6]), &device);
    // A permuted and a sliced view: neither is contiguous.
    for view in [base.clone().swap_dims(0, 2), base.clone().narrow(2, 1, 4)] {
        let expected = without_fused(|| view.clone().tanh());
        let fused = fused::pointwise(view.clone(), Pointwise::new(TanhFormula {}))
            .expect("flex has kernels");
        assert_eq!(fused.dims(), view.dims());
        assert_close("tanh of a view", &values(fused), &values(expected));
    }
}

#[test]
fn a_shared_input_is_never_overwritten() {
    let device = Device::flex();
    let x = Tensor::<2>::from_data(
        TensorData::new(host_normal(64 * 300, 9), [64, 300]),
        &device,
    );
    let before = values(x.clone());
    for op in [
        Pointwise::new(SigmoidFormula {}),
        Pointwise::new(GeluFormula {}),
        Pointwise::new(LeakyReluFormula {
            negative_slope: 0.1,
        }),
    ] {
        let _ = fused::pointwise(x.clone(), op).unwrap();
        assert_eq!(values(x.clone()), before, "{op:?} wrote into its input");
    }
    // Through autodiff, where the output-saving kernels may work in place.
    let tracked = x.clone().autodiff().require_grad();
    let y = fused::pointwise(tracked.clone(), Pointwise::new(TanhFormula {})).unwrap();
    let grads = y.sum().backward();
    assert_eq!(values(x.clone()), before);
    let expected: Vec<f32> = before.iter().map(|v| 1.0 - v.tanh() * v.tanh()).collect();
    assert_close(
        "tanh grad",
        &values(tracked.grad(&grads).unwrap()),
        &expected,
    );
}

#[test]
fn a_unique_input_is_reused_and_the_result_is_right() {
    let device = Device::flex();
    let data: Vec<f32> = (0..100_000).map(|i| (i as f32 - 50_000.0) * 1e-3).collect();
    let expected: Vec<f32> = data.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
    let x = Tensor::<1>::from_data(TensorData::new(data, [100_000]), &device);
    let y = fused::pointwise(x, Pointwise::new(SigmoidFormula {})).unwrap();
    assert_close("sigmoid in place", &values(y), &expected);
}

fn prelu_case(device: &Device, per_channel: bool, shape: Vec<usize>) {
    let device = device.clone();
    let channels = shape[1];
    let dims = [shape[0], shape[1], shape[2], shape[3]];
    let len = shape.iter().product();
    let input = Tensor::<4>::from_data(TensorData::new(host_normal(len, 1), dims), &device);
    let upstream = Tensor::<4>::from_data(TensorData::new(host_normal(len, 2), dims), &device);
    let module = PReluConfig {
        per_channel,
        ..PReluConfig::default()
    }
    .init(channels, &device);
    // Distinct slopes per channel, so a channel mix-up shows.
    let slopes: Vec<f32> = (0..module.weight.dims()[0])
        .map(|c| 0.1 + 0.05 * c as f32)
        .collect();
    let n = slopes.len();
    let module = actlab_activations::PRelu {
        weight: actlab_activations::burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(slopes, [n]),
            &device,
        )),
    };
    let run = || {
        let x = input.clone().require_grad();
        let y = module.forward(x.clone());
        let grads = (y.clone() * upstream.clone()).sum().backward();
        (
            values(y),
            values(x.grad(&grads).unwrap()),
            values(module.weight.val().grad(&grads).unwrap()),
        )
    };
    let fused = run();
    let composite = without_fused(run);
    let label = format!("prelu per_channel={per_channel} {shape:?}");
    assert_close(&format!("{label} value"), &fused.0, &composite.0);
    assert_close(&format!("{label} input grad"), &fused.1, &composite.1);
    // Sums over the batch: compared on the scale of the largest.
    let scale = composite.2.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (a, e) in fused.2.iter().zip(&composite.2) {
        assert!(
            (a - e).abs() <= 1e-5 * scale,
            "{label} weight grad: {a} vs {e}"
        );
    }
}

#[test]
fn prelu_matches_for_every_layout() {
    prelu_layouts(&device());
}

fn prelu_layouts(device: &Device) {
    prelu_case(device, true, vec![3, 5, 4, 6]); // [N, C, H, W]: runs of one channel
    prelu_case(device, true, vec![70, 12, 1, 1]); // [N, C]-like: rows of all channels
    prelu_case(device, false, vec![2, 3, 5, 7]); // one shared slope
    // Channel runs longer than the kernel's 1024-element blocks, split across parallel tasks.
    prelu_case(device, true, vec![2, 3, 150, 150]);
}

/// An infinite upstream gradient where x > 0 reaches the input gradient but adds nothing to the
/// slope's gradient (PyTorch sums `x > 0 ? 0 : x · grad`), in the fused kernel as in the
/// composite.
#[test]
fn prelu_slope_gradient_ignores_gradients_of_positive_inputs() {
    let device = device();
    let x = [-2.0f32, 3.0, -0.5, 4.0, 1.0, -1.0, 0.0, -3.0];
    let upstream = [
        1.0f32,
        f32::INFINITY,
        2.0,
        f32::NAN,
        f32::NEG_INFINITY,
        0.5,
        1.0,
        1.0,
    ];
    let module = actlab_activations::PRelu {
        weight: actlab_activations::burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.25f32], [1]),
            &device,
        )),
    };
    // Four copies: 32 elements, so the kernel's 16-lane loop sees them, not only its tail.
    let repeat = |v: &[f32]| v.repeat(4);
    let run = || {
        let input =
            Tensor::<1>::from_data(TensorData::new(repeat(&x), [32]), &device).require_grad();
        let upstream = Tensor::<1>::from_data(TensorData::new(repeat(&upstream), [32]), &device);
        let grads = (module.forward(input.clone()) * upstream).sum().backward();
        (
            values(input.grad(&grads).unwrap()),
            values(module.weight.val().grad(&grads).unwrap()),
        )
    };
    for (path, (input_grad, slope_grad)) in [("fused", run()), ("composite", without_fused(run))] {
        // 4 × (-2·1 - 0.5·2 - 1·0.5 + 0·1 - 3·1)
        assert_eq!(slope_grad, vec![-26.0], "{path}");
        assert_eq!(input_grad[0], 0.25, "{path}");
        assert_eq!(input_grad[1], f32::INFINITY, "{path}");
        assert!(input_grad[3].is_nan(), "{path}");
        assert_eq!(input_grad[4], f32::NEG_INFINITY, "{path}");
    }
}

/// APReLU's fused squeeze and `x > 0 ? x : α x` against its composite formulation, in training
/// mode (batch statistics): the output, the input gradient, every parameter's gradient and the
/// running statistics, under a random upstream gradient. Exact zeros in the input check the
/// tie (the reference's gradient goes to the negative part at x = 0).
/// `tolerance`: relative to the largest value of each tensor.
fn aprelu_case<const D: usize>(device: &Device, shape: [usize; D], tolerance: f32) {
    let device = device.clone();
    // Host-side data: the device RNG is shared with the tests running beside this one, so its
    // draws would differ from run to run.
    let len: usize = shape.iter().product();
    let mut data = host_normal(len, 11);
    for v in data.iter_mut().step_by(7) {
        *v = 0.0;
    }
    let upstream = host_normal(len, 12);
    let input = Tensor::<D>::from_data(TensorData::new(data, shape), &device);
    let upstream = Tensor::<D>::from_data(TensorData::new(upstream, shape), &device);
    // The initialisation is the one draw from the device's RNG left in this file, so seeding it
    // makes the weights the same in every run.
    device.seed(5);
    let module = actlab_activations::AprReluConfig {
        reduction: 2,
        ..Default::default()
    }
    .init(shape[1], &device);
    let run = || {
        // A copy with running statistics of its own (a clone would share them).
        let module = module.valid().train();
        let x = input.clone().require_grad();
        let y = module.forward(x.clone());
        let grads = (y.clone() * upstream.clone()).sum().backward();
        let mut out = vec![values(y), values(x.grad(&grads).unwrap())];
        for linear in [&module.fc1, &module.fc2] {
            out.push(values(linear.weight.val().grad(&grads).unwrap()));
            out.push(values(
                linear.bias.as_ref().unwrap().val().grad(&grads).unwrap(),
            ));
        }
        for bn in [&module.bn1, &module.bn2] {
            out.push(values(bn.gamma.val().grad(&grads).unwrap()));
            out.push(values(bn.beta.val().grad(&grads).unwrap()));
            out.push(values(bn.running_mean.value()));
            out.push(values(bn.running_var.value()));
        }
        out
    };
    let fused = run();
    let composite = without_fused(run);
    let names = [
        "value",
        "input grad",
        "fc1.weight grad",
        "fc1.bias grad",
        "fc2.weight grad",
        "fc2.bias grad",
        "bn1.gamma grad",
        "bn1.beta grad",
        "bn1.running_mean",
        "bn1.running_var",
        "bn2.gamma grad",
        "bn2.beta grad",
        "bn2.running_mean",
        "bn2.running_var",
    ];
    let largest = |v: &[f32]| v.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (k, ((name, a), e)) in names.iter().zip(&fused).zip(&composite).enumerate() {
        // Sums over the batch and the positions: compared on the scale of the largest. A bias
        // before a batch norm has a gradient of zero up to rounding (the norm removes the
        // mean), so its rounding is compared on its weight gradient's scale.
        let scale = if name.ends_with("bias grad") {
            largest(&composite[k - 1])
        } else {
            largest(e)
        };
        for (i, (a, e)) in a.iter().zip(e).enumerate() {
            assert!(
                (a - e).abs() <= tolerance * scale,
                "aprelu {shape:?} {name}[{i}]: fused {a}, composite {e}"
            );
        }
    }
}

/// `len` standard normal values from a fixed seed (xorshift and Box-Muller), the same in every
/// run whatever else runs.
fn host_normal(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // In (0, 1]: never 0, whose logarithm Box-Muller would take.
        ((state >> 40) as f64 + 1.0) / (1u64 << 24) as f64
    };
    (0..len)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

#[test]
fn aprelu_matches_its_composite_in_training() {
    aprelu_shapes(&device(), 2e-5);
}

fn aprelu_shapes(device: &Device, tolerance: f32) {
    // [N, C], as in an MLP: rows of one element
    aprelu_case(device, [6, 8], tolerance);
    aprelu_case(device, [5, 4, 7, 9], tolerance); // [N, C, H, W]
    // Rows longer than the Flex kernels' 1024-element blocks.
    aprelu_case(device, [8, 2, 40, 40], tolerance);
    aprelu_case(device, [4, 3, 5], tolerance); // [N, C, L]
}

#[test]
fn without_fused_is_scoped_to_the_closure() {
    assert!(fused::fused_enabled());
    without_fused(|| {
        assert!(!fused::fused_enabled());
        without_fused(|| assert!(!fused::fused_enabled()));
        assert!(!fused::fused_enabled());
        let x = Tensor::<1>::ones([3], &Device::flex());
        assert!(fused::pointwise(x, Pointwise::new(TanhFormula {})).is_err());
    });
    assert!(fused::fused_enabled());
}

#[test]
fn other_dtypes_and_backends_fall_back() {
    let x =
        Tensor::<1>::ones([3], &Device::flex()).cast(actlab_activations::burn::tensor::DType::F64);
    assert!(fused::pointwise(x, Pointwise::new(TanhFormula {})).is_err());
    #[allow(deprecated)] // ndarray stays selectable for users who ask for it
    let x = Tensor::<1>::ones([3], &Device::ndarray());
    assert!(fused::pointwise(x, Pointwise::new(TanhFormula {})).is_err());
}

/// The three paths of every element-wise kind agree: the scalar formula's derivative (what
/// plots use, and what the SIMD kernels inline) equals the composite's autodiff gradient, on
/// random inputs and with parameters away from the defaults.
#[test]
fn every_formula_derivative_equals_the_composite_gradient() {
    let device = Device::flex().autodiff();
    let xs: Vec<f32> = host_normal(512, 7).iter().map(|v| 3.0 * v).collect();
    let mut list = ActivationConfig::catalog();
    list.extend(configs());
    for config in list.iter().filter(|c| c.is_elementwise()) {
        let activation = config.init(1, &device).valid();
        let x =
            Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device).require_grad();
        let grads = without_fused(|| activation.forward(x.clone()).sum().backward());
        let composite = values(x.grad(&grads).unwrap());
        let derivative = activation
            .derivative(Tensor::<1>::from_data(
                TensorData::new(xs.clone(), [xs.len()]),
                &Device::flex(),
            ))
            .expect("element-wise kinds have a derivative");
        assert_close(
            &format!("{config:?} derivative"),
            &values(derivative),
            &composite,
        );
    }
}

/// `slices::forward_normalised` (a BatchNorm's output through the activation in one pass, for
/// the models' fused BatchNorm-activation-convolution) gives the bits of the normalisation
/// written out, `(x − mean)·scale + shift` in that order, then `slices::forward`, for every
/// element-wise op, at lengths that leave vector tails.
#[test]
fn forward_normalised_is_the_normalisation_then_the_op() {
    let device = Device::flex();
    let mut list = configs();
    list.push(ActivationConfig::Relu);
    let affine = [0.37f32, 1.9, -0.45];
    let mut checked = 0;
    for len in [1, 17, 49, 200] {
        let mut input: Vec<f32> = host_normal(len, len as u64)
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        input[0] = f32::NAN;
        let [mean, scale, shift] = affine;
        let normalised: Vec<f32> = input.iter().map(|&x| (x - mean) * scale + shift).collect();
        for config in &list {
            let Some(op) = config.init(6, &device).pointwise() else {
                continue;
            };
            let mut expected = vec![0.0; len];
            fused::slices::forward(op, &normalised, &mut expected);
            let mut actual = vec![0.0; len];
            fused::slices::forward_normalised(op, &input, &mut actual, affine);
            let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&actual), bits(&expected), "{config:?}, {len} values");
            checked += 1;
        }
    }
    assert!(checked >= 4 * 15, "{checked} ops checked");
}
