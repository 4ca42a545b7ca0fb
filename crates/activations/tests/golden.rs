//! Every activation against PyTorch: values and gradients written by `scripts/golden.py`
//! (fixture `tests/fixtures/golden.json`), on flex and, where a Vulkan/Metal/DX12 device exists,
//! on wgpu. `ACTIVATIONS_REQUIRE_WGPU=1` (set by `.ci/run`) turns a missing wgpu device into a
//! failure instead of a skip.
//!
//! Run `cargo test --workspace --test golden -- --nocapture` to print each activation's
//! largest absolute and relative error.
use std::collections::BTreeMap;

use actlab_activations::burn::module::{Module, Param};
use actlab_activations::burn::nn::Linear;
use actlab_activations::burn::tensor::{Device, Tensor};
use actlab_activations::{Activation, ActivationConfig, AprRelu, AprReluConfig, PRelu};
use serde_json::Value;

mod common;
use common::{ABS, REL, decode, fixture, shape, tensor, to_vec};
#[path = "golden/learned.rs"]
mod learned;
#[path = "golden/pau.rs"]
mod pau;
use learned::{run_acon_c, run_dyrelu, run_frelu, run_meta_acon, run_silu_channels};

/// APReLU's parameter gradients are sums over a batch through training-mode BatchNorm; some are
/// exactly 0 in exact arithmetic (a bias right before a BatchNorm) and come out of both
/// frameworks as rounding noise. They are compared on the scale of all the module's parameter
/// gradients: `|actual - expected| <= ABS + TENSOR_REL · max |expected gradient|`.
const TENSOR_REL: f64 = 2e-4;

/// Where this project deliberately differs from PyTorch: (activation, input, reason).
const DEVIATIONS: &[(&str, f32, &str)] = &[(
    "gelu",
    f32::INFINITY,
    "PyTorch's vectorised erf kernel returns NaN for GELU(+inf); the limit x·Φ(x) = +inf is kept",
)];

/// Largest absolute and relative error of one comparison, and the failures.
#[derive(Default)]
struct Errors {
    max_abs: f64,
    max_rel: f64,
    failures: Vec<String>,
}

impl Errors {
    /// Compares with a tolerance on the scale `scale` (see [`TENSOR_REL`]).
    fn compare_scaled(&mut self, what: &str, actual: &[f32], expected: &[f32], scale: f64) {
        self.compare_with(what, None, actual, expected, TENSOR_REL * scale, 0.0);
    }

    fn compare(&mut self, what: &str, inputs: Option<&[f32]>, actual: &[f32], expected: &[f32]) {
        self.compare_with(what, inputs, actual, expected, 0.0, REL);
    }

    fn compare_with(
        &mut self,
        what: &str,
        inputs: Option<&[f32]>,
        actual: &[f32],
        expected: &[f32],
        extra_abs: f64,
        rel: f64,
    ) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            let same_special = (a.is_nan() && e.is_nan()) || (a.is_infinite() && a == e);
            if same_special {
                continue;
            }
            let (a64, e64) = (a as f64, e as f64);
            let abs = (a64 - e64).abs();
            let ok = abs <= ABS + extra_abs + rel * e64.abs();
            if abs.is_finite() {
                self.max_abs = self.max_abs.max(abs);
                if e64.abs() > 1e-3 {
                    self.max_rel = self.max_rel.max(abs / e64.abs());
                }
            }
            if !ok {
                let x = inputs
                    .map(|xs| format!(" at x = {}", xs[i]))
                    .unwrap_or_default();
                self.failures
                    .push(format!("{what}[{i}]{x}: got {a}, PyTorch {e}"));
            }
        }
    }
}

fn deviates(name: &str, x: f32) -> bool {
    DEVIATIONS
        .iter()
        .any(|(n, dx, _)| *n == name && (*dx == x || (dx.is_nan() && x.is_nan())))
}

fn config_of(case: &Value) -> ActivationConfig {
    let mut table = case["params"].as_object().cloned().unwrap_or_default();
    table.insert("kind".into(), case["name"].clone());
    serde_json::from_value(Value::Object(table)).expect("fixture params must parse as a config")
}

