//! The evaluation summary of a set of predictions, computed with the shared metrics library.

use anyhow::Result;
use dermrobust_core::data::LabelScheme;
use dermrobust_core::metrics::{self, ConfidenceInterval, ConfusionMatrix};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub auroc: Option<f64>,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub specificity: f64,
    pub support: u64,
}

/// One-vs-rest metrics of the positive class (melanoma where there is one).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub positive_class: String,
    pub auroc: ConfidenceInterval,
    pub average_precision: f64,
    /// The average precision with its 95% bootstrap interval (absent in files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_precision_ci: Option<ConfidenceInterval>,
    pub pr_auc: f64,
    pub at_half: metrics::BinaryAtThreshold,
    pub youden: metrics::BinaryAtThreshold,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub images: usize,
    pub classes: Vec<String>,
    pub accuracy: ConfidenceInterval,
    pub balanced_accuracy: ConfidenceInterval,
    /// Macro one-vs-rest AUROC (for two classes: the AUROC of the positive class).
    pub macro_auroc: Option<ConfidenceInterval>,
    pub weighted_auroc: Option<f64>,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    pub confusion_matrix: Vec<Vec<u64>>,
    pub binary: Option<BinaryMetrics>,
    /// AUROC of P(melanoma) among melanoma and nevus images only.
    pub melanoma_vs_nevus_auroc: Option<f64>,
}

pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// The one headline AUROC of a set of predictions, used for model selection, evaluation and
/// audits alike: for two classes the AUROC of the positive class (melanoma where there is one),
/// for more the macro average of the one-vs-rest AUROCs. `None` where it is undefined (a class
/// missing from `labels`).
pub fn headline_auroc(labels: &[usize], probs: &[Vec<f64>], classes: &[String]) -> Option<f64> {
    if classes.len() == 2 {
        let positive = LabelScheme::positive_class(classes);
        let l: Vec<bool> = labels.iter().map(|&x| x == positive).collect();
        let s: Vec<f64> = probs.iter().map(|r| r[positive]).collect();
        metrics::roc_auc(&l, &s).ok()
    } else {
        metrics::multiclass_auroc(labels, probs, classes.len()).ok().map(|m| m.macro_avg)
    }
}

