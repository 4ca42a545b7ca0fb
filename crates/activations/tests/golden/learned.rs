//! The golden cases of the learned channel-wise kinds (`scripts/golden.py`'s ACON-C, per-channel
//! SiLU, Meta-ACON, DyReLU and FReLU cases): value, input gradient and every parameter gradient against
//! PyTorch, plus Meta-ACON's running statistics.

use super::{Errors, linear};
use crate::common::{decode, shape, tensor, to_vec};
use actlab_activations::burn::module::Param;
use actlab_activations::burn::nn::Linear;
use actlab_activations::burn::tensor::{Device, Gradients, Tensor};
use actlab_activations::{
    AconC, BatchNorm1d, DyRelu, DyReluConfig, FRelu, MetaAconC, MetaAconConfig, Silu,
};
use serde_json::Value;

/// `values` as a learned `[n]` parameter.
fn param(values: &[f32], device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(tensor(values, &[values.len()], device))
}

/// Compares parameter gradients, each on the scale of the largest finite expected entry of all
/// of them (they are sums over the batch).
pub fn compare_parameter_grads(
    errors: &mut Errors,
    label: &str,
    expected: &Value,
    actual: Vec<(String, Vec<f32>)>,
) {
    let scale = actual
        .iter()
        .flat_map(|(key, _)| decode(&expected[key.as_str()]))
        .filter(|v| v.is_finite())
        .fold(1.0f64, |m, v| m.max(v.abs() as f64));
    for (key, values) in actual {
        let want = decode(&expected[key.as_str()]);
        errors.compare_scaled(&format!("{label} d/d{key}"), &values, &want, scale);
    }
}

/// Runs `forward` on the case's input with its upstream gradient; compares the value and the
/// input gradient, and returns the gradients for the parameters.
pub fn run_case<const D: usize>(
    case: &Value,
    label: &str,
    device: &Device,
    errors: &mut Errors,
    forward: impl Fn(Tensor<D>) -> Tensor<D>,
) -> Gradients {
    let dims = shape(&case["shape"]);
    let x: Tensor<D> = tensor(&decode(&case["x"]), &dims, device).require_grad();
    let upstream: Tensor<D> = tensor(&decode(&case["upstream"]), &dims, device);
    let y = forward(x.clone());
    let grads = (y.clone() * upstream).sum().backward();
    errors.compare(
        &format!("{label} value"),
        None,
        &to_vec(y),
        &decode(&case["y"]),
    );
    let grad = to_vec(x.grad(&grads).unwrap());
    errors.compare(
        &format!("{label} grad"),
        None,
        &grad,
        &decode(&case["grad"]),
    );
    grads
}

fn grad_of(p: &Param<Tensor<1>>, grads: &Gradients) -> Vec<f32> {
    to_vec(p.val().grad(grads).unwrap())
}

pub fn run_acon_c<const D: usize>(case: &Value, device: &Device, errors: &mut Errors) {
    let get = |key: &str| decode(&case["params"][key]);
    let acon = AconC {
        p1: param(&get("p1"), device),
        p2: param(&get("p2"), device),
        beta: param(&get("beta"), device),
    };
    let label = format!("acon_c {:?}", shape(&case["shape"]));
    let grads = run_case::<D>(case, &label, device, errors, |x| acon.forward(x));
    let actual = vec![
        ("p1".to_string(), grad_of(&acon.p1, &grads)),
        ("p2".to_string(), grad_of(&acon.p2, &grads)),
        ("beta".to_string(), grad_of(&acon.beta, &grads)),
    ];
    compare_parameter_grads(errors, &label, &case["grad_params"], actual);
}

pub fn run_silu_channels<const D: usize>(case: &Value, device: &Device, errors: &mut Errors) {
    let silu = Silu {
        beta: 1.0,
        learnable_beta: Some(param(&decode(&case["beta"]), device)),
    };
    let label = format!("silu per-channel beta {:?}", shape(&case["shape"]));
    let grads = run_case::<D>(case, &label, device, errors, |x| silu.forward(x));
    let beta = grad_of(silu.learnable_beta.as_ref().unwrap(), &grads);
    let expected = serde_json::json!({ "beta": case["grad_beta"] });
    compare_parameter_grads(errors, &label, &expected, vec![("beta".to_string(), beta)]);
}

/// `{name}_weight` (PyTorch's `[out, in]` layout) and `{name}_bias` gradients of each linear.
fn linear_grads(linears: &[(&str, &Linear)], grads: &Gradients) -> Vec<(String, Vec<f32>)> {
    let mut list = Vec::new();
    for (name, linear) in linears {
        let weight = linear.weight.val().grad(grads).unwrap().transpose();
        list.push((format!("{name}_weight"), to_vec(weight)));
        list.push((
            format!("{name}_bias"),
            grad_of(linear.bias.as_ref().unwrap(), grads),
        ));
    }
    list
}

