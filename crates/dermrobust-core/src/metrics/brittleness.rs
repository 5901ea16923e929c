//! Brittleness metrics of Maron et al. 2021: how often, and by how much, a prediction changes
//! when the input is transformed or photographed again.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::stats::quantile_sorted;

/// P(class change): the share of images whose predicted class differs.
pub fn prediction_change_rate(before: &[usize], after: &[usize]) -> Result<f64> {
    paired(before.len(), after.len())?;
    Ok(before.iter().zip(after).filter(|(a, b)| a != b).count() as f64 / before.len() as f64)
}

/// Mean absolute change of the predicted probability.
pub fn mean_absolute_change(before: &[f64], after: &[f64]) -> Result<f64> {
    paired(before.len(), after.len())?;
    Ok(before.iter().zip(after).map(|(a, b)| (a - b).abs()).sum::<f64>() / before.len() as f64)
}

fn paired(a: usize, b: usize) -> Result<()> {
    if a == 0 {
        bail!("brittleness of an empty set of predictions");
    }
    if a != b {
        bail!("{a} predictions before but {b} after the transformation");
    }
    Ok(())
}

/// Distribution of absolute changes, for box plots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeDistribution {
    pub mean: f64,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
}

pub fn change_distribution(before: &[f64], after: &[f64]) -> Result<ChangeDistribution> {
    paired(before.len(), after.len())?;
    let mut d: Vec<f64> = before.iter().zip(after).map(|(a, b)| (a - b).abs()).collect();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(ChangeDistribution {
        mean: d.iter().sum::<f64>() / d.len() as f64,
        min: d[0],
        q1: quantile_sorted(&d, 0.25),
        median: quantile_sorted(&d, 0.5),
        q3: quantile_sorted(&d, 0.75),
        max: d[d.len() - 1],
    })
}