/// [`headline_auroc`] of `f32` probabilities.
pub fn headline_auroc_f32(labels: &[usize], probs: &[Vec<f32>], classes: &[String]) -> Option<f64> {
    let p64: Vec<Vec<f64>> = probs.iter().map(|p| p.iter().map(|&v| v as f64).collect()).collect();
    headline_auroc(labels, &p64, classes)
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().fold((0, f32::MIN), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
}

/// All evaluation metrics of `probs` against `labels`, with 95% bootstrap intervals (seeded).
pub fn evaluate(labels: &[usize], probs: &[Vec<f32>], classes: &[String], seed: u64) -> Result<EvalMetrics> {
    let k = classes.len();
    let preds: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let probs64: Vec<Vec<f64>> = probs.iter().map(|p| p.iter().map(|&v| v as f64).collect()).collect();
    let cm = ConfusionMatrix::new(labels, &preds, k)?;
    let pick = |idx: &[usize]| -> (Vec<usize>, Vec<usize>) { (idx.iter().map(|&i| labels[i]).collect(), idx.iter().map(|&i| preds[i]).collect()) };
    let ci = |f: &(dyn Fn(&[usize]) -> Option<f64> + Sync)| metrics::bootstrap_ci(labels.len(), BOOTSTRAP_RESAMPLES, 0.95, seed, f);
    let accuracy = ci(&|idx| {
        let (t, p) = pick(idx);
        Some(ConfusionMatrix::new(&t, &p, k).ok()?.accuracy())
    })?;
    let balanced_accuracy = ci(&|idx| {
        let (t, p) = pick(idx);
        Some(ConfusionMatrix::new(&t, &p, k).ok()?.balanced_accuracy())
    })?;
    let positive = LabelScheme::positive_class(classes);
    let multi = metrics::multiclass_auroc(labels, &probs64, k).ok();
    let macro_auroc = if multi.is_some() {
        Some(ci(&|idx| {
            let t: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
            let p: Vec<Vec<f64>> = idx.iter().map(|&i| probs64[i].clone()).collect();
            headline_auroc(&t, &p, classes)
        })?)
    } else {
        None
    };
    let reports = cm.per_class();
    let per_class = classes
        .iter()
        .enumerate()
        .map(|(c, name)| ClassMetrics {
            class: name.clone(),
            auroc: multi.as_ref().and_then(|m| m.per_class[c]),
            precision: reports[c].precision,
            recall: reports[c].recall,
            f1: reports[c].f1,
            specificity: reports[c].specificity,
            support: reports[c].support,
        })
        .collect();
    let pos_labels: Vec<bool> = labels.iter().map(|&l| l == positive).collect();
    let pos_scores: Vec<f64> = probs64.iter().map(|p| p[positive]).collect();
    let binary = match metrics::roc_auc(&pos_labels, &pos_scores) {
        Ok(_) => Some(BinaryMetrics {
            positive_class: classes[positive].clone(),
            auroc: metrics::bootstrap_ci(labels.len(), BOOTSTRAP_RESAMPLES, 0.95, seed, |idx| {
                let l: Vec<bool> = idx.iter().map(|&i| pos_labels[i]).collect();
                let s: Vec<f64> = idx.iter().map(|&i| pos_scores[i]).collect();
                metrics::roc_auc(&l, &s).ok()
            })?,
            average_precision: metrics::average_precision(&pos_labels, &pos_scores)?,
            average_precision_ci: Some(metrics::bootstrap_ci(labels.len(), BOOTSTRAP_RESAMPLES, 0.95, seed, |idx| {
                let l: Vec<bool> = idx.iter().map(|&i| pos_labels[i]).collect();
                let s: Vec<f64> = idx.iter().map(|&i| pos_scores[i]).collect();
                metrics::average_precision(&l, &s).ok()
            })?),
            pr_auc: metrics::pr_auc(&pos_labels, &pos_scores)?,
            at_half: metrics::at_threshold(&pos_labels, &pos_scores, 0.5)?,
            youden: metrics::youden_optimal(&pos_labels, &pos_scores)?,
        }),
        Err(_) => None,
    };
    let melanoma_vs_nevus_auroc = match (classes.iter().position(|c| c == "mel"), classes.iter().position(|c| c == "nv")) {
        (Some(m), Some(n)) => {
            let keep: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == m || labels[i] == n).collect();
            let l: Vec<bool> = keep.iter().map(|&i| labels[i] == m).collect();
            let s: Vec<f64> = keep.iter().map(|&i| probs64[i][m]).collect();
            metrics::roc_auc(&l, &s).ok()
        }
        _ => None,
    };
    Ok(EvalMetrics {
        images: labels.len(),
        classes: classes.to_vec(),
        accuracy,
        balanced_accuracy,
        weighted_auroc: multi.as_ref().map(|m| m.weighted_avg),
        macro_auroc,
        macro_f1: cm.macro_avg().f1,
        weighted_f1: cm.weighted_avg().f1,
        per_class,
        confusion_matrix: cm.counts.clone(),
        binary,
        melanoma_vs_nevus_auroc,
    })
}

impl EvalMetrics {
    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let ci = |c: &ConfidenceInterval| format!("{:.3} [{:.3}, {:.3}]", c.estimate, c.low, c.high);
        let mut s = format!(
            "images {}\naccuracy           {}\nbalanced accuracy  {}\n",
            self.images,
            ci(&self.accuracy),
            ci(&self.balanced_accuracy)
        );
        if let Some(a) = &self.macro_auroc {
            s += &format!("macro AUROC        {}\n", ci(a));
        }
        if let Some(b) = &self.binary {
            match &b.average_precision_ci {
                Some(ap) => s += &format!("{} AUROC (vs rest)  {}   AP {}\n", b.positive_class, ci(&b.auroc), ci(ap)),
                None => s += &format!("{} AUROC (vs rest)  {}   AP {:.3}\n", b.positive_class, ci(&b.auroc), b.average_precision),
            }
        }
        if let Some(a) = self.melanoma_vs_nevus_auroc {
            s += &format!("mel vs nv AUROC    {a:.3}\n");
        }
        s
    }
}
