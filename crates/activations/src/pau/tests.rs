use super::*;
use crate::test_util::*;

fn max_fit_error(config: &PauConfig, target: impl Fn(f32) -> f32) -> f32 {
    let pau = config.init(1, &device());
    let xs: Vec<f32> = (0..=600).map(|i| -3.0 + i as f32 * 0.01).collect();
    let ys = to_vec(pau.forward(tensor(&xs)));
    xs.iter()
        .zip(ys)
        .map(|(&x, y)| (y - target(x)).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_initial_coefficients_fit_the_named_function_on_minus_three_to_three() {
    let leaky = |x: f32| if x > 0.0 { x } else { 0.01 * x };
    let error = max_fit_error(&PauConfig::default(), leaky);
    assert!(error < 0.05, "leaky_relu (5, 4) A: max error {error}");
    let tanh = PauConfig {
        init: PauInit::Tanh,
        version: PauVersion::B,
        ..PauConfig::default()
    };
    let error = max_fit_error(&tanh, f32::tanh);
    assert!(error < 0.01, "tanh (5, 4) B: max error {error}");
    let gelu = PauConfig {
        init: PauInit::Gelu,
        degrees: [3, 2],
        ..PauConfig::default()
    };
    let exact = |x: f32| {
        crate::fused::Pointwise::new(crate::gelu::GeluFormula {}).value(x)
    };
    let error = max_fit_error(&gelu, exact);
    assert!(error < 0.05, "gelu (3, 2) A: max error {error}");
}

#[test]
fn construction_is_deterministic_and_per_channel_rows_repeat_the_fit() {
    let config = PauConfig {
        per_channel: true,
        ..PauConfig::default()
    };
    let first = config.init(3, &device());
    let second = config.init(3, &device());
    assert_eq!(first.numerator.dims(), [3, 6]);
    assert_eq!(first.denominator.dims(), [3, 4]);
    let (a, b) = (to_vec(first.parameters()), to_vec(second.parameters()));
    assert_eq!(a, b);
    assert_eq!(a[..17], a[17..34]);
}

/// A module with these coefficients in one row.
fn module(numerator: &[f32], denominator: &[f32], version: PauVersion) -> Pau {
    let param = |values: &[f32]| {
        let data = TensorData::new(values.to_vec(), [1, values.len()]);
        Param::from_tensor(Tensor::from_data(data, &device()))
    };
    Pau {
        numerator: param(numerator),
        denominator: param(denominator),
        version,
        initial: None,
    }
}

#[test]
fn values_and_gradients_follow_the_rational_function() {
    // P = 1 + 2x + x², Q_A = 1 + |0.5||x| + |-1||x|² ; at x = -2: P = 1, Q = 6.
    let pau = module(&[1.0, 2.0, 1.0], &[0.5, -1.0], PauVersion::A);
    let (y, g) = value_and_grad(&[-2.0, 0.0], |x| pau.forward(x));
    // f'(x) = (P'Q − PQ')/Q²: at -2, P' = -2, Q' = -0.5 - 4 = -4.5 → (-12 + 4.5)/36.
    // At 0: Q' takes sign(0) = 0, so f'(0) = P'(0) = 2.
    assert_close(&y, &[1.0 / 6.0, 1.0]);
    assert_close(&g, &[-7.5 / 36.0, 2.0]);
    // Version B: Q = 1 + |0.5x − x²|; at 2: P = 9, P' = 6, S = -3, Q = 4,
    // Q' = sign(S)(0.5 − 2x) = 3.5 (version A would have Q = 6).
    let pau = module(&[1.0, 2.0, 1.0], &[0.5, -1.0], PauVersion::B);
    let (y, g) = value_and_grad(&[2.0], |x| pau.forward(x));
    assert_close(&y, &[2.25]);
    assert_close(&g, &[(6.0 * 4.0 - 9.0 * 3.5) / 16.0]);
}

/// A degree-(8, 8) unit with mixed-sign coefficients, and its output, input gradient and
/// coefficient gradients (of the output's sum) on inputs up to ±1e4, by the fused kernel or
/// the composite.
fn degree_eight_values_and_gradients(version: PauVersion, fused: bool) -> Vec<f32> {
    let numerator: Vec<f32> = (0..9).map(|j| 0.7 - 0.3 * j as f32).collect();
    let denominator: Vec<f32> = (0..8).map(|k| 0.2 + 0.4 * k as f32 - 1.0).collect();
    let pau = module(&numerator, &denominator, version);
    let x = tensor(&[-1e4, -30.0, -3.0, 0.0, 1e-3, 2.5, 40.0, 1e4]).require_grad();
    let y = if fused { pau.forward(x.clone()) } else { pau.composite(x.clone()) };
    let grads = y.clone().sum().backward();
    let mut all = to_vec(y);
    all.extend(to_vec(x.grad(&grads).unwrap()));
    all.extend(to_vec(pau.numerator.val().grad(&grads).unwrap()));
    all.extend(to_vec(pau.denominator.val().grad(&grads).unwrap()));
    all
}

#[test]
fn values_and_gradients_stay_finite_up_to_1e4_at_degree_eight() {
    for version in [PauVersion::A, PauVersion::B] {
        let all = degree_eight_values_and_gradients(version, true);
        assert!(all.iter().all(|v| v.is_finite()), "{version:?}: {all:?}");
    }
}

#[test]
fn the_composite_matches_the_fused_kernel_up_to_1e4_at_degree_eight() {
    // The composite runs where no kernel does (other backends, wgpu without the crate's
    // feature). Burn's division backward forms Q², which overflows at |x| = 1e4 and degree 8
    // (1e64) and would silently zero those elements' parameter gradients.
    for version in [PauVersion::A, PauVersion::B] {
        let fused = degree_eight_values_and_gradients(version, true);
        let composite = degree_eight_values_and_gradients(version, false);
        for (i, (f, c)) in fused.iter().zip(&composite).enumerate() {
            assert!(
                (f - c).abs() <= 1e-4 + 1e-3 * f.abs(),
                "{version:?}[{i}]: fused {f} vs composite {c}"
            );
        }
    }
}

#[test]
fn the_fused_kernel_matches_the_composite() {
    let config = PauConfig {
        per_channel: true,
        degrees: [6, 5],
        ..PauConfig::default()
    };
    for version in [PauVersion::A, PauVersion::B] {
        let pau = PauConfig { version, ..config.clone() }.init(3, &device());
        let values: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let run = |fused: bool| {
            let x = Tensor::<1>::from_floats(values.as_slice(), &device())
                .reshape([2, 3, 4])
                .require_grad();
            let y = if fused { pau.forward(x.clone()) } else { pau.composite(x.clone()) };
            let grads = (y.clone() * y.clone()).sum().backward();
            let mut out = to_vec(y);
            out.extend(to_vec(x.grad(&grads).unwrap()));
            out.extend(to_vec(pau.numerator.val().grad(&grads).unwrap()));
            out.extend(to_vec(pau.denominator.val().grad(&grads).unwrap()));
            out
        };
        let (fused, composite) = (run(true), run(false));
        for (i, (f, c)) in fused.iter().zip(&composite).enumerate() {
            assert!((f - c).abs() <= 1e-4 + 1e-4 * c.abs(), "{version:?}[{i}]: {f} vs {c}");
        }
    }
}

#[test]
fn degrees_outside_one_to_eight_are_refused_naming_the_key() {
    for degrees in [[0, 4], [5, 9], [9, 1]] {
        let error = PauConfig {
            degrees,
            ..PauConfig::default()
        }
        .validate()
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("pau.degrees") && message.contains("1 to 8"), "{message}");
    }
    for bad in [r#"version = "c""#, r#"init = "softsign""#] {
        let error = toml::from_str::<PauConfig>(bad).unwrap_err().to_string();
        assert!(error.contains("unknown variant"), "{error}");
    }
}

/// `ml-research/pau`'s published initialisation for leaky ReLU at degrees (5, 4) with version
/// B's denominator (`pade_optimized_leakyrelu`, the authors' least-squares fit on [-3, 3]).
#[test]
fn the_version_b_leaky_relu_fit_matches_the_authors_published_coefficients() {
    let numerator = [
        3.355_836e-2,
        5.050_004e-1,
        1.653_439,
        2.010_011,
        9.319_02e-1,
        1.524_241e-1,
    ];
    let denominator = [3.308_475e-6, 3.980_216, 5.124_712e-7, 3.018_301e-1];
    let pau = PauConfig {
        version: PauVersion::B,
        ..PauConfig::default()
    }
    .init(1, &device());
    let ours = to_vec(pau.numerator.val())
        .into_iter()
        .chain(to_vec(pau.denominator.val()));
    let theirs = numerator.iter().chain(&denominator);
    for (i, (ours, &theirs)) in ours.zip(theirs).enumerate() {
        // The two near-zero denominator coefficients only need to stay near zero.
        let ok = (ours - theirs).abs() <= 1e-4 + 0.01 * theirs.abs();
        assert!(ok, "coefficient {i}: fitted {ours}, published {theirs}");
    }
    let initial = pau.initial_formula().expect("a fitted PAU knows its initial function");
    let built = pau.formula().expect("element-wise");
    for x in [-3.0, -0.5, 0.0, 0.7, 2.9] {
        assert_eq!(initial.value(x), built.value(x));
    }
}
