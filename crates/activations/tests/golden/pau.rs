//! The golden cases of PAU (`scripts/golden.py`): value, input gradient and the gradients of
//! every numerator and denominator coefficient against PyTorch, at degrees (3, 2) to (8, 8),
//! both versions, per layer and per channel, with inputs up to 1e4.

use super::Errors;
use super::learned::{compare_parameter_grads, run_case};
use crate::common::{decode, shape, tensor, to_vec};
use actlab_activations::burn::module::Param;
use actlab_activations::burn::tensor::Device;
use actlab_activations::{Pau, PauVersion};
use serde_json::Value;

pub fn run_pau<const D: usize>(case: &Value, device: &Device, errors: &mut Errors) {
    let dims = shape(&case["shape"]);
    let degrees = shape(&case["degrees"]);
    let (m, n) = (degrees[0], degrees[1]);
    let numerator = decode(&case["params"]["numerator"]);
    let denominator = decode(&case["params"]["denominator"]);
    let rows = numerator.len() / (m + 1);
    let version = match case["version"].as_str().unwrap() {
        "a" => PauVersion::A,
        _ => PauVersion::B,
    };
    let module = Pau {
        numerator: Param::from_tensor(tensor(&numerator, &[rows, m + 1], device)),
        denominator: Param::from_tensor(tensor(&denominator, &[rows, n], device)),
        version,
        initial: None,
    };
    let label = format!("pau ({m}, {n}) {version:?} rows {rows} {dims:?}");
    let grads = run_case::<D>(case, &label, device, errors, |x| module.forward(x));
    let actual = vec![
        (
            "numerator".to_string(),
            to_vec(module.numerator.val().grad(&grads).unwrap()),
        ),
        (
            "denominator".to_string(),
            to_vec(module.denominator.val().grad(&grads).unwrap()),
        ),
    ];
    compare_parameter_grads(errors, &label, &case["grad_params"], actual);
}