fn check_elementwise(case: &Value, grid: &[f32], device: &Device, errors: &mut Errors) {
    let config = config_of(case);
    let name = config.name();
    let mut activation = config.init(1, device);
    if name == "rrelu" {
        // The fixture holds the deterministic evaluation form.
        activation = activation.valid();
    }
    let keep: Vec<usize> = (0..grid.len())
        .filter(|&i| !deviates(name, grid[i]))
        .collect();
    let pick = |values: &[f32]| keep.iter().map(|&i| values[i]).collect::<Vec<_>>();
    let xs = pick(grid);

    let x: Tensor<1> = tensor(&xs, &[xs.len()], device).require_grad();
    let y = activation.forward(x.clone());
    let grads = y.clone().sum().backward();
    let label = format!("{name} {}", case["params"]);
    errors.compare(
        &format!("{label} value"),
        Some(&xs),
        &to_vec(y),
        &pick(&decode(&case["y"])),
    );
    let expected_grad = pick(&decode(&case["grad"]));
    errors.compare(
        &format!("{label} grad"),
        Some(&xs),
        &to_vec(x.grad(&grads).unwrap()),
        &expected_grad,
    );

    // The analytic derivative must equal the autodiff gradient wherever x is finite.
    let finite: Vec<usize> = (0..xs.len()).filter(|&i| xs[i].is_finite()).collect();
    let fx: Vec<f32> = finite.iter().map(|&i| xs[i]).collect();
    let derivative = activation
        .derivative(tensor::<1>(&fx, &[fx.len()], device).inner())
        .expect("element-wise activations have a derivative");
    let expected: Vec<f32> = finite.iter().map(|&i| expected_grad[i]).collect();
    errors.compare(
        &format!("{label} derivative"),
        Some(&fx),
        &to_vec(derivative),
        &expected,
    );
}

fn check_softmax(case: &Value, device: &Device, errors: &mut Errors) {
    let config = config_of(case);
    let dims = shape(&case["shape"]);
    let x: Tensor<2> = tensor(&decode(&case["x"]), &dims, device).require_grad();
    let upstream: Tensor<2> = tensor(&decode(&case["upstream"]), &dims, device);
    let y = config.init(1, device).forward(x.clone());
    let grads = (y.clone() * upstream).sum().backward();
    let label = format!("{} {}", config.name(), case["params"]);
    errors.compare(
        &format!("{label} value"),
        None,
        &to_vec(y),
        &decode(&case["y"]),
    );
    errors.compare(
        &format!("{label} grad"),
        None,
        &to_vec(x.grad(&grads).unwrap()),
        &decode(&case["grad"]),
    );
}

fn run_prelu<const D: usize>(case: &Value, device: &Device, errors: &mut Errors) {
    let dims = shape(&case["shape"]);
    let weights = decode(&case["weight"]);
    let prelu = PRelu {
        weight: Param::from_tensor(tensor(&weights, &[weights.len()], device)),
    };
    let x: Tensor<D> = tensor(&decode(&case["x"]), &dims, device).require_grad();
    let upstream: Tensor<D> = tensor(&decode(&case["upstream"]), &dims, device);
    let y = prelu.forward(x.clone());
    let grads = (y.clone() * upstream).sum().backward();
    let label = format!("prelu per channel {dims:?}");
    errors.compare(
        &format!("{label} value"),
        None,
        &to_vec(y),
        &decode(&case["y"]),
    );
    errors.compare(
        &format!("{label} grad"),
        None,
        &to_vec(x.grad(&grads).unwrap()),
        &decode(&case["grad"]),
    );
    errors.compare(
        &format!("{label} weight grad"),
        None,
        &to_vec(prelu.weight.val().grad(&grads).unwrap()),
        &decode(&case["grad_weight"]),
    );
}

/// A `Linear` from PyTorch's `[out, in]` weight.
fn linear(weight: &[f32], bias: &[f32], device: &Device) -> Linear {
    let out = bias.len();
    let input = weight.len() / out;
    let w: Tensor<2> = tensor(weight, &[out, input], device);
    Linear {
        weight: Param::from_tensor(w.transpose()),
        bias: Some(Param::from_tensor(tensor(bias, &[out], device))),
    }
}

fn aprelu_from(case: &Value, channels: usize, device: &Device) -> AprRelu {
    let p = &case["params"];
    let get = |key: &str| decode(&p[key]);
    let config = AprReluConfig {
        reduction: case["reduction"].as_u64().unwrap() as usize,
        ..Default::default()
    };
    let mut module = config.init(channels, device);
    module.fc1 = linear(&get("fc1_weight"), &get("fc1_bias"), device);
    module.fc2 = linear(&get("fc2_weight"), &get("fc2_bias"), device);
    for (bn, prefix) in [(&mut module.bn1, "bn1"), (&mut module.bn2, "bn2")] {
        let gamma = get(&format!("{prefix}_gamma"));
        let n = gamma.len();
        bn.gamma = Param::from_tensor(tensor(&gamma, &[n], device));
        bn.beta = Param::from_tensor(tensor(&get(&format!("{prefix}_beta")), &[n], device));
        bn.running_mean.update(tensor(
            &get(&format!("{prefix}_running_mean")),
            &[n],
            device,
        ));
        bn.running_var
            .update(tensor(&get(&format!("{prefix}_running_var")), &[n], device));
        if case["mode"] == "eval" {
            // Evaluation behaviour with gradients still recorded, as PyTorch's `eval()`.
            bn.training = Param::from_bool(false);
        }
    }
    module
}

