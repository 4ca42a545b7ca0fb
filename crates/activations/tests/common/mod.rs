//! The PyTorch fixture of the golden tests (`tests/fixtures/golden.json`, written by
//! `scripts/golden.py`) and the tolerance both golden suites compare with.
#![allow(dead_code)] // each test file uses a part

use actlab_activations::burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

/// f32 tolerance of element-wise results: `|actual - expected| <= ABS + REL · |expected|`.
/// The absolute floor is 2e-6 because derivatives such as GELU-tanh's `1 - tanh²(u)` near
/// saturation (x ≈ -4..-5) resolve only to the rounding of each library's f32 `tanh`.
pub const ABS: f64 = 2e-6;
pub const REL: f64 = 1e-5;

/// Whether `actual` matches PyTorch's `expected` within [`ABS`] and [`REL`] (NaN matches NaN, an
/// infinity itself).
pub fn matches(actual: f32, expected: f32) -> bool {
    if (actual.is_nan() && expected.is_nan()) || (actual.is_infinite() && actual == expected) {
        return true;
    }
    let (a, e) = (actual as f64, expected as f64);
    (a - e).abs() <= ABS + REL * e.abs()
}

pub fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden.json");
    let text = std::fs::read_to_string(path).expect("fixture missing: run scripts/golden.py");
    serde_json::from_str(&text).unwrap()
}

pub fn decode(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::Number(n) => n.as_f64().unwrap() as f32,
            Value::String(s) if s == "nan" => f32::NAN,
            Value::String(s) if s == "inf" => f32::INFINITY,
            Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
            other => panic!("bad fixture value {other}"),
        })
        .collect()
}

pub fn shape(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

pub fn tensor<const D: usize>(values: &[f32], shape: &[usize], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape.to_vec()), device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

/// The wgpu device with autodiff, or `None` (a skip) when there is none, unless
/// `ACTIVATIONS_REQUIRE_WGPU=1` (CI, with lavapipe), which makes a missing device a failure.
pub fn wgpu_device() -> Option<Device> {
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(actlab_activations::burn::tensor::DeviceKind::DefaultDevice);
        let _ = to_vec(Tensor::<1>::from_floats([1.0, 2.0], &device).exp());
        device
    });
    match probe {
        Ok(device) => Some(device.autodiff()),
        Err(_) if std::env::var("ACTIVATIONS_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
            panic!("ACTIVATIONS_REQUIRE_WGPU=1 but no wgpu device was found")
        }
        Err(_) => {
            eprintln!("skipped: no wgpu device");
            None
        }
    }
}
