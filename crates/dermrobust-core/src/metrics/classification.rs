//! Multi-class metrics: confusion matrix, per-class reports, averages, one-vs-rest AUROC.
//! Conventions follow scikit-learn (`zero_division=0`; averages over the labels present in
//! either the truth or the predictions).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::binary::roc_auc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// `counts[truth][prediction]`.
    pub counts: Vec<Vec<u64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub specificity: f64,
    pub fpr: f64,
    pub fnr: f64,
    pub support: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl ConfusionMatrix {
    pub fn new(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<Self> {
        if y_true.is_empty() {
            bail!("confusion matrix of an empty set of predictions");
        }
        if y_true.len() != y_pred.len() {
            bail!("{} true labels but {} predictions", y_true.len(), y_pred.len());
        }
        let mut counts = vec![vec![0u64; n_classes]; n_classes];
        for (&t, &p) in y_true.iter().zip(y_pred) {
            if t >= n_classes || p >= n_classes {
                bail!("class index {} outside 0..{n_classes}", t.max(p));
            }
            counts[t][p] += 1;
        }
        Ok(ConfusionMatrix { counts })
    }

    pub fn n_classes(&self) -> usize {
        self.counts.len()
    }

    pub fn count(&self, truth: usize, pred: usize) -> u64 {
        self.counts[truth][pred]
    }

    fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn support(&self, c: usize) -> u64 {
        self.counts[c].iter().sum()
    }

    fn predicted(&self, c: usize) -> u64 {
        self.counts.iter().map(|row| row[c]).sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.n_classes()).map(|c| self.counts[c][c]).sum();
        correct as f64 / self.total() as f64
    }

    /// Mean recall over the classes present in the truth (scikit-learn `balanced_accuracy_score`).
    pub fn balanced_accuracy(&self) -> f64 {
        let recalls: Vec<f64> =
            (0..self.n_classes()).filter(|&c| self.support(c) > 0).map(|c| self.counts[c][c] as f64 / self.support(c) as f64).collect();
        recalls.iter().sum::<f64>() / recalls.len() as f64
    }

    pub fn per_class(&self) -> Vec<ClassReport> {
        let total = self.total() as f64;
        (0..self.n_classes())
            .map(|c| {
                let tp = self.counts[c][c] as f64;
                let fn_ = self.support(c) as f64 - tp;
                let fp = self.predicted(c) as f64 - tp;
                let tn = total - tp - fn_ - fp;
                let recall = ratio(tp, tp + fn_);
                let specificity = ratio(tn, tn + fp);
                ClassReport {
                    precision: ratio(tp, tp + fp),
                    recall,
                    f1: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
                    specificity,
                    fpr: ratio(fp, tn + fp),
                    fnr: ratio(fn_, tp + fn_),
                    support: self.support(c),
                }
            })
            .collect()
    }

    /// Classes that occur in the truth or the predictions.
    fn present(&self) -> Vec<usize> {
        (0..self.n_classes()).filter(|&c| self.support(c) + self.predicted(c) > 0).collect()
    }

    /// Unweighted mean over present classes.
    pub fn macro_avg(&self) -> Averages {
        let reports = self.per_class();
        let present = self.present();
        let mean = |f: fn(&ClassReport) -> f64| present.iter().map(|&c| f(&reports[c])).sum::<f64>() / present.len() as f64;
        Averages { precision: mean(|r| r.precision), recall: mean(|r| r.recall), f1: mean(|r| r.f1) }
    }

    /// Mean weighted by support.
    pub fn weighted_avg(&self) -> Averages {
        let reports = self.per_class();
        let total = self.total() as f64;
        let mean = |f: fn(&ClassReport) -> f64| reports.iter().map(|r| f(r) * r.support as f64).sum::<f64>() / total;
        Averages { precision: mean(|r| r.precision), recall: mean(|r| r.recall), f1: mean(|r| r.f1) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MulticlassAuroc {
    /// One-vs-rest AUROC of each class; `None` where the class is absent from the truth.
    pub per_class: Vec<Option<f64>>,
    pub macro_avg: f64,
    /// Weighted by prevalence.
    pub weighted_avg: f64,
}

/// One-vs-rest AUROC (scikit-learn `roc_auc_score(multi_class="ovr")`).
pub fn multiclass_auroc(y_true: &[usize], probs: &[Vec<f64>], n_classes: usize) -> Result<MulticlassAuroc> {
    if y_true.len() != probs.len() {
        bail!("{} labels but {} probability rows", y_true.len(), probs.len());
    }
    if y_true.is_empty() {
        bail!("AUROC of an empty set of predictions");
    }
    if let Some(row) = probs.iter().find(|r| r.len() != n_classes) {
        bail!("a probability row has {} entries for {n_classes} classes", row.len());
    }
    let mut per_class = Vec::with_capacity(n_classes);
    let mut support = Vec::with_capacity(n_classes);
    for c in 0..n_classes {
        let labels: Vec<bool> = y_true.iter().map(|&t| t == c).collect();
        let n = labels.iter().filter(|&&l| l).count();
        support.push(n);
        if n == 0 {
            per_class.push(None);
            continue;
        }
        let scores: Vec<f64> = probs.iter().map(|r| r[c]).collect();
        per_class.push(Some(roc_auc(&labels, &scores)?));
    }
    let present: Vec<(f64, usize)> = per_class.iter().zip(&support).filter_map(|(a, &n)| a.map(|a| (a, n))).collect();
    if present.len() < 2 {
        bail!("AUROC needs at least two classes in the truth");
    }
    let macro_avg = present.iter().map(|(a, _)| a).sum::<f64>() / present.len() as f64;
    let total: usize = present.iter().map(|(_, n)| n).sum();
    let weighted_avg = present.iter().map(|(a, n)| a * *n as f64).sum::<f64>() / total as f64;
    Ok(MulticlassAuroc { per_class, macro_avg, weighted_avg })
}