fn run_aprelu<const D: usize>(case: &Value, device: &Device, errors: &mut Errors) {
    let dims = shape(&case["shape"]);
    let module = aprelu_from(case, dims[1], device);
    let x: Tensor<D> = tensor(&decode(&case["x"]), &dims, device).require_grad();
    let upstream: Tensor<D> = tensor(&decode(&case["upstream"]), &dims, device);
    let y = module.forward(x.clone());
    let grads = (y.clone() * upstream).sum().backward();
    let label = format!(
        "aprelu {} r={} {dims:?}",
        case["mode"].as_str().unwrap(),
        case["reduction"]
    );
    errors.compare(
        &format!("{label} value"),
        None,
        &to_vec(y),
        &decode(&case["y"]),
    );
    errors.compare(
        &format!("{label} grad"),
        None,
        &to_vec(x.grad(&grads).unwrap()),
        &decode(&case["grad"]),
    );
    let expected = &case["grad_params"];
    let fc1_w = module.fc1.weight.val().grad(&grads).unwrap().transpose();
    let fc2_w = module.fc2.weight.val().grad(&grads).unwrap().transpose();
    let params: [(&str, Vec<f32>); 8] = [
        ("fc1_weight", to_vec(fc1_w)),
        (
            "fc1_bias",
            to_vec(
                module
                    .fc1
                    .bias
                    .as_ref()
                    .unwrap()
                    .val()
                    .grad(&grads)
                    .unwrap(),
            ),
        ),
        (
            "bn1_gamma",
            to_vec(module.bn1.gamma.val().grad(&grads).unwrap()),
        ),
        (
            "bn1_beta",
            to_vec(module.bn1.beta.val().grad(&grads).unwrap()),
        ),
        ("fc2_weight", to_vec(fc2_w)),
        (
            "fc2_bias",
            to_vec(
                module
                    .fc2
                    .bias
                    .as_ref()
                    .unwrap()
                    .val()
                    .grad(&grads)
                    .unwrap(),
            ),
        ),
        (
            "bn2_gamma",
            to_vec(module.bn2.gamma.val().grad(&grads).unwrap()),
        ),
        (
            "bn2_beta",
            to_vec(module.bn2.beta.val().grad(&grads).unwrap()),
        ),
    ];
    let scale = params
        .iter()
        .flat_map(|(key, _)| decode(&expected[*key]))
        .fold(0f64, |m, e| m.max(e.abs() as f64));
    for (key, actual) in params {
        let want = decode(&expected[key]);
        errors.compare_scaled(&format!("{label} d/d{key}"), &actual, &want, scale);
    }
    let running = &case["running_after"];
    for (bn, prefix) in [(&module.bn1, "bn1"), (&module.bn2, "bn2")] {
        errors.compare(
            &format!("{label} {prefix} running mean"),
            None,
            &to_vec(bn.running_mean.value_sync()),
            &decode(&running[format!("{prefix}_running_mean")]),
        );
        errors.compare(
            &format!("{label} {prefix} running var"),
            None,
            &to_vec(bn.running_var.value_sync()),
            &decode(&running[format!("{prefix}_running_var")]),
        );
    }
}

