//! The brittleness audit's report sections: summary table, box plots of absolute change, bars of
//! P(class change), AUROC per set against the original, natural pairs. (The runner adds the
//! largest flips.)

use anyhow::Result;
use dermrobust_core::report::html::HtmlReport;
use dermrobust_core::report::plots::{bar_plot, box_plot, Bar};

use super::brittleness::{ModelBrittleness, SetSummary};
use super::suite::Suite;

fn pm(v: (f64, f64), scale: f64) -> String {
    format!("{:.2} ± {:.2}", v.0 * scale, v.1 * scale)
}

/// The summary table rows (percentages for changes), shared with the experiment report.
pub fn summary_table(summary: &[SetSummary]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = ["set", "family", "P(class change) %", "mean abs change %", "AUROC", "ΔAUROC"].map(String::from).to_vec();
    let rows = summary
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.family.clone(),
                pm(s.p_class_change, 100.0),
                pm(s.mean_abs_change, 100.0),
                s.auroc.map_or("–".into(), |a| format!("{:.3} ± {:.3}", a.0, a.1)),
                s.delta_auroc.map_or("–".into(), |a| format!("{:+.3}", a.0)),
            ]
        })
        .collect();
    (header, rows)
}

/// The brittleness sections of `report.html`: summary table, bars of P(class change), box plots
/// of the absolute change, AUROC per set, and the transformations.
pub fn sections(r: &mut HtmlReport, models: &[ModelBrittleness], summary: &[SetSummary], suite: &Suite) -> Result<()> {
    r.paragraph(&format!(
        "P(class change) is the share of images whose predicted class differs from the prediction on the original image; the absolute change is that of the probability of the true class (Maron et al. 2021). Mean ± standard deviation over {} model(s).",
        models.len()
    ));
    r.heading("Summary");
    let (header, rows) = summary_table(summary);
    r.table(&header, &rows);
    let sets: Vec<&SetSummary> = summary.iter().filter(|s| s.family != "original").collect();
    r.svg(&bar_plot("P(class change)", "% of images", &sets.iter().map(|s| Bar::new(&s.name, 100.0 * s.p_class_change.0, 100.0 * s.p_class_change.1)).collect::<Vec<_>>(), None)?, "Share of images whose predicted class changes (mean over models; whiskers: ± standard deviation).");
    if let Some(m) = models.first() {
        let boxes: Vec<(String, _)> = m.sets.iter().map(|s| (s.name.clone(), s.abs_change.clone())).chain(m.natural.iter().map(|n| ("natural pairs".to_string(), n.abs_change.clone()))).collect();
        r.svg(&box_plot("Absolute change of the true-class probability", "|Δp|", &boxes)?, &format!("Distribution per transformed set for {} (box: quartiles; whiskers: min and max; red dot: mean).", m.model));
    }
    if let Some(orig) = summary.first().and_then(|s| s.auroc) {
        let bars: Vec<Bar> = sets.iter().filter_map(|s| s.auroc.map(|a| Bar::new(&s.name, a.0, a.1))).collect();
        r.svg(&bar_plot("AUROC per set", "AUROC", &bars, Some((orig.0, "original")))?, "AUROC on each transformed set; the dashed line is the original test set.");
    }
    r.heading("Transformations");
    let op_rows: Vec<Vec<String>> = suite.sets.iter().map(|t| vec![t.name.clone(), t.family.clone(), serde_json::to_string(&t.op).unwrap_or_default()]).collect();
    r.table(&["set".into(), "family".into(), "operation (JSON)".into()], &op_rows);
    Ok(())
}
