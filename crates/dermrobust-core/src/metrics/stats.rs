//! Statistical tests and confidence intervals.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// McNemar's test of two classifiers on the same images (Katsch et al. 2022).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Images the first classifier gets right and the second wrong.
    pub b: u64,
    /// Images the first classifier gets wrong and the second right.
    pub c: u64,
    /// Chi-squared statistic with Edwards' continuity correction: `(|b - c| - 1)^2 / (b + c)`.
    pub statistic: f64,
    /// Upper tail of chi-squared with one degree of freedom.
    pub p_value: f64,
}

/// McNemar's chi-squared test with Edwards' continuity correction, as
/// `statsmodels.stats.contingency_tables.mcnemar(table, exact=False, correction=True)`.
/// With no discordant pairs the classifiers cannot be told apart: statistic 0, p = 1.
pub fn mcnemar(a_correct: &[bool], b_correct: &[bool]) -> Result<McNemar> {
    if a_correct.is_empty() {
        bail!("McNemar's test of an empty set of predictions");
    }
    if a_correct.len() != b_correct.len() {
        bail!("{} and {} predictions: McNemar's test needs paired predictions", a_correct.len(), b_correct.len());
    }
    let b = a_correct.iter().zip(b_correct).filter(|(a, b)| **a && !**b).count() as u64;
    let c = a_correct.iter().zip(b_correct).filter(|(a, b)| !**a && **b).count() as u64;
    if b + c == 0 {
        return Ok(McNemar { b, c, statistic: 0.0, p_value: 1.0 });
    }
    let statistic = ((b as f64 - c as f64).abs() - 1.0).powi(2) / (b + c) as f64;
    Ok(McNemar { b, c, statistic, p_value: chi2_sf_1dof(statistic) })
}

/// Survival function of chi-squared with one degree of freedom: `erfc(sqrt(x / 2))`.
pub fn chi2_sf_1dof(x: f64) -> f64 {
    libm::erfc((x / 2.0).sqrt())
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceInterval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub level: f64,
    /// Resamples on which the statistic was defined.
    pub resamples: usize,
}

/// Percentile bootstrap confidence interval of a statistic over `n` paired items.
/// `statistic` gets resampled indices and may return `None` where it is undefined (e.g. a
/// resample with one class); such resamples are skipped.
pub fn bootstrap_ci<F>(n: usize, resamples: usize, level: f64, seed: u64, statistic: F) -> Result<ConfidenceInterval>
where
    F: Fn(&[usize]) -> Option<f64> + Sync,
{
    if n == 0 {
        bail!("bootstrap of an empty set");
    }
    let all: Vec<usize> = (0..n).collect();
    let estimate = statistic(&all).ok_or_else(|| anyhow::anyhow!("the statistic is undefined on the full data"))?;
    let mut values: Vec<f64> = (0..resamples)
        .into_par_iter()
        .filter_map(|r| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(r as u64 * 0x9E37_79B9));
            let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            statistic(&idx)
        })
        .collect();
    if values.len() < resamples / 2 {
        bail!("the statistic was undefined on most bootstrap resamples");
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let alpha = (1.0 - level) / 2.0;
    Ok(ConfidenceInterval {
        estimate,
        low: quantile_sorted(&values, alpha),
        high: quantile_sorted(&values, 1.0 - alpha),
        level,
        resamples: values.len(),
    })
}

/// Linear-interpolation quantile of sorted values (numpy's default method).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Mean and sample standard deviation (n - 1), e.g. over repeated training runs.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.2e-9), for confidence levels.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.383577518672690e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0);
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The Wilson score interval of a proportion `successes / n` at `level` (e.g. 0.95), as
/// statsmodels' `proportion_confint(method="wilson")`: an attack's success rate with its
/// uncertainty.
pub fn wilson_interval(successes: usize, n: usize, level: f64) -> Result<ConfidenceInterval> {
    if n == 0 || successes > n {
        anyhow::bail!("a proportion needs 0 <= successes <= n and n > 0, got {successes} of {n}");
    }
    if !(level > 0.0 && level < 1.0) {
        anyhow::bail!("confidence level must be in (0, 1), got {level}");
    }
    let z = normal_quantile(1.0 - (1.0 - level) / 2.0);
    let (k, n_f) = (successes as f64, n as f64);
    let p = k / n_f;
    let denom = 1.0 + z * z / n_f;
    let centre = (p + z * z / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z * z / (4.0 * n_f * n_f)).sqrt() / denom;
    Ok(ConfidenceInterval { estimate: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0), level, resamples: 0 })
}
