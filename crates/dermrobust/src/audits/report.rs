//! The brittleness audit's `report.html`: summary table, box plots of absolute change, bars of
//! P(class change), AUROC per set against the original, natural pairs, and the largest flips.

use std::path::Path;

use anyhow::Result;
use dermrobust_core::data::ImageSet;
use dermrobust_core::imaging::{io::encode_png, Image};
use dermrobust_core::report::html::HtmlReport;
use dermrobust_core::report::plots::{bar_plot, box_plot, Bar};

use super::brittleness::{Flip, ModelBrittleness, SetSummary};
use super::suite::Suite;
use crate::evaluation::argmax;

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

/// Enlarge a small image for display (nearest neighbour keeps pixels honest).
fn enlarged(img: &Image, side: usize) -> Image {
    let f = (side / img.width.max(1)).max(1);
    let mut out = Image::filled(img.channels, img.width * f, img.height * f, 0.0);
    for c in 0..img.channels {
        for y in 0..out.height {
            for x in 0..out.width {
                out.set(c, x, y, img.get(c, x / f, y / f));
            }
        }
    }
    out
}

pub fn write(path: &Path, title: &str, data: &str, images: usize, models: &[ModelBrittleness], summary: &[SetSummary], suite: &Suite, set: &ImageSet, flips: &[Flip]) -> Result<()> {
    let mut r = HtmlReport::new(title);
    r.paragraph(&format!(
        "Data: {data}, {} images. Models: {}. P(class change) is the share of images whose predicted class differs from the prediction on the original image; the absolute change is that of the probability of the true class (Maron et al. 2021). Mean ± standard deviation over {} model(s).",
        images,
        models.iter().map(|m| m.model.clone()).collect::<Vec<_>>().join("; "),
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
    if !flips.is_empty() {
        r.heading("Largest flips");
        r.paragraph("Original and transformed image with the predicted class and its probability on each.");
        for f in flips.iter().take(8) {
            let img = set.image(f.image);
            let t = &suite.sets[f.set];
            let transformed = t.op.apply(&img)?;
            let cap = |p: &[f32]| format!("{} {:.2}", set.classes[argmax(p)], p[argmax(p)]);
            r.image_row(&[
                (encode_png(&enlarged(&img, 128))?, format!("{} (true {}): {}", set.ids[f.image], set.classes[set.labels[f.image]], cap(&f.original))),
                (encode_png(&enlarged(&transformed, 128))?, format!("{}: {}", t.name, cap(&f.transformed))),
            ]);
        }
    }
    r.write(path)
}

