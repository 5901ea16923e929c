//! The one metrics library of dermrobust, used by evaluation and every audit.
//! Checked against scikit-learn and statsmodels (see `tests/metrics_reference.rs`).

mod binary;
mod brittleness;
mod classification;
mod stats;

pub use binary::{
    at_threshold, average_precision, pr_auc, precision_recall_curve, roc_auc, roc_curve, trapezoid, youden_optimal,
    BinaryAtThreshold, PrCurve, RocCurve,
};
pub use brittleness::{change_distribution, mean_absolute_change, prediction_change_rate, ChangeDistribution};
pub use classification::{multiclass_auroc, Averages, ClassReport, ConfusionMatrix, MulticlassAuroc};
pub use stats::{bootstrap_ci, chi2_sf_1dof, mcnemar, mean_std, normal_quantile, quantile_sorted, wilson_interval, ConfidenceInterval, McNemar};
