//! The adversarial audit's report sections: the attack table, success against epsilon and
//! against the initial confidence and the sweeps (the runner's gallery shows the adversarial
//! images with their perturbations magnified).

use anyhow::Result;
use dermrobust_core::report::html::HtmlReport;
use dermrobust_core::report::plots::{line_plot, Series};

use super::{Adversarial, ModelAdversarial};
use crate::audits::runner::AuditOutcome;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

pub fn sections(r: &mut HtmlReport, outcome: &AuditOutcome<Adversarial>) -> Result<()> {
    let Some(first) = outcome.results.first() else { return Ok(()) };
    r.paragraph(&format!(
        "{} of {} images attacked (by default the correctly classified images of the positive class, as Du-Harpur et al. attacked melanomas). Success: the audited classifier's decision meets the goal on the perturbed image, which is rebuilt from its record. Intervals: 95% Wilson. Sizes are medians over successful attacks, in [0, 1] pixel units (L∞, L2) and CIEDE2000 ΔE.",
        first.targets, first.images
    ));
    for m in &outcome.results {
        attack_table(r, m);
    }
    // Success against epsilon, per gradient attack family.
    let mut families: Vec<String> = first.attacks.iter().filter(|a| a.epsilon.is_some()).map(|a| a.attack.split(" eps=").next().unwrap_or("").to_string()).collect();
    families.dedup();
    families.sort();
    families.dedup();
    let series: Vec<Series> = families
        .iter()
        .map(|f| Series {
            name: f.clone(),
            points: first.attacks.iter().filter(|a| a.attack.starts_with(&format!("{f} eps="))).filter_map(|a| Some((a.epsilon? as f64, 100.0 * a.success_rate?.estimate))).collect(),
            dashed: false,
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !series.is_empty() {
        r.svg(&line_plot("Success against the perturbation budget", "epsilon ([0, 1] pixel units)", "success %", &series, false)?, "Share of attacked images whose decision the attack changed, against its budget (first model).");
    }
    let by_conf: Vec<Series> = first
        .attacks
        .iter()
        .map(|a| Series {
            name: a.attack.clone(),
            points: a.by_initial_confidence.iter().filter(|(_, n, _)| *n > 0).map(|(lo, n, s)| (*lo as f64 + 0.05, 100.0 * *s as f64 / *n as f64)).collect(),
            dashed: a.kind == "gradient",
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !by_conf.is_empty() {
        r.svg(&line_plot("Success against the model's initial confidence", "initial confidence in the attacked class", "success %", &by_conf, false)?, "Du-Harpur et al. Fig. 1n, 2j, 2t: few-pixel attacks succeed mostly on images the model was unsure of; colour and geometry attacks also on confident ones. Bins of 0.1.");
    }
    if !first.sweeps.is_empty() {
        r.heading("Sweeps");
        let base = first.sweeps.iter().find(|s| s.family == "none");
        r.paragraph(&format!(
            "Every image shifted in one colour channel, or rotated. Without change: {} false negatives of {} positive images (sensitivity {}, specificity {}, AUROC {}). Du-Harpur: -10/255 on green raised false negatives from 68 to 160; 45 or 180 degrees from 68 to 76.",
            base.map_or(0, |b| b.false_negatives),
            base.map_or(0, |b| b.positives),
            opt(base.and_then(|b| b.sensitivity), 3),
            opt(base.and_then(|b| b.specificity), 3),
            opt(base.and_then(|b| b.auroc), 3)
        ));
        let fn0 = base.map_or(0.0, |b| b.false_negatives as f64);
        let colour: Vec<Series> = ["red", "green", "blue"]
            .iter()
            .map(|c| {
                let mut points: Vec<(f64, f64)> = first.sweeps.iter().filter(|s| s.channel.as_deref() == Some(*c)).map(|s| (s.value as f64, s.false_negatives as f64)).collect();
                points.push((0.0, fn0));
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { name: c.to_string(), points, dashed: false }
            })
            .filter(|s| s.points.len() > 1)
            .collect();
        if !colour.is_empty() {
            r.svg(&line_plot("False negatives against a colour-channel offset", "offset (units of 255)", "false negatives", &colour, false)?, "Positive images decided otherwise when one channel is shifted.");
        }
        let mut rot: Vec<(f64, f64)> = first.sweeps.iter().filter(|s| s.family == "rotation").map(|s| (s.value as f64, s.false_negatives as f64)).collect();
        if !rot.is_empty() {
            rot.insert(0, (0.0, fn0));
            r.svg(&line_plot("False negatives against rotation", "degrees", "false negatives", &[Series { name: "rotation".into(), points: rot, dashed: false }], false)?, "Positive images decided otherwise when every image is rotated (reflected border).");
        }
        let header = ["setting", "false negatives", "sensitivity", "specificity", "AUROC"].map(String::from).to_vec();
        let rows: Vec<Vec<String>> = first.sweeps.iter().map(|s| vec![s.setting.clone(), s.false_negatives.to_string(), opt(s.sensitivity, 3), opt(s.specificity, 3), opt(s.auroc, 3)]).collect();
        r.table(&header, &rows);
    }
    Ok(())
}

fn attack_table(r: &mut HtmlReport, m: &ModelAdversarial) {
    r.heading(&format!("Attacks on {}", m.model));
    let header = ["attack", "kind", "success", "95% CI", "median queries", "L∞", "L2", "ΔE", "degrees", "queries/s"].map(String::from).to_vec();
    let rows: Vec<Vec<String>> = m
        .attacks
        .iter()
        .map(|a| {
            vec![
                a.attack.clone(),
                a.kind.clone(),
                format!("{}/{} ({})", a.successes, a.attempted, a.success_rate.map_or("–".into(), |c| format!("{:.1}%", 100.0 * c.estimate))),
                a.success_rate.map_or("–".into(), |c| format!("{:.1}-{:.1}%", 100.0 * c.low, 100.0 * c.high)),
                opt(a.median_queries, 0),
                opt(a.median_linf, 4),
                opt(a.median_l2, 3),
                opt(a.median_delta_e, 2),
                opt(a.median_degrees, 0),
                format!("{:.0}", a.queries_per_second),
            ]
        })
        .collect();
    r.table(&header, &rows);
}
