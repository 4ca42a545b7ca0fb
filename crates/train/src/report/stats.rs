//! Small-sample statistics for the report: the confidence interval of a mean over seeds, the
//! paired t-test of two activations run with the same seeds, Holm's correction over a report's
//! tests, and how many seeds a difference would need. The t distribution is statrs'; the
//! results are checked against scipy 1.x and statsmodels on fixed numbers (tests below).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Student's t distribution with `df` degrees of freedom (statrs).
fn students_t(df: f64) -> StudentsT {
    StudentsT::new(0.0, 1.0, df).expect("degrees of freedom are positive and finite")
}

/// P(T ≤ t) for Student's t distribution with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    students_t(df).cdf(t)
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    students_t(df).inverse_cdf(p)
}

/// Holm's step-down adjustment of `p_values` (one family of tests), in their order: the
/// i-th smallest p is multiplied by (m − i + 1), capped at 1, and made non-decreasing in
/// that order. Rejecting where the adjusted p < α keeps the chance of any false positive in
/// the family at or below α (Holm 1979), whatever the dependence between the tests.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0_f64;
    for (rank, &index) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[index]).min(1.0));
        adjusted[index] = running;
    }
    adjusted
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

    /// statsmodels' `multipletests(p, method="holm")` on the same p-values.
    #[test]
    fn holm_matches_statsmodels() {
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.03, 0.06, 0.06, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!(close(*a, e, 1e-15), "{adjusted:?}");
        }
        // Capped at 1, ties kept, and an empty family is empty.
        assert_eq!(holm(&[0.5, 0.5, 0.9]), [1.0, 1.0, 1.0]);
        assert_eq!(holm(&[0.001, 0.2]), [0.002, 0.2]);
        assert!(holm(&[]).is_empty());
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
