//! Helpers for the unit tests beside each activation.
use burn::tensor::{Device, Tensor, TensorData};

pub fn device() -> Device {
    Device::flex().autodiff()
}

pub fn tensor(values: &[f32]) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &device())
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

/// `f(x)` and `d sum(f(x)) / dx` for the values given.
pub fn value_and_grad(
    values: &[f32],
    f: impl FnOnce(Tensor<1>) -> Tensor<1>,
) -> (Vec<f32>, Vec<f32>) {
    let x = tensor(values).require_grad();
    let y = f(x.clone());
    let grads = y.clone().sum().backward();
    (to_vec(y), to_vec(x.grad(&grads).unwrap()))
}

pub fn assert_close(actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let ok = (a.is_nan() && e.is_nan()) || a == e || (a - e).abs() <= 1e-6 + 1e-5 * e.abs();
        assert!(ok, "element {i}: got {a}, expected {e} (all: {actual:?})");
    }
}