/// Runs every case on `device` and panics with all mismatches; prints the error table.
fn check_all(device: Device, backend: &str) {
    let doc = fixture();
    let grid = decode(&doc["grid"]);
    let mut table: BTreeMap<String, Errors> = BTreeMap::new();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let key = match name {
            "prelu_channels" => "prelu".to_string(),
            "silu_channels" => "silu".to_string(),
            _ => name.to_string(),
        };
        let errors = table.entry(key).or_default();
        match name {
            "softmax" | "log_softmax" => check_softmax(case, &device, errors),
            "prelu_channels" if case["shape"].as_array().unwrap().len() == 4 => {
                run_prelu::<4>(case, &device, errors)
            }
            "prelu_channels" => run_prelu::<2>(case, &device, errors),
            "aprelu" if case["shape"].as_array().unwrap().len() == 4 => {
                run_aprelu::<4>(case, &device, errors)
            }
            "aprelu" => run_aprelu::<2>(case, &device, errors),
            "acon_c" if case["shape"].as_array().unwrap().len() == 4 => {
                run_acon_c::<4>(case, &device, errors)
            }
            "acon_c" => run_acon_c::<2>(case, &device, errors),
            "silu_channels" if case["shape"].as_array().unwrap().len() == 4 => {
                run_silu_channels::<4>(case, &device, errors)
            }
            "silu_channels" => run_silu_channels::<2>(case, &device, errors),
            "meta_acon" if case["shape"].as_array().unwrap().len() == 4 => {
                run_meta_acon::<4>(case, &device, errors)
            }
            "meta_acon" => run_meta_acon::<2>(case, &device, errors),
            "dyrelu" if case["shape"].as_array().unwrap().len() == 4 => {
                run_dyrelu::<4>(case, &device, errors)
            }
            "dyrelu" => run_dyrelu::<2>(case, &device, errors),
            "frelu" => run_frelu(case, &device, errors),
            "pau" if case["shape"].as_array().unwrap().len() == 4 => {
                pau::run_pau::<4>(case, &device, errors)
            }
            "pau" => pau::run_pau::<2>(case, &device, errors),
            _ => check_elementwise(case, &grid, &device, errors),
        }
    }

    println!("{backend}: largest error against PyTorch {}", doc["torch"]);
    println!("{:<14} {:>12} {:>12}", "activation", "max abs", "max rel");
    let mut failures = Vec::new();
    for (name, errors) in &table {
        println!(
            "{name:<14} {:>12.3e} {:>12.3e}",
            errors.max_abs, errors.max_rel
        );
        failures.extend(errors.failures.iter().cloned());
    }
    for (name, x, reason) in DEVIATIONS {
        println!("deviation kept on purpose: {name}({x}): {reason}");
    }
    let covered: Vec<&str> = ActivationConfig::names()
        .into_iter()
        .filter(|n| !table.contains_key(*n))
        .collect();
    assert!(
        covered.is_empty(),
        "activations without golden cases: {covered:?}"
    );
    assert!(
        failures.is_empty(),
        "{backend}: {} mismatches against PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_flex() {
    check_all(Device::flex().autodiff(), "flex");
}

/// A wgpu device that works, or `None`; creating one panics when no adapter exists.
fn wgpu_device() -> Option<Device> {
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(actlab_activations::burn::tensor::DeviceKind::DefaultDevice);
        let x = Tensor::<1>::from_floats([1.0, 2.0], &device);
        assert_eq!(to_vec(x.exp()).len(), 2);
        device
    });
    probe.ok()
}

#[test]
fn golden_wgpu() {
    let required = std::env::var("ACTIVATIONS_REQUIRE_WGPU").is_ok_and(|v| v == "1");
    match wgpu_device() {
        Some(device) => check_all(device.autodiff(), "wgpu"),
        None if required => panic!(
            "ACTIVATIONS_REQUIRE_WGPU=1 but no wgpu device was found; install a Vulkan driver \
             (e.g. apt-get install mesa-vulkan-drivers) or unset the variable"
        ),
        None => eprintln!(
            "golden_wgpu skipped: no wgpu device (set ACTIVATIONS_REQUIRE_WGPU=1 to fail)"
        ),
    }
}

/// The registry works from a downstream crate's point of view: parse, init, forward, backward
/// through the learnable parameters.
#[test]
fn learnable_parameters_receive_gradients_through_the_registry() {
    let device = Device::flex().autodiff();
    for text in ["kind = \"prelu\"\nper_channel = true", "kind = \"aprelu\""] {
        let config: ActivationConfig = toml::from_str(text).unwrap();
        let activation = config.init(4, &device);
        let x = Tensor::<4>::random(
            [3, 4, 2, 2],
            actlab_activations::burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let grads = activation.forward(x).sum().backward();
        let mut found = 0;
        match &activation {
            Activation::Prelu(m) => found += m.weight.val().grad(&grads).is_some() as usize,
            Activation::Aprelu(m) => {
                found += m.fc1.weight.val().grad(&grads).is_some() as usize;
                found += m.bn2.beta.val().grad(&grads).is_some() as usize;
            }
            _ => unreachable!(),
        }
        assert!(found > 0, "{} parameters got no gradient", config.name());
    }
}

/// Every registered kind has a PyTorch module in `scripts/torch_activations.py`, which writes
/// its golden cases and builds the PyTorch twin of exported models (`scripts/torch_model.py`).
#[test]
fn every_kind_has_a_pytorch_module() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/torch_activations.py"
    );
    let Ok(script) = std::fs::read_to_string(path) else {
        // A packaged crate (crates.io) has no scripts/ beside it.
        eprintln!("skipped: {path} not found");
        return;
    };
    let missing: Vec<&str> = ActivationConfig::names()
        .into_iter()
        .filter(|name| !script.contains(&format!("\n    \"{name}\": lambda")))
        .collect();
    assert!(
        missing.is_empty(),
        "kinds without a PyTorch module in scripts/torch_activations.py: {missing:?}"
    );
}
