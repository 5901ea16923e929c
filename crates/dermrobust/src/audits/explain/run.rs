//! `dermrobust explain`: maps for a set of images, written per image (`maps/*.npy`, overlays),
//! measured against lesion masks (per method, class, and correct vs wrong prediction), for
//! faithfulness (deletion/insertion) and sanity (model randomisation), with a gallery in
//! `report.html`: the most confident errors, the most-confused label pairs (Mishra's Table 3)
//! with examples, and the flips of earlier audits (maps before and after, from their records).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use dermrobust_core::imaging::io::encode_png;
use dermrobust_core::imaging::caption::with_caption;
use dermrobust_core::imaging::{Image, ImageOp};
use dermrobust_core::report::html::HtmlReport;
use dermrobust_core::report::{atomic_write, write_csv, write_json};
use serde::{Deserialize, Serialize};

use super::metrics::{border_attention, deletion_insertion, localisation, spearman};
use super::render::{overlay, read_npy, with_outline, write_npy};
use super::{explain_many, Explainer, Method, MethodSettings};
use crate::audits::runner::{enlarged, fingerprint, AuditKey, AUDIT_KEY_FILE};
use crate::evaluation::CaptureChoice;
use dermrobust_core::imaging::remedy::{AppliedRemedy, CaptureRemedy};
use crate::evaluation::gradients::DifferentiableModel;
use crate::evaluation::argmax;
use crate::models::checkpoint::ModelMeta;
use crate::models::Classifier;

/// Which class a map explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TargetChoice {
    Predicted,
    True,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExplainSettings {
    pub methods: Vec<Method>,
    pub target: TargetChoice,
    /// Explain this class for every image (overrides `target`).
    #[serde(default)]
    pub target_class: Option<String>,
    pub method_settings: MethodSettings,
    /// Mishra's capture remedy the images got when they were loaded (recorded per image in the
    /// `op` column), or `None`.
    #[serde(default)]
    pub capture: Option<CaptureRemedy>,
    /// Deletion/insertion curves for the first this many images.
    pub faithfulness_images: usize,
    pub steps: usize,
    /// Model-randomisation check on the first this many images (gradient models only).
    pub sanity_images: usize,
    /// Images per gallery selection.
    pub gallery: usize,
    pub seed: u64,
}

/// One image to explain, as the model sees it (capture remedy applied) with its mask moved
/// the same way.
pub struct ExplainInput {
    pub id: String,
    pub image: Image,
    pub mask: Option<Image>,
    pub label: Option<usize>,
    /// The capture remedy that made `image` from the loaded one, if any.
    pub remedy: Option<AppliedRemedy>,
}

/// A record of an earlier audit to show before and after.
pub struct RecordInput {
    pub source: String,
    pub image_id: String,
    pub op: ImageOp,
    pub original: Image,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub image_id: String,
    pub true_class: String,
    pub predicted_class: String,
    pub p_predicted: f32,
    pub correct: Option<bool>,
    pub target_class: String,
    pub method: String,
    /// The remedy applied before explaining (replayable), or empty.
    pub op: String,
    pub lesion_found_by: String,
    pub energy_inside: Option<f64>,
    pub pointing: Option<bool>,
    pub jaccard: Option<f64>,
    pub mask_area: Option<f64>,
    pub border_energy: f64,
    pub max_in_border: bool,
    pub deletion_auc: Option<f64>,
    pub insertion_auc: Option<f64>,
    pub map: String,
}

