//! The artefact audit on constructed cases: an artefact-blind classifier (it sees only the
//! lesion) never changes its mind when artefacts go outside the lesion, a classifier that sees
//! the whole image does; shares are exact; every record replays; McNemar per step matches
//! statsmodels.

use std::path::Path;

use anyhow::Result;
use dermrobust::audits::artefacts::{seed_step, ArtefactAudit, ModelArtefacts};
use dermrobust::audits::{run_audit, Audit, AuditImages, AuditRun};
use dermrobust::evaluation::{argmax, ImageClassifier};
use dermrobust_core::data::ImageSet;
use dermrobust_core::imaging::artefacts::{Artefact, Inserter, Placement, PROCEDURAL_KINDS};
use dermrobust_core::imaging::{Image, ImageOp};

const SIZE: usize = 32;

/// The lesion of every test image: a disc of radius 6 px about (14, 17).
fn lesion_mask() -> Image {
    let mut m = Image::filled(1, SIZE, SIZE, 0.0);
    for y in 0..SIZE {
        for x in 0..SIZE {
            if ((x as f32 + 0.5 - 14.0).powi(2) + (y as f32 + 0.5 - 17.0).powi(2)).sqrt() < 6.0 {
                m.set(0, x, y, 1.0);
            }
        }
    }
    m
}

/// Class from the mean colour of the pixels under `mask` only (or of the whole image).
struct Looker {
    classes: Vec<String>,
    mask: Option<Image>,
}

impl ImageClassifier for Looker {
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn input_size(&self) -> usize {
        SIZE
    }
    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        Ok(images
            .iter()
            .map(|img| {
                let plane = SIZE * SIZE;
                let (mut sum, mut n) = (0.0f32, 0.0f32);
                for i in 0..plane {
                    if self.mask.as_ref().is_none_or(|m| m.data[i] > 0.5) {
                        sum += img.data[i] + img.data[plane + i] + img.data[2 * plane + i];
                        n += 3.0;
                    }
                }
                let p = 1.0 / (1.0 + (-(sum / n - 0.45) * 40.0).exp());
                vec![1.0 - p, p]
            })
            .collect())
    }
    fn describe(&self) -> String {
        if self.mask.is_some() { "lesion only".into() } else { "whole image".into() }
    }
}

/// 30 images around the decision threshold: skin with a darker lesion where the mask says.
fn image_set() -> ImageSet {
    let mask = lesion_mask();
    let mut items = Vec::new();
    for i in 0..30 {
        let level = 0.35 + 0.2 * (i as f32 / 29.0);
        let mut img = Image::filled(3, SIZE, SIZE, 0.0);
        for y in 0..SIZE {
            for x in 0..SIZE {
                let skin = 0.45 + 0.02 * ((x + y + i) % 3) as f32;
                let v = if mask.get(0, x, y) > 0.5 { level } else { skin };
                for c in 0..3 {
                    img.set(c, x, y, v);
                }
            }
        }
        let label = usize::from(level > 0.45);
        items.push((format!("img{i:02}"), format!("lesion{i}"), label, img, Some(mask.clone())));
    }
    ImageSet::from_images(vec!["nv".into(), "mel".into()], items).unwrap()
}

fn run(audit: &ArtefactAudit, model: &Looker, set: &ImageSet, out: &Path) -> Vec<ModelArtefacts> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let images = AuditImages { set, indices: &idx, pool: &idx };
    let classifiers: Vec<Box<dyn ImageClassifier>> = vec![Box::new(Looker { classes: model.classes.clone(), mask: model.mask.clone() })];
    let run = AuditRun { data: "constructed".into(), model_paths: &[], subject: serde_json::json!({}), out, resume: false, quiet: true };
    run_audit(audit, &classifiers, &images, &run).unwrap().results
}

fn procedural(placement: Placement) -> ArtefactAudit {
    let kinds = PROCEDURAL_KINDS.iter().filter(|k| **k != "vignette").map(|k| Artefact::Procedural(k.to_string())).collect();
    ArtefactAudit::new(kinds, Inserter { library: None, placement }, ArtefactAudit::katsch_shares(), vec![0, 1], None).unwrap()
}