/// `bn`'s parameters and running statistics from the case's `{prefix}_*` entries, in evaluation
/// mode when the case is.
pub fn set_batch_norm(bn: &mut BatchNorm1d, case: &Value, prefix: &str, device: &Device) {
    let get = |key: &str| decode(&case["params"][format!("{prefix}_{key}")]);
    bn.gamma = param(&get("gamma"), device);
    bn.beta = param(&get("beta"), device);
    let n = bn.gamma.dims()[0];
    bn.running_mean
        .update(tensor(&get("running_mean"), &[n], device));
    bn.running_var
        .update(tensor(&get("running_var"), &[n], device));
    if case["mode"] == "eval" {
        // Evaluation behaviour with gradients still recorded, as PyTorch's `eval()`.
        bn.training = Param::from_bool(false);
    }
}

/// Compares `bn`'s running statistics with the case's `running_after`.
pub fn compare_running(
    errors: &mut Errors,
    label: &str,
    bn: &BatchNorm1d,
    case: &Value,
    prefix: &str,
) {
    let running = &case["running_after"];
    for (what, state) in [("mean", &bn.running_mean), ("var", &bn.running_var)] {
        errors.compare(
            &format!("{label} {prefix} running {what}"),
            None,
            &to_vec(state.value_sync()),
            &decode(&running[format!("{prefix}_running_{what}")]),
        );
    }
}

pub fn run_meta_acon<const D: usize>(case: &Value, device: &Device, errors: &mut Errors) {
    let dims = shape(&case["shape"]);
    let get = |key: &str| decode(&case["params"][key]);
    let config = MetaAconConfig {
        reduction: case["reduction"].as_u64().unwrap() as usize,
        ..MetaAconConfig::default()
    };
    let mut module: MetaAconC = config.init(dims[1], device);
    module.fc1 = linear(&get("fc1_weight"), &get("fc1_bias"), device);
    module.fc2 = linear(&get("fc2_weight"), &get("fc2_bias"), device);
    set_batch_norm(&mut module.bn1, case, "bn1", device);
    set_batch_norm(&mut module.bn2, case, "bn2", device);
    module.p1 = param(&get("p1"), device);
    module.p2 = param(&get("p2"), device);
    let label = format!("meta_acon {} {dims:?}", case["mode"].as_str().unwrap());
    let grads = run_case::<D>(case, &label, device, errors, |x| module.forward(x));
    let mut actual = vec![
        ("p1".to_string(), grad_of(&module.p1, &grads)),
        ("p2".to_string(), grad_of(&module.p2, &grads)),
    ];
    actual.extend(linear_grads(
        &[("fc1", &module.fc1), ("fc2", &module.fc2)],
        &grads,
    ));
    actual.extend([
        ("bn1_gamma".to_string(), grad_of(&module.bn1.gamma, &grads)),
        ("bn1_beta".to_string(), grad_of(&module.bn1.beta, &grads)),
        ("bn2_gamma".to_string(), grad_of(&module.bn2.gamma, &grads)),
        ("bn2_beta".to_string(), grad_of(&module.bn2.beta, &grads)),
    ]);
    compare_parameter_grads(errors, &label, &case["grad_params"], actual);
    compare_running(errors, &label, &module.bn1, case, "bn1");
    compare_running(errors, &label, &module.bn2, case, "bn2");
}

pub fn run_dyrelu<const D: usize>(case: &Value, device: &Device, errors: &mut Errors) {
    let dims = shape(&case["shape"]);
    let get = |key: &str| decode(&case["params"][key]);
    let config = DyReluConfig {
        reduction: case["reduction"].as_u64().unwrap() as usize,
    };
    let mut module: DyRelu = config.init(dims[1], device);
    module.fc1 = linear(&get("fc1_weight"), &get("fc1_bias"), device);
    module.fc2 = linear(&get("fc2_weight"), &get("fc2_bias"), device);
    let label = format!("dyrelu {dims:?}");
    let grads = run_case::<D>(case, &label, device, errors, |x| module.forward(x));
    let actual = linear_grads(&[("fc1", &module.fc1), ("fc2", &module.fc2)], &grads);
    compare_parameter_grads(errors, &label, &case["grad_params"], actual);
}

pub fn run_frelu(case: &Value, device: &Device, errors: &mut Errors) {
    let dims = shape(&case["shape"]);
    let get = |key: &str| decode(&case["params"][key]);
    let channels = dims[1];
    let mut module = FRelu::new(channels, device);
    module.conv_frelu.weight =
        Param::from_tensor(tensor(&get("conv_weight"), &[channels, 1, 3, 3], device));
    module.conv_frelu.bias = Some(param(&get("conv_bias"), device));
    set_batch_norm(&mut module.bn_frelu, case, "bn", device);
    let label = format!("frelu {} {dims:?}", case["mode"].as_str().unwrap());
    let grads = run_case::<4>(case, &label, device, errors, |x| module.forward(x));
    let conv_weight = to_vec(module.conv_frelu.weight.val().grad(&grads).unwrap());
    let actual = vec![
        ("conv_weight".to_string(), conv_weight),
        (
            "conv_bias".to_string(),
            grad_of(module.conv_frelu.bias.as_ref().unwrap(), &grads),
        ),
        (
            "bn_gamma".to_string(),
            grad_of(&module.bn_frelu.gamma, &grads),
        ),
        (
            "bn_beta".to_string(),
            grad_of(&module.bn_frelu.beta, &grads),
        ),
    ];
    compare_parameter_grads(errors, &label, &case["grad_params"], actual);
    compare_running(errors, &label, &module.bn_frelu, case, "bn");
}
