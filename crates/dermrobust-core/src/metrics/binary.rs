//! Binary ranking and threshold metrics, computed exactly as scikit-learn does (ties included):
//! scores are sorted descending with a stable sort and every distinct score is one threshold.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    /// Decreasing; the first is `+inf` (nothing predicted positive).
    pub thresholds: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrCurve {
    /// Ends with 1 (scikit-learn's convention).
    pub precision: Vec<f64>,
    /// Decreasing, ends with 0.
    pub recall: Vec<f64>,
    /// Increasing; one fewer than precision and recall.
    pub thresholds: Vec<f64>,
}

/// Sensitivity, specificity and friends when predicting positive iff `score >= threshold`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinaryAtThreshold {
    pub threshold: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub precision: f64,
    pub accuracy: f64,
    pub youden_j: f64,
}

fn check(labels: &[bool], scores: &[f64], need_both: bool) -> Result<()> {
    if labels.is_empty() {
        bail!("metric of an empty set of predictions");
    }
    if labels.len() != scores.len() {
        bail!("{} labels but {} scores", labels.len(), scores.len());
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        bail!("score {i} is not a finite number ({})", scores[i]);
    }
    if need_both {
        let pos = labels.iter().filter(|&&l| l).count();
        if pos == 0 || pos == labels.len() {
            bail!("only one class is present, so this ranking metric is undefined");
        }
    }
    Ok(())
}

/// Cumulative (false positives, true positives, threshold) at each distinct score, descending.
fn binary_clf_curve(labels: &[bool], scores: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // scikit-learn: stable ascending sort, then reversed.
    order.sort_by(|&a, &b| scores[a].partial_cmp(&scores[b]).unwrap());
    order.reverse();
    let (mut fps, mut tps, mut thr) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last = k + 1 == order.len() || scores[order[k + 1]] != scores[i];
        if last {
            fps.push(fp);
            tps.push(tp);
            thr.push(scores[i]);
        }
    }
    (fps, tps, thr)
}

/// scikit-learn `roc_curve(..., drop_intermediate=False)`.
pub fn roc_curve(labels: &[bool], scores: &[f64]) -> Result<RocCurve> {
    check(labels, scores, true)?;
    let (fps, tps, thr) = binary_clf_curve(labels, scores);
    let (n_neg, n_pos) = (*fps.last().unwrap(), *tps.last().unwrap());
    let mut curve = RocCurve { fpr: vec![0.0], tpr: vec![0.0], thresholds: vec![f64::INFINITY] };
    for i in 0..fps.len() {
        curve.fpr.push(fps[i] / n_neg);
        curve.tpr.push(tps[i] / n_pos);
        curve.thresholds.push(thr[i]);
    }
    Ok(curve)
}

/// Area under the ROC curve (scikit-learn `roc_auc_score`).
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    let c = roc_curve(labels, scores)?;
    Ok(trapezoid(&c.fpr, &c.tpr))
}

/// scikit-learn `precision_recall_curve`.
pub fn precision_recall_curve(labels: &[bool], scores: &[f64]) -> Result<PrCurve> {
    check(labels, scores, true)?;
    let (fps, tps, thr) = binary_clf_curve(labels, scores);
    let n_pos = *tps.last().unwrap();
    let mut precision: Vec<f64> = fps.iter().zip(&tps).map(|(f, t)| if f + t > 0.0 { t / (f + t) } else { 0.0 }).collect();
    let mut recall: Vec<f64> = tps.iter().map(|t| t / n_pos).collect();
    let mut thresholds = thr;
    precision.reverse();
    recall.reverse();
    thresholds.reverse();
    precision.push(1.0);
    recall.push(0.0);
    Ok(PrCurve { precision, recall, thresholds })
}

/// Average precision (scikit-learn `average_precision_score`): `sum (R_n - R_{n-1}) P_n`.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64> {
    let c = precision_recall_curve(labels, scores)?;
    Ok(-(0..c.recall.len() - 1).map(|i| (c.recall[i + 1] - c.recall[i]) * c.precision[i]).sum::<f64>())
}

/// Trapezoidal area under the precision-recall curve (scikit-learn `auc(recall, precision)`),
/// the PR-AUC of Katsch et al.
pub fn pr_auc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    let c = precision_recall_curve(labels, scores)?;
    Ok(trapezoid(&c.recall, &c.precision).abs())
}

/// Trapezoidal rule over points in the given order.
pub fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    (1..x.len()).map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0).sum()
}

/// Metrics when predicting positive iff `score >= threshold`.
pub fn at_threshold(labels: &[bool], scores: &[f64], threshold: f64) -> Result<BinaryAtThreshold> {
    check(labels, scores, false)?;
    let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    for (&l, &s) in labels.iter().zip(scores) {
        match (l, s >= threshold) {
            (true, true) => tp += 1.0,
            (true, false) => fn_ += 1.0,
            (false, true) => fp += 1.0,
            (false, false) => tn += 1.0,
        }
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let sensitivity = ratio(tp, tp + fn_);
    let specificity = ratio(tn, tn + fp);
    Ok(BinaryAtThreshold {
        threshold,
        sensitivity,
        specificity,
        precision: ratio(tp, tp + fp),
        accuracy: (tp + tn) / labels.len() as f64,
        youden_j: sensitivity + specificity - 1.0,
    })
}

/// The operating point maximising Youden's J = sensitivity + specificity - 1 among the ROC
/// curve's thresholds (the first maximum in curve order).
pub fn youden_optimal(labels: &[bool], scores: &[f64]) -> Result<BinaryAtThreshold> {
    let c = roc_curve(labels, scores)?;
    let mut best = 1;
    for i in 1..c.thresholds.len() {
        if c.tpr[i] - c.fpr[i] > c.tpr[best] - c.fpr[best] {
            best = i;
        }
    }
    at_threshold(labels, scores, c.thresholds[best])
}
