//! Branch-free f32 approximations of `exp`, `log1p`, `tanh`, `erf` and `σ`.
//!
//! `f32::exp` and friends call libm one element at a time; written with selects instead of
//! branches and with bit tricks instead of `frexp`/`ldexp`, these compile to SIMD when a loop
//! over a slice inlines them (see `kernels.rs`). Each is within a few ulp of the exact value
//! (tests below measure it against f64), well inside the golden tests' 1e-5 relative tolerance,
//! and each keeps the IEEE special values: NaN in, NaN out; the infinities map to the limits.

/// Rounds to the nearest integer (ties to even) for |x| < 2²²: adding and subtracting 1.5 · 2²³
/// pushes the fraction bits out of the mantissa.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x = 2ⁿ · e^r` for `x` already clamped to the normal range: returns `e^r` and `n`.
#[inline(always)]
fn exp_reduced(clamped: f32) -> (f32, i32) {
    // Cody–Waite reduction: x = n ln 2 + r with |r| <= ln 2 / 2.
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = clamped - n * 0.693_359_4 - n * -2.121_944_4e-4;
    // Cephes' expf polynomial for e^r on that interval.
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5e-1);
    let er = (p * r).mul_add(r, r) + 1.0;
    let n_int = shifted.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    (er, n_int)
}

/// `2ⁿ` for `n` in [-126, 127].
#[inline(always)]
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127) << 23) as u32)
}

const EXP_LO: f32 = -87.336_54;
const EXP_HI: f32 = 88.722_83;

/// `eˣ`, within 2 ulp for normal results; 0 below -87.34 (PyTorch gives denormals there, all
/// smaller than 1.2e-38) and +inf above 88.72.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // `clamp` passes NaN through (`max`/`min` would not).
    let (er, n) = exp_reduced(x.clamp(EXP_LO, EXP_HI));
    // 2ⁿ in two halves, since n reaches 128 and -126 at the ends of the range.
    let half = n >> 1;
    let result = er * pow2(half) * pow2(n - half);
    if x < EXP_LO {
        0.0
    } else if x > EXP_HI {
        f32::INFINITY
    } else {
        result
    }
}

/// `eˣ` for `x <= 0` (or NaN), the only arguments of σ, erf and log1p's callers: one scale
/// factor and one bound instead of [`exp`]'s two, a few instructions less in the hottest loops.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let (er, n) = exp_reduced(if x < EXP_LO { EXP_LO } else { x });
    // n is in [-126, 0] here, so 2ⁿ is one normal float.
    let result = er * pow2(n);
    if x < EXP_LO { 0.0 } else { result }
}

/// `ln x` for positive normal `x` (the only inputs `log1p` gives it).
#[inline(always)]
fn ln_positive(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    // x = m · 2^e with m in [0.5, 1).
    let exponent = ((bits >> 23) as i32 - 126) as f32;
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Re-centre m on [√½, √2) so the polynomial works near 1.
    let low = mantissa < SQRT_HALF;
    let e = if low { exponent - 1.0 } else { exponent };
    let m = if low {
        mantissa + mantissa - 1.0
    } else {
        mantissa - 1.0
    };
    // Cephes' logf polynomial.
    let z = m * m;
    let mut p = 7.037_683_6e-2_f32;
    p = p.mul_add(m, -1.151_461e-1);
    p = p.mul_add(m, 1.167_699_9e-1);
    p = p.mul_add(m, -1.242_014_1e-1);
    p = p.mul_add(m, 1.424_932_3e-1);
    p = p.mul_add(m, -1.666_805_8e-1);
    p = p.mul_add(m, 2.000_071_4e-1);
    p = p.mul_add(m, -2.499_999_4e-1);
    p = p.mul_add(m, 3.333_333e-1);
    let mut y = p * m * z;
    y += e * -2.121_944_4e-4;
    y += -0.5 * z;
    m + y + e * 0.693_359_4
}

/// `ln(1 + u)` for `u` in `[0, 1]` (how softplus and log-sigmoid use it), accurate for tiny `u`:
/// the rounding of `1 + u` is undone by scaling with `u / ((1 + u) - 1)`.
#[inline(always)]
pub fn log1p_unit(u: f32) -> f32 {
    let w = 1.0 + u;
    let d = w - 1.0;
    let ln = ln_positive(w);
    // d == 0 means u is below half an ulp of 1, where ln(1 + u) = u to f32 precision.
    if d == 0.0 { u } else { ln * (u / d) }
}

/// The logistic sigmoid `1 / (1 + e⁻ˣ)`, from `e^-|x|` so nothing overflows.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    // One division for both sides: a second would double the cost of the whole formula.
    let reciprocal = 1.0 / (1.0 + e);
    if x >= 0.0 { reciprocal } else { e * reciprocal }
}

/// `tanh x`: Cephes' odd polynomial below 0.625, `(1 - e^-2|x|) / (1 + e^-2|x|)` above.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3_f32;
    p = p.mul_add(z, 2.063_909e-2);
    p = p.mul_add(z, -5.373_971_6e-2);
    p = p.mul_add(z, 1.333_144_2e-1);
    p = p.mul_add(z, -3.333_328e-1);
    let small = p * z * x + x;
    let e = exp_nonpositive(-2.0 * a);
    let large = ((1.0 - e) / (1.0 + e)).copysign(x);
    if a < 0.625 { small } else { large }
}

