//! Small-sample statistics for the report: Student's t distribution, the confidence interval
//! of a mean over seeds, the paired t-test of two activations run with the same seeds, and how
//! many seeds a difference would need. Checked against scipy 1.x on fixed numbers (tests
//! below).

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients; relative error ~1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |sum, (i, c)| {
            sum + c / (x + i as f64 + 1.0)
        });
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// The regularised incomplete beta function I_x(a, b), by Lentz's continued fraction.
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(1.0 - x, b, a);
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp() / a;
    const TINY: f64 = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut fraction = d;
    for m in 1..500 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < TINY { TINY } else { c };
            fraction *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    front * fraction
}

/// P(T ≤ t) for Student's t distribution with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / (df + t * t), df / 2.0, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom (bisection on
/// [`t_cdf`], to 1e-12).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut low, mut high): (f64, f64) = (-1e7, 1e7);
    while high - low > 1e-12 * high.abs().max(1.0) {
        let mid = 0.5 * (low + high);
        if t_cdf(mid, df) < p {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, variance.sqrt())
}

/// The 95% confidence interval of a mean, from the t distribution with n − 1 degrees of
/// freedom.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MeanInterval {
    /// The sample mean.
    pub mean: f64,
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// The 95% interval of the mean of `values`; `None` with fewer than two values (one seed says
/// nothing about the spread).
pub fn mean_interval(values: &[f64]) -> Option<MeanInterval> {
    if values.len() < 2 {
        return None;
    }
    let (mean, sd) = mean_and_sd(values);
    let half = t_quantile(0.975, values.len() as f64 - 1.0) * sd / (values.len() as f64).sqrt();
    Some(MeanInterval {
        mean,
        low: mean - half,
        high: mean + half,
    })
}

/// A paired comparison of two activations over the seeds both ran (same data order and
/// initialisation stream per seed): the paired t-test.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PairedComparison {
    /// Seeds in the pairing.
    pub n: usize,
    /// Mean of `a − b` over the seeds.
    pub mean_difference: f64,
    /// Sample standard deviation of the differences.
    pub sd_difference: f64,
    /// 95% interval of the mean difference.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
}

/// The paired t-test of `a` against `b` (equal lengths, paired by position); `None` with
/// fewer than two pairs.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Option<PairedComparison> {
    assert_eq!(a.len(), b.len(), "paired samples");
    if a.len() < 2 {
        return None;
    }
    let differences: Vec<f64> = a.iter().zip(b).map(|(a, b)| a - b).collect();
    let (mean, sd) = mean_and_sd(&differences);
    let df = a.len() as f64 - 1.0;
    let standard_error = sd / (a.len() as f64).sqrt();
    let p_value = if standard_error == 0.0 {
        if mean == 0.0 { 1.0 } else { 0.0 }
    } else {
        2.0 * (1.0 - t_cdf((mean / standard_error).abs(), df))
    };
    let half = t_quantile(0.975, df) * standard_error;
    Some(PairedComparison {
        n: a.len(),
        mean_difference: mean,
        sd_difference: sd,
        low: mean - half,
        high: mean + half,
        p_value,
    })
}

/// Seeds a paired comparison needs to detect a true mean difference of `difference` with 80%
/// power at the 5% level, when differences spread with standard deviation `sd_difference`:
/// the smallest n with (t₀.₉₇₅ + t₀.₈₀)(n − 1 df) · sd / √n ≤ |difference|. `None` for no
/// difference or more than 10,000 seeds.
pub fn seeds_needed(difference: f64, sd_difference: f64) -> Option<usize> {
    if difference == 0.0 || !difference.is_finite() {
        return None;
    }
    (2..=10_000).find(|&n| {
        let df = n as f64 - 1.0;
        (t_quantile(0.975, df) + t_quantile(0.8, df)) * sd_difference / (n as f64).sqrt()
            <= difference.abs()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    /// Reference values from scipy.stats (t.cdf, t.ppf, ttest_rel, t.interval).
    #[test]
    fn t_distribution_matches_scipy() {
        for (t, df, expected) in [
            (1.5, 3.0, 0.8847080673775886),
            (-2.2, 7.0, 0.03186550765131839),
            (0.3, 30.0, 0.6168769473578236),
            (40.0, 2.0, 0.9996877926639076),
        ] {
            assert!(
                close(t_cdf(t, df), expected, 1e-12),
                "cdf({t}, {df}) = {}",
                t_cdf(t, df)
            );
        }
        for (p, df, expected) in [
            (0.975, 1.0, 12.706204736174694),
            (0.975, 2.0, 4.302652729749462),
            (0.975, 9.0, 2.262157162798205),
            (0.8, 4.0, 0.9409645772351816),
            (0.025, 5.0, -2.5705818356363155),
        ] {
            let q = t_quantile(p, df);
            assert!(close(q, expected, 1e-9), "ppf({p}, {df}) = {q}");
        }
    }

    #[test]
    fn intervals_and_paired_tests_match_scipy() {
        let a = [0.9112, 0.9098, 0.9131, 0.9085, 0.9120];
        let b = [0.9080, 0.9091, 0.9102, 0.9079, 0.9088];
        let interval = mean_interval(&a).unwrap();
        assert!(close(interval.mean, 0.9109200000000002, 1e-12));
        assert!(
            close(interval.low, 0.9086722794834557, 1e-10),
            "{interval:?}"
        );
        assert!(
            close(interval.high, 0.9131677205165446, 1e-10),
            "{interval:?}"
        );

        let test = paired_t_test(&a, &b).unwrap();
        assert_eq!(test.n, 5);
        assert!(close(test.mean_difference, 0.0021199999999999886, 1e-12));
        assert!(close(test.sd_difference, 0.0013479614237803732, 1e-12));
        assert!(close(test.p_value, 0.024521552462187415, 1e-9), "{test:?}");
        assert!(close(test.low, 0.00044628482912441206, 1e-10), "{test:?}");
        assert!(close(test.high, 0.003793715170875565, 1e-10), "{test:?}");

        let test = paired_t_test(&[0.8753, 0.8791, 0.8712], &[0.8760, 0.8801, 0.8735]).unwrap();
        assert!(close(test.p_value, 0.11307985968301608, 1e-9), "{test:?}");
        assert!(close(test.low, -0.003446067751959399, 1e-10), "{test:?}");
        assert!(close(test.high, 0.0007794010852926563, 1e-10), "{test:?}");

        // One seed: no interval, no test. Identical results: no difference at all.
        assert!(mean_interval(&[0.9]).is_none());
        assert!(paired_t_test(&[0.9], &[0.8]).is_none());
        assert_eq!(
            paired_t_test(&[0.9, 0.8], &[0.9, 0.8]).unwrap().p_value,
            1.0
        );
    }

    /// scipy's exact power (noncentral t) needs 20 seeds for a 0.1-point difference that
    /// spreads by 0.15 points, and 4 for 0.3 points spreading by 0.1; the central-t formula
    /// lands within one seed.
    #[test]
    fn seeds_needed_matches_an_exact_power_analysis() {
        let n = seeds_needed(0.001, 0.0015).unwrap();
        assert!((19..=21).contains(&n), "{n}");
        let n = seeds_needed(-0.003, 0.001).unwrap();
        assert!((4..=5).contains(&n), "{n}");
        assert_eq!(seeds_needed(0.0, 0.001), None);
    }
}