#[test]
fn an_artefact_blind_classifier_never_changes_its_mind() {
    let set = image_set();
    let dir = tempfile::tempdir().unwrap();
    let blind = Looker { classes: set.classes.clone(), mask: Some(lesion_mask()) };
    let results = run(&procedural(Placement::Outside), &blind, &set, dir.path());
    let r = &results[0];
    let mut placed = 0;
    for step in &r.steps {
        for s in &step.seeds {
            assert_eq!(s.p_class_change, 0.0, "{}: the lesion-only classifier changed its mind", step.name);
            assert_eq!(s.mean_abs_change, 0.0, "{}", step.name);
            assert_eq!(s.mcnemar.p_value, 1.0);
            placed += s.chosen - s.not_placed;
        }
    }
    assert!(placed > 100, "only {placed} artefacts were placed");
    // The same artefacts change the mind of a classifier that sees the whole image.
    let dir2 = tempfile::tempdir().unwrap();
    let seeing = Looker { classes: set.classes.clone(), mask: None };
    let results = run(&procedural(Placement::Outside), &seeing, &set, dir2.path());
    let changed: f64 = results[0].steps.iter().flat_map(|s| s.seeds.iter()).map(|s| s.p_class_change).sum();
    assert!(changed > 0.0, "artefacts outside the lesion should move a whole-image classifier");
}

#[test]
fn shares_are_exact_and_every_record_replays() {
    let set = image_set();
    let dir = tempfile::tempdir().unwrap();
    let model = Looker { classes: set.classes.clone(), mask: None };
    let audit = procedural(Placement::Katsch);
    let results = run(&audit, &model, &set, dir.path());
    for step in &results[0].steps {
        let share = step.share.unwrap();
        for s in &step.seeds {
            assert_eq!(s.chosen, (share * 30.0).round() as usize, "{}", step.name);
        }
        if share == 0.0 {
            assert!(step.seeds.iter().all(|s| s.p_class_change == 0.0 && s.metrics.accuracy == results[0].clean.accuracy));
        }
    }
    // Every record rebuilds its image and prediction from the original and the op.
    let mut reader = csv::Reader::from_path(dir.path().join("artefacts_per_image.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let mut rows = 0;
    for rec in reader.records() {
        let rec = rec.unwrap();
        let op: ImageOp = serde_json::from_str(&rec[col("op")]).unwrap();
        let i = set.position(&rec[col("image_id")]).unwrap();
        let p = model.predict(&[op.apply(&set.image(i)).unwrap()]).unwrap().remove(0);
        assert_eq!(set.classes[argmax(&p)], rec[col("predicted_perturbed")]);
        let recorded: f32 = rec[col("p_true_perturbed")].parse().unwrap();
        assert!((p[set.labels[i]] - recorded).abs() < 1e-6);
        rows += 1;
    }
    assert_eq!(rows, 30 * audit.seeds.len() * audit.artefacts.len());
    // The files the runner writes.
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("artefacts.json")).unwrap()).unwrap();
    assert_eq!(json["audit"], "artefacts");
    assert!(std::fs::read_to_string(dir.path().join("report.html")).unwrap().contains("against the share"));
    assert!(audit.needs_masks());
}

#[test]
fn the_step_mcnemar_matches_statsmodels() {
    // statsmodels mcnemar([[22, 9], [3, 6]], exact=False, correction=True): statistic
    // 2.0833333333333335, p 0.14891467317876161 (tools/reference/metrics_reference.py, the
    // literal case): 22 right both times, 9 right only clean, 3 right only with the artefact.
    let classes = vec!["nv".to_string(), "mel".to_string()];
    let (mut labels, mut p0, mut p1) = (vec![], vec![], vec![]);
    let right = |l: usize| if l == 1 { vec![0.2, 0.8] } else { vec![0.8, 0.2] };
    let wrong = |l: usize| if l == 1 { vec![0.8, 0.2] } else { vec![0.2, 0.8] };
    for (n, a, b) in [(22, true, true), (9, true, false), (3, false, true), (6, false, false)] {
        for k in 0..n {
            let l = k % 2;
            labels.push(l);
            p0.push(if a { right(l) } else { wrong(l) });
            p1.push(if b { right(l) } else { wrong(l) });
        }
    }
    let all = vec![true; labels.len()];
    let s = seed_step(0, &all, &all, &labels, &p0, &p1, &classes).unwrap();
    assert_eq!((s.mcnemar.b, s.mcnemar.c), (9, 3));
    assert!((s.mcnemar.statistic - 2.0833333333333335).abs() < 1e-12);
    assert!((s.mcnemar.p_value - 0.14891467317876161).abs() < 1e-12);
    assert_eq!(s.p_class_change, 12.0 / 40.0);
}