/// Means of localisation figures over a group of images.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Group {
    pub images: usize,
    pub energy_inside: Option<f64>,
    pub pointing: Option<f64>,
    pub jaccard: Option<f64>,
    /// Mean mask area share: the chance level of `energy_inside` and `pointing`.
    pub mask_area: Option<f64>,
    pub border_energy: Option<f64>,
    pub max_in_border: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sanity {
    pub images: usize,
    /// Mean Spearman correlation with the maps of the model whose head is re-initialised.
    pub head_randomised: Option<f64>,
    /// ... whose head and last backbone stage are re-initialised.
    pub head_and_last_stage_randomised: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MethodSummary {
    pub method: String,
    pub all: Group,
    pub correct: Group,
    pub wrong: Group,
    pub per_class: BTreeMap<String, Group>,
    pub deletion_auc: Option<f64>,
    pub insertion_auc: Option<f64>,
    pub faithfulness_images: usize,
    pub sanity: Option<Sanity>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfusionPair {
    pub a: String,
    pub b: String,
    pub a_as_b: usize,
    pub b_as_a: usize,
    pub total: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExplainOutcome {
    pub model: String,
    pub layer: Option<String>,
    pub images: usize,
    pub accuracy: Option<f64>,
    pub methods: Vec<MethodSummary>,
    pub confusion_pairs: Vec<ConfusionPair>,
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

fn group(rows: &[&Row]) -> Group {
    let with_mask: Vec<&&Row> = rows.iter().filter(|r| r.energy_inside.is_some()).collect();
    Group {
        images: rows.len(),
        energy_inside: mean(with_mask.iter().filter_map(|r| r.energy_inside)),
        pointing: mean(with_mask.iter().filter_map(|r| r.pointing.map(|b| b as u8 as f64))),
        jaccard: mean(with_mask.iter().filter_map(|r| r.jaccard)),
        mask_area: mean(with_mask.iter().filter_map(|r| r.mask_area)),
        border_energy: mean(rows.iter().map(|r| r.border_energy)),
        max_in_border: mean(rows.iter().map(|r| r.max_in_border as u8 as f64)),
    }
}

/// A copy of `net` with the head (and, with `last_stage`, the last backbone stage) re-initialised
/// at random (seeded): Adebayo et al.'s cascading model randomisation, from the top.
pub fn randomised(net: &Classifier, meta: &ModelMeta, last_stage: bool, seed: u64) -> DifferentiableModel {
    let device = crate::device::inference_device();
    device.seed(seed);
    let fresh = meta.config.init(&device);
    let mut net = net.clone().fork(&device);
    net.head = fresh.head;
    if last_stage {
        if let (Some(dst), Some(src)) = (net.body_late.last_mut(), fresh.body_late.into_iter().last()) {
            *dst = src;
        }
    }
    DifferentiableModel::from_model(net, meta.clone())
}

fn safe(s: &str) -> String {
    s.replace('+', "p").chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect()
}

/// The images explained in one batch; progress is saved batch by batch, so a resumed run
/// explains the same batches as an uninterrupted one.
const CHUNK: usize = 16;

/// Per-batch progress of an explanation (`explain_progress.jsonl`, one line per finished batch).
pub const PROGRESS_FILE: &str = "explain_progress.jsonl";

#[derive(Serialize, Deserialize)]
struct ChunkProgress {
    chunk: usize,
    ids: Vec<String>,
    probs: Vec<Vec<f32>>,
    rows: Vec<Row>,
}

/// Where an explanation writes and whether it continues an interrupted one there: `key` is
/// what decides its results (models, images, settings), in the audits' resume-key format
/// (`audit_key.json`, written when the run starts). With `resume`, the finished batches of a run
/// with the same key are kept; a different key is refused.
pub struct ExplainRun<'a> {
    pub out: &'a Path,
    pub key: AuditKey,
    pub resume: bool,
    pub quiet: bool,
}

/// The finished batches in `run.out` to keep (empty unless resuming a run with the same key);
/// writes the key for a fresh run.
fn resume_progress(run: &ExplainRun, inputs: &[ExplainInput]) -> Result<Vec<ChunkProgress>> {
    let key_file = run.out.join(AUDIT_KEY_FILE);
    let progress_file = run.out.join(PROGRESS_FILE);
    if run.resume {
        match dermrobust_core::report::read_json::<AuditKey>(&key_file) {
            Ok(saved) if saved == run.key => {
                let text = std::fs::read_to_string(&progress_file).unwrap_or_default();
                let mut done = Vec::new();
                // A line cut short by an interruption ends what is kept.
                for line in text.lines() {
                    let Ok(p) = serde_json::from_str::<ChunkProgress>(line) else { break };
                    let start = done.len() * CHUNK;
                    let expected: Vec<&str> = inputs.iter().skip(start).take(CHUNK).map(|i| i.id.as_str()).collect();
                    if p.chunk != done.len() || p.ids.iter().map(String::as_str).ne(expected.iter().copied()) || p.rows.iter().any(|r| !run.out.join(&r.map).is_file()) {
                        break;
                    }
                    done.push(p);
                }
                if !run.quiet {
                    eprintln!("resuming {}: {} of {} images already explained", run.out.display(), (done.len() * CHUNK).min(inputs.len()), inputs.len());
                }
                return Ok(done);
            }
            Ok(saved) => anyhow::bail!(
                "cannot resume the explanation in {}: it was made with other {} (run without --resume to start again, or use another --out)",
                run.out.display(),
                saved.differences(&run.key).join(", ")
            ),
            Err(_) if run.out.join("explain.json").is_file() || progress_file.is_file() => anyhow::bail!(
                "cannot resume the explanation in {}: it has no readable {AUDIT_KEY_FILE} to check its settings against (run without --resume to start again)",
                run.out.display()
            ),
            Err(_) => {
                if !run.quiet {
                    eprintln!("nothing to resume in {}: starting", run.out.display());
                }
            }
        }
    }
    let _ = std::fs::remove_file(&progress_file);
    dermrobust_core::report::write_json(&key_file, &run.key)?;
    Ok(vec![])
}

/// Explain `inputs` with every method into `out`. `network`: the model's network and metadata
/// for the randomisation check (gradient models). Returns the outcome (also in `explain.json`).
#[allow(clippy::too_many_arguments)]
pub fn run_explain(
    model_name: &str,
    explainer: &Explainer,
    network: Option<(&Classifier, &ModelMeta)>,
    inputs: &[ExplainInput],
    records: &[RecordInput],
    settings: &ExplainSettings,
    run: &ExplainRun,
) -> Result<ExplainOutcome> {
    let (out, quiet) = (run.out, run.quiet);
    let classifier = explainer.classifier();
    let classes = classifier.classes().to_vec();
    let fixed_class = match &settings.target_class {
        Some(name) => Some(classes.iter().position(|c| c == name).with_context(|| format!("the model has no class '{name}' (classes: {})", classes.join(", ")))?),
        None => None,
    };
    std::fs::create_dir_all(out.join("maps")).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::create_dir_all(out.join("overlays"))?;
    let done = resume_progress(run, inputs)?;
    let bar = dermrobust_core::progress::bar(inputs.len() as u64, "explaining", quiet);
    let mut rows: Vec<Row> = Vec::new();
    // Per input: the probabilities. Images and maps are rebuilt and read back when needed, so
    // memory does not grow with the number of images.
    let mut seen: Vec<Vec<f32>> = Vec::new();
    for p in &done {
        rows.extend(p.rows.iter().cloned());
        seen.extend(p.probs.iter().cloned());
        bar.inc(p.ids.len() as u64);
    }
    let mut progress = std::fs::OpenOptions::new().create(true).append(true).open(out.join(PROGRESS_FILE)).with_context(|| format!("cannot write {}", out.join(PROGRESS_FILE).display()))?;
    for (b, chunk) in inputs.chunks(CHUNK).enumerate().skip(done.len()) {
        let images: Vec<Image> = chunk.iter().map(|inp| inp.image.clone()).collect();
        let masks: Vec<Option<Image>> = chunk.iter().map(|inp| inp.mask.clone()).collect();
        let mut ops = Vec::new();
        for inp in chunk {
            let op = inp.remedy.as_ref().and_then(|r| r.op.as_ref());
            let found_by = inp.remedy.as_ref().and_then(|r| r.lesion_found_by).map(|f| f.name()).unwrap_or("");
            ops.push((op.map(serde_json::to_string).transpose()?.unwrap_or_default(), found_by.to_string()));
        }
        let first_row = rows.len();
        let probs = classifier.predict(&images)?;
        let targets: Vec<usize> = chunk
            .iter()
            .zip(&probs)
            .map(|(inp, p)| match (fixed_class, settings.target, inp.label) {
                (Some(c), _, _) => c,
                (None, TargetChoice::True, Some(l)) => l,
                _ => argmax(p),
            })
            .collect();
        let maps_by_method = explain_many(explainer, &settings.methods, &images, &targets, &settings.method_settings)?;
        for (j, inp) in chunk.iter().enumerate() {
            let index = b * CHUNK + j;
            let pred = argmax(&probs[j]);
            for (mi, &m) in settings.methods.iter().enumerate() {
                let map = &maps_by_method[mi][j];
                let loc = masks[j].as_ref().and_then(|mask| localisation(map, mask));
                let border = border_attention(map);
                let (del, ins) = if index < settings.faithfulness_images {
                    let (d, i) = deletion_insertion(classifier, &images[j], map, targets[j], settings.steps)?;
                    (Some(d.area), Some(i.area))
                } else {
                    (None, None)
                };
                let stem = format!("{}_{}", safe(&inp.id), safe(m.name()));
                let map_file = format!("maps/{stem}.npy");
                write_npy(map, &out.join(&map_file))?;
                let truth = inp.label.map(|l| classes[l].clone()).unwrap_or_else(|| "unknown".into());
                // Enlarged so the caption (8-pixel glyphs) fits: the prediction and the truth are on the picture.
                let caption = [format!("pred {} {:.2}", classes[pred], probs[j][pred]), format!("true {truth}")];
                let png = encode_png(&with_caption(&enlarged(&overlay(&images[j], map), 128), &[&caption[0], &caption[1]]))?;
                atomic_write(&out.join(format!("overlays/{stem}_pred-{}_true-{}.png", safe(&classes[pred]), safe(&truth))), &png)?;
                rows.push(Row {
                    image_id: inp.id.clone(),
                    true_class: inp.label.map(|l| classes[l].clone()).unwrap_or_default(),
                    predicted_class: classes[pred].clone(),
                    p_predicted: probs[j][pred],
                    correct: inp.label.map(|l| l == pred),
                    target_class: classes[targets[j]].clone(),
                    method: m.name().to_string(),
                    op: ops[j].0.clone(),
                    lesion_found_by: ops[j].1.clone(),
                    energy_inside: loc.as_ref().map(|l| l.energy_inside),
                    pointing: loc.as_ref().map(|l| l.pointing),
                    jaccard: loc.as_ref().map(|l| l.jaccard),
                    mask_area: loc.as_ref().map(|l| l.mask_area),
                    border_energy: border.border_energy,
                    max_in_border: border.max_in_border,
                    deletion_auc: del,
                    insertion_auc: ins,
                    map: map_file,
                });
            }
            seen.push(probs[j].clone());
        }
        let line = serde_json::to_string(&ChunkProgress { chunk: b, ids: chunk.iter().map(|i| i.id.clone()).collect(), probs: probs.clone(), rows: rows[first_row..].to_vec() })?;
        {
            use std::io::Write;
            writeln!(progress, "{line}").and_then(|_| progress.flush()).with_context(|| format!("cannot write {}", out.join(PROGRESS_FILE).display()))?;
        }
        bar.inc(chunk.len() as u64);
    }
    drop(progress);
    bar.finish_and_clear();
    let nm = settings.methods.len();
    // The image as explained (capture remedy applied) and its mask.
    let explained = |i: usize| -> Result<(Image, Option<Image>)> { Ok((inputs[i].image.clone(), inputs[i].mask.clone())) };
    let map_of = |i: usize, mi: usize| read_npy(&out.join(&rows[i * nm + mi].map));

    // Sanity: the same maps from randomised models.
    let mut sanity: BTreeMap<String, Sanity> = BTreeMap::new();
    if let Some((net, meta)) = network {
        let n = settings.sanity_images.min(inputs.len());
        if n > 0 {
            let levels = [randomised(net, meta, false, settings.seed), randomised(net, meta, true, settings.seed)];
            let images: Vec<Image> = (0..n).map(|i| explained(i).map(|e| e.0)).collect::<Result<_>>()?;
            let own_maps: Vec<Vec<Image>> = (0..n).map(|i| (0..nm).map(|mi| map_of(i, mi)).collect::<Result<_>>()).collect::<Result<_>>()?;
            let targets: Vec<usize> = rows.iter().step_by(settings.methods.len()).take(n).map(|r| classes.iter().position(|c| *c == r.target_class).unwrap_or(0)).collect();
            let level_maps: Vec<Vec<Vec<Image>>> = levels.iter().map(|l| explain_many(&Explainer::Gradients(l), &settings.methods, &images, &targets, &settings.method_settings)).collect::<Result<_>>()?;
            for (mi, &m) in settings.methods.iter().enumerate() {
                let mut s = Sanity { images: n, ..Default::default() };
                for (li, level_map) in level_maps.iter().enumerate() {
                    let maps = &level_map[mi];
                    // Images whose own map is constant have no ranks and are left out; a
                    // constant map of the randomised model counts as correlation 0.
                    let r = mean(maps.iter().enumerate().filter_map(|(i, map)| {
                        let own = &own_maps[i][mi].data;
                        let constant = own.iter().all(|v| *v == own[0]);
                        (!constant).then(|| spearman(own, &map.data).unwrap_or(0.0))
                    }));
                    if li == 0 { s.head_randomised = r } else { s.head_and_last_stage_randomised = r }
                }
                sanity.insert(m.name().to_string(), s);
            }
        }
    }

    // Summaries.
    let mut methods = Vec::new();
    for &m in &settings.methods {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.method == m.name()).collect();
        let mut per_class = BTreeMap::new();
        for c in &classes {
            let of: Vec<&Row> = mine.iter().copied().filter(|r| &r.true_class == c).collect();
            if !of.is_empty() {
                per_class.insert(c.clone(), group(&of));
            }
        }
        let faithful: Vec<&&Row> = mine.iter().filter(|r| r.deletion_auc.is_some()).collect();
        methods.push(MethodSummary {
            method: m.name().to_string(),
            all: group(&mine),
            correct: group(&mine.iter().copied().filter(|r| r.correct == Some(true)).collect::<Vec<_>>()),
            wrong: group(&mine.iter().copied().filter(|r| r.correct == Some(false)).collect::<Vec<_>>()),
            per_class,
            deletion_auc: mean(faithful.iter().filter_map(|r| r.deletion_auc)),
            insertion_auc: mean(faithful.iter().filter_map(|r| r.insertion_auc)),
            faithfulness_images: faithful.len(),
            sanity: sanity.get(m.name()).cloned(),
        });
    }
    // Mishra's confused label pairs.
    let mut counts: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut errors: Vec<usize> = Vec::new();
    for (i, inp) in inputs.iter().enumerate() {
        if let Some(l) = inp.label {
            let p = argmax(&seen[i]);
            if p != l {
                *counts.entry((l, p)).or_default() += 1;
                errors.push(i);
            }
        }
    }
    let mut pairs: Vec<ConfusionPair> = Vec::new();
    for a in 0..classes.len() {
        for b in a + 1..classes.len() {
            let (ab, ba) = (counts.get(&(a, b)).copied().unwrap_or(0), counts.get(&(b, a)).copied().unwrap_or(0));
            if ab + ba > 0 {
                pairs.push(ConfusionPair { a: classes[a].clone(), b: classes[b].clone(), a_as_b: ab, b_as_a: ba, total: ab + ba });
            }
        }
    }
    pairs.sort_by(|x, y| y.total.cmp(&x.total).then(x.a.cmp(&y.a)));
    let labelled = inputs.iter().filter(|i| i.label.is_some()).count();
    let outcome = ExplainOutcome {
        model: model_name.to_string(),
        layer: match explainer {
            Explainer::Gradients(m) => settings.method_settings.layer_for(m).ok(),
            Explainer::BlackBox(_) => None,
        },
        images: inputs.len(),
        accuracy: (labelled > 0).then(|| 1.0 - errors.len() as f64 / labelled as f64),
        methods,
        confusion_pairs: pairs,
    };
    write_json(&out.join("explain.json"), &serde_json::json!({ "settings": settings, "outcome": &outcome }))?;
    write_csv(&out.join("explain_per_image.csv"), &rows)?;

    // Report.
    let mut report = HtmlReport::new(&format!("Where the model looks: {model_name}"));
    report.paragraph(&format!(
        "{} images; methods {}; maps explain the {} class{}{}. Localisation against lesion masks: energy inside = share of the map's sum inside the mask; pointing = the map's maximum lies in the mask; Jaccard = Yan et al.'s protocol (map re-normalised to [0, 1], binarised at 0.5); mask area = the chance level of the first two. Border: share of the map's sum in the outer {}% band of each side (its area share, {:.3}, is the chance level) and how often the maximum lies there. Pointing takes the first maximum in row order (a coarse map upsampled from 2 x 2 has its maximum on a plateau in one corner quadrant).",
        inputs.len(),
        settings.methods.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        match (&settings.target_class, settings.target) {
            (Some(c), _) => format!("'{c}'"),
            (None, TargetChoice::True) => "true".to_string(),
            (None, TargetChoice::Predicted) => "predicted".to_string(),
        },
        outcome.layer.as_ref().map(|l| format!(" (CAM layer {l})")).unwrap_or_default(),
        match &settings.capture {
            Some(r) => format!("; Mishra's capture remedy applied to every image when it was loaded: {} (per image in the op and lesion_found_by columns)", r.describe()),
            None => String::new(),
        },
        (super::metrics::BORDER * 100.0).round(),
        1.0 - (1.0 - 2.0 * super::metrics::BORDER as f64).powi(2),
    ));
    let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
    let header: Vec<String> = ["method", "group", "images", "energy inside", "pointing", "Jaccard", "mask area", "border energy", "max in border"].iter().map(|s| s.to_string()).collect();
    let mut table = Vec::new();
    for s in &outcome.methods {
        let mut add = |name: &str, g: &Group| {
            if g.images > 0 {
                table.push(vec![s.method.clone(), name.to_string(), g.images.to_string(), f(g.energy_inside), f(g.pointing), f(g.jaccard), f(g.mask_area), f(g.border_energy), f(g.max_in_border)]);
            }
        };
        add("all", &s.all);
        add("correct", &s.correct);
        add("wrong", &s.wrong);
        for (c, g) in &s.per_class {
            add(&format!("true {c}"), g);
        }
    }
    report.heading("Localisation").table(&header, &table);
    let header: Vec<String> = ["method", "deletion AUC (lower = more faithful)", "insertion AUC (higher)", "images", "Spearman vs head randomised", "vs head + last stage randomised"].iter().map(|s| s.to_string()).collect();
    let table: Vec<Vec<String>> = outcome
        .methods
        .iter()
        .map(|s| vec![s.method.clone(), f(s.deletion_auc), f(s.insertion_auc), s.faithfulness_images.to_string(), f(s.sanity.as_ref().and_then(|x| x.head_randomised)), f(s.sanity.as_ref().and_then(|x| x.head_and_last_stage_randomised))])
        .collect();
    report.heading("Faithfulness and sanity").paragraph(&format!(
        "Deletion: the target probability as the most salient pixels are set to black; insertion: as they are put onto a blurred copy ({} steps; Petsiuk et al. 2018). Sanity (Adebayo et al. 2018): Spearman rank correlation between each map and the map of the same model with its top re-initialised; a map that explains the model must change (correlation well below 1).",
        settings.steps
    ));
    report.table(&header, &table);

    let row_images = |i: usize, caption: String| -> Result<Vec<(Vec<u8>, String)>> {
        let (img, mask) = explained(i)?;
        let maps: Vec<Image> = (0..nm).map(|mi| map_of(i, mi)).collect::<Result<_>>()?;
        let shown = match &mask {
            Some(m) => with_outline(&img, m),
            None => img.clone(),
        };
        let mut v = vec![(encode_png(&enlarged(&shown, 128))?, caption)];
        for (m, map) in settings.methods.iter().zip(maps) {
            v.push((encode_png(&enlarged(&overlay(&img, &map), 128))?, format!("{m} (target {})", rows[i * nm].target_class)));
        }
        Ok(v)
    };
    let caption = |i: usize| {
        let p = &seen[i];
        let k = argmax(p);
        format!("{}: predicted {} ({:.2}), true {}", inputs[i].id, classes[k], p[k], inputs[i].label.map(|l| classes[l].as_str()).unwrap_or("unknown"))
    };
    report.heading("Examples");
    report.paragraph("The first explained images, whatever their prediction (image with the lesion mask's outline in green where there is one; then each method's map over the image).");
    for i in 0..inputs.len().min(settings.gallery.max(1)) {
        report.image_row(&row_images(i, caption(i))?);
    }
    if labelled > 0 {
        let mut confident = errors.clone();
        confident.sort_by(|&a, &b| {
            let pa = seen[a].iter().copied().fold(0f32, f32::max);
            let pb = seen[b].iter().copied().fold(0f32, f32::max);
            pb.total_cmp(&pa)
        });
        report.heading("Most confident errors");
        if confident.is_empty() {
            report.paragraph("No errors among the explained images.");
        }
        for &i in confident.iter().take(settings.gallery) {
            report.image_row(&row_images(i, caption(i))?);
        }
        report.heading("Most-confused label pairs (Mishra et al., Table 3)");
        let header: Vec<String> = ["label 1", "label 2", "1 predicted as 2", "2 predicted as 1", "total"].iter().map(|s| s.to_string()).collect();
        let table: Vec<Vec<String>> = outcome.confusion_pairs.iter().map(|p| vec![p.a.clone(), p.b.clone(), p.a_as_b.to_string(), p.b_as_a.to_string(), p.total.to_string()]).collect();
        if table.is_empty() {
            report.paragraph("No confusions among the explained images.");
        } else {
            report.table(&header, &table);
        }
        for pair in outcome.confusion_pairs.iter().take(3) {
            report.paragraph(&format!("{} / {}", pair.a, pair.b));
            let examples = errors.iter().copied().filter(|&i| {
                let (t, p) = (&classes[inputs[i].label.unwrap_or(0)], &classes[argmax(&seen[i])]);
                (t == &pair.a && p == &pair.b) || (t == &pair.b && p == &pair.a)
            });
            for i in examples.take(2.max(settings.gallery / 4)) {
                report.image_row(&row_images(i, caption(i))?);
            }
        }
    } else {
        for i in settings.gallery.max(1)..inputs.len().min(settings.gallery.max(1) * 4) {
            report.image_row(&row_images(i, caption(i))?);
        }
    }
    if !records.is_empty() {
        report.heading("Flips of earlier audits: maps before and after");
        report.paragraph(&format!("From {}: the records whose decision changed (brittleness) or whose attack succeeded (adversarial), under the audit's own decision rule, one per image, largest change (or initial confidence) first. Each row: the original image and its maps, then the perturbed image (rebuilt from the record's operation) and its maps; each map explains the most probable class for its image, and the captions give every class's probability.", job_sources(records)));
        for r in records {
            let perturbed = r.op.apply(&r.original)?;
            let pair = [r.original.clone(), perturbed];
            let probs = classifier.predict(&pair)?;
            let targets: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
            let mut row: Vec<(Vec<u8>, String)> = Vec::new();
            let all_maps = explain_many(explainer, &settings.methods, &pair, &targets, &settings.method_settings)?;
            for k in 0..2 {
                // The probabilities say how far a flip under the audit's decision rule (e.g.
                // `--decision balanced`) moved the model, which its most probable class may not show.
                let probs_text = probs[k].iter().zip(&classes).map(|(p, c)| format!("{c} {p:.2}")).collect::<Vec<_>>().join(", ");
                let label = if k == 0 { format!("{}: {} ({probs_text})", r.image_id, classes[targets[0]]) } else { format!("{}: {} ({probs_text})", r.op.label(), classes[targets[1]]) };
                row.push((encode_png(&enlarged(&pair[k], 128))?, label));
                for (mi, m) in settings.methods.iter().enumerate() {
                    row.push((encode_png(&enlarged(&overlay(&pair[k], &all_maps[mi][k]), 128))?, format!("{m}")));
                }
            }
            report.image_row(&row);
        }
    }
    report.write(&out.join("report.html"))?;
    Ok(outcome)
}

fn job_sources(records: &[RecordInput]) -> String {
    let mut v: Vec<&str> = records.iter().map(|r| r.source.as_str()).collect();
    v.dedup();
    v.join(", ")
}

/// Rows of an audit's per-image CSV whose recorded prediction differs from the original one
/// (`predicted_original` vs `predicted_transformed` / `predicted_perturbed`; an adversarial
/// record's `success`), largest `abs_change` (or initial confidence) first, one per image:
/// `(image_id, op)`, at most `max`.
pub fn flipped_records(csv_path: &PathBuf, max: usize) -> Result<Vec<(String, ImageOp)>> {
    let mut reader = csv::Reader::from_path(csv_path).with_context(|| format!("cannot open {}", csv_path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |n: &str| headers.iter().position(|h| h == n);
    let (id, op) = (col("image_id").context("no image_id column")?, col("op").context("no op column (not a per-image audit record)")?);
    let before = col("predicted_original");
    let after = col("predicted_transformed").or_else(|| col("predicted_perturbed"));
    // An adversarial record says whether its attack succeeded (under the audit's decision rule).
    let success = col("success");
    // Largest first: a brittleness record's absolute probability change, or an adversarial
    // record's original confidence.
    let change = col("abs_change").or_else(|| col("initial_confidence"));
    let mut found: Vec<(f64, String, ImageOp)> = Vec::new();
    for rec in reader.records() {
        let rec = rec?;
        let flipped = match (success, before, after) {
            (Some(s), _, _) => &rec[s] == "true",
            (None, Some(b), Some(a)) => rec[b] != rec[a],
            _ => true,
        };
        if flipped {
            let size = change.and_then(|c| rec[c].parse::<f64>().ok()).unwrap_or(0.0);
            found.push((size, rec[id].to_string(), serde_json::from_str(&rec[op]).with_context(|| format!("{}: bad op", csv_path.display()))?));
        }
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    // One record per image (its largest), so the gallery shows different images.
    let mut shown = std::collections::HashSet::new();
    Ok(found.into_iter().filter(|(_, i, _)| shown.insert(i.clone())).take(max).map(|(_, i, o)| (i, o)).collect())
}

/// Everything `dermrobust explain` was asked.
pub struct ExplainJob {
    pub models: Vec<PathBuf>,
    pub data: dermrobust_core::data::DataSpec,
    pub split: Option<PathBuf>,
    pub part: String,
    pub skip_bad: bool,
    pub max_images: Option<usize>,
    /// Image files to explain instead of a dataset.
    pub image_files: Vec<PathBuf>,
    /// Per-image CSVs of earlier audits whose flips to show.
    pub records: Vec<PathBuf>,
    /// Mishra's capture remedy: the model's recorded one by default.
    pub capture: CaptureChoice,
    pub settings: ExplainSettings,
    pub out: PathBuf,
    /// Continue an interrupted explanation in `out` (same models, images and settings).
    pub resume: bool,
}

/// The images of `part` of `data` read the way `info` says (the shared loader: preprocessing,
/// pixel cache, capture remedy), with their lesion masks.
fn load_inputs(job: &ExplainJob, model: &Path, info: &crate::evaluation::ModelInfo, quiet: bool) -> Result<(Vec<ExplainInput>, dermrobust_core::data::ImageSet, Vec<usize>)> {
    let split = crate::evaluation::split_for(model, job.split.as_deref());
    let (set, pool) = crate::evaluation::model_data_with_masks(info, &job.data, split.as_deref(), &job.part, job.skip_bad, quiet, true)?;
    let indices = crate::audits::subsample(&pool, job.max_images, 0);
    if !quiet {
        eprintln!("explaining {} images ({} with lesion masks)", indices.len(), indices.iter().filter(|&&i| set.mask(i).is_some()).count());
    }
    let inputs = indices
        .iter()
        .map(|&i| ExplainInput { id: set.ids[i].clone(), image: set.image(i), mask: set.mask(i), label: Some(set.labels[i]), remedy: set.remedy(i).cloned() })
        .collect();
    Ok((inputs, set, indices))
}

/// Run `dermrobust explain`: each model into `out` (or `out/model-K` for several).
pub fn run_job(job: &ExplainJob, quiet: bool) -> Result<Vec<ExplainOutcome>> {
    use crate::evaluation::{is_onnx, load_model};
    let needs_gradients = job.settings.methods.iter().any(|m| m.needs_gradients());
    let mut outcomes = Vec::new();
    for (k, model) in job.models.iter().enumerate() {
        let out = if job.models.len() > 1 { job.out.join(format!("model-{}", k + 1)) } else { job.out.clone() };
        let (classifier, info) = load_model(model)?;
        let info = info.with_capture(&job.capture);
        if needs_gradients && is_onnx(model) {
            anyhow::bail!("{}", crate::evaluation::gradients::no_gradients_message(model, "gradient explanations (--methods gradcam, ...)"));
        }
        let (inputs, set, images) = if job.image_files.is_empty() {
            let (i, s, idx) = load_inputs(job, model, &info, quiet)?;
            (i, Some(s), idx)
        } else {
            let mut v = Vec::new();
            for f in &job.image_files {
                let (image, remedy) = info.read_image(f)?;
                v.push(ExplainInput { id: f.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(), image, mask: None, label: None, remedy });
            }
            let n = v.len();
            (v, None, (0..n).collect())
        };
        let mut records = Vec::new();
        for csv_path in &job.records {
            for (id, op) in flipped_records(csv_path, job.settings.gallery)? {
                match set.as_ref().and_then(|s| s.position(&id).map(|i| (s, i))) {
                    Some((set, i)) => records.push(RecordInput { source: csv_path.display().to_string(), image_id: id, op, original: set.image(i) }),
                    None if !quiet => eprintln!("{}: image {id} is not in the explained data; skipped", csv_path.display()),
                    None => {}
                }
            }
        }
        let mut settings = job.settings.clone();
        settings.capture = info.capture.clone();
        let key = AuditKey {
            audit: "explain".to_string(),
            data: if job.image_files.is_empty() { job.data.to_string() } else { job.image_files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(",") },
            models: vec![fingerprint(model)?],
            subject: serde_json::json!({
                "split": if job.image_files.is_empty() { crate::evaluation::split_for(model, job.split.as_deref()) } else { None },
                "part": job.part,
                "records": job.records,
            }),
            settings: match serde_json::to_value(&settings)? {
                serde_json::Value::Object(m) => m,
                _ => unreachable!("settings are a struct"),
            },
            images: images.clone(),
            pool: set.as_ref().map(|s| s.len()).unwrap_or(images.len()),
        };
        let run = ExplainRun { out: &out, key, resume: job.resume, quiet };
        let name = model.display().to_string();
        let outcome = if is_onnx(model) {
            run_explain(&name, &Explainer::BlackBox(classifier.as_ref()), None, &inputs, &records, &settings, &run)?
        } else {
            let device = crate::device::inference_device();
            let (net, meta) = crate::models::checkpoint::load(&crate::models::run_dir::resolve_model_path(model), &device)?;
            let diff = DifferentiableModel::from_model(net.clone(), meta.clone());
            run_explain(&name, &Explainer::Gradients(&diff), Some((&net, &meta)), &inputs, &records, &settings, &run)?
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}