/// `erf x` as PyTorch's vectorised CPU kernel computes it (Abramowitz & Stegun 7.1.26,
/// |error| < 1.5e-7), so GELU matches PyTorch's values rather than a different approximation.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_given_gaussian(x, exp_nonpositive(-(x * x)))
}

/// [`erf`] with `e^{-x²}` computed by the caller, who may need it too (GELU's backward).
#[inline(always)]
pub fn erf_given_gaussian(x: f32, gaussian: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (0.327_591_1 * a + 1.0);
    let mut r = 1.061_405_4_f32;
    r = r.mul_add(t, -1.453_152_1);
    r = r.mul_add(t, 1.421_413_8);
    r = r.mul_add(t, -0.284_496_74);
    r = r.mul_add(t, 0.254_829_6);
    (1.0 - r * t * gaussian).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs spread over the whole f32 range that matters, plus the special values.
    fn grid() -> Vec<f32> {
        let mut xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-4).collect();
        xs.extend((-60..=60).map(|i| (i as f32 * 0.7).exp2()));
        xs.extend((-60..=60).map(|i| -(i as f32 * 0.7).exp2()));
        xs.extend([87.3, 88.7, -87.3, -88.0, 1e4, -1e4, 0.0, -0.0]);
        xs
    }

    /// Largest error in units of f32 epsilon relative to the exact (f64) value, over results
    /// of magnitude at least `floor`; below it, the absolute error in the same units.
    fn max_error(f: impl Fn(f32) -> f32, exact: impl Fn(f64) -> f64, floor: f64) -> f64 {
        grid()
            .into_iter()
            .filter_map(|x| {
                let want = exact(x as f64);
                let got = f(x) as f64;
                (want.is_finite() && want.abs() < f32::MAX as f64)
                    .then(|| (got - want).abs() / want.abs().max(floor) / f32::EPSILON as f64)
            })
            .fold(0.0, f64::max)
    }

    fn assert_special(f: impl Fn(f32) -> f32, at_neg_inf: f32, at_pos_inf: f32) {
        assert!(f(f32::NAN).is_nan());
        let (lo, hi) = (f(f32::NEG_INFINITY), f(f32::INFINITY));
        assert!(lo == at_neg_inf, "f(-inf) = {lo}");
        assert!(hi == at_pos_inf, "f(+inf) = {hi}");
    }

    #[test]
    fn exp_within_two_ulp() {
        let err = max_error(exp, f64::exp, 1e-30);
        assert!(err < 2.0, "exp: {err} ulp");
        assert_special(exp, 0.0, f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(89.0), f32::INFINITY);
    }

    #[test]
    fn exp_nonpositive_within_two_ulp() {
        let err = max_error(|x| exp_nonpositive(-x.abs()), |x| (-x.abs()).exp(), 1e-30);
        assert!(err < 2.0, "exp_nonpositive: {err} ulp");
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn log1p_within_two_ulp_on_the_unit_interval() {
        let us: Vec<f32> = (0..=100_000)
            .map(|i| i as f32 * 1e-5)
            .chain((1..100).map(|i| (-(i as f32) * 0.5).exp2()))
            .collect();
        let err = us
            .iter()
            .map(|&u| {
                let want = (u as f64).ln_1p();
                (log1p_unit(u) as f64 - want).abs() / want.max(1e-30) / f32::EPSILON as f64
            })
            .fold(0.0, f64::max);
        assert!(err < 2.0, "log1p: {err} ulp");
        assert!(log1p_unit(f32::NAN).is_nan());
        assert_eq!(log1p_unit(0.0), 0.0);
    }

    #[test]
    fn sigmoid_and_tanh_within_four_ulp() {
        let sigmoid_exact = |x: f64| 1.0 / (1.0 + (-x).exp());
        let err = max_error(sigmoid, sigmoid_exact, 1e-30);
        assert!(err < 4.0, "sigmoid: {err} ulp");
        assert_special(sigmoid, 0.0, 1.0);
        let err = max_error(tanh, f64::tanh, f32::MIN_POSITIVE as f64);
        assert!(err < 4.0, "tanh: {err} ulp");
        assert_special(tanh, -1.0, 1.0);
    }

    #[test]
    fn erf_within_the_published_bound() {
        // A&S 7.1.26 bounds the absolute error by 1.5e-7; in f32, `1 - r t e` cancels for small
        // |x| (r t e -> 1), which brings it to 5.5e-7 near |x| = 0.02, as in PyTorch's kernel.
        let worst = grid()
            .into_iter()
            .map(|x| (erf(x) as f64 - libm_erf(x as f64)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 6e-7, "erf: {worst}");
        assert_special(erf, -1.0, 1.0);
    }

    /// erf in f64 from its continued fraction / series, enough for a 1e-9 reference.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let value = if a < 3.0 {
            // Maclaurin series, converges fast for |x| < 3.
            let mut term = a;
            let mut sum = a;
            let mut n = 0.0;
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // Continued fraction for erfc, evaluated from the tail.
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = k as f64 / 2.0 / (a + f);
            }
            1.0 - (-a * a).exp() / (a + f) / std::f64::consts::PI.sqrt()
        };
        value.copysign(x)
    }
}
