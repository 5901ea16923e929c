//! Mishra et al.'s capture remedies (gamma correction, field-of-view reduction) wherever images
//! are loaded, and `explain --resume`:
//! - evaluating with a remedy gives the predictions of the same model on images remedied
//!   beforehand and saved as files (gamma, FOV from the masks, FOV by Otsu);
//! - training, audits, prediction and explanations give the same remedied pixels;
//! - a model records its remedy and evaluation applies it by default (overridable);
//! - the FOV crop keeps the lesion's bounding box in view; Otsu is the stated fallback;
//! - bad options are refused with the option named;
//! - an interrupted explanation resumes to the same files as an uninterrupted one, and a resume
//!   with other settings is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use dermrobust::audits::explain::run::{run_job, ExplainJob, ExplainSettings, TargetChoice, PROGRESS_FILE};
use dermrobust::audits::explain::{Method, MethodSettings};
use dermrobust::audits::AuditSubject;
use dermrobust::evaluation::{evaluate_model, load_model, model_data, CaptureArgs, CaptureChoice, DecisionRule, ModelCaptureArgs};
use dermrobust::models::checkpoint::{self, ModelMeta};
use dermrobust::models::{Arch, ModelConfig};
use dermrobust::training::TrainConfig;
use dermrobust_core::data::{DataSpec, ImageSet, LabelScheme, Preprocess};
use dermrobust_core::imaging::remedy::{fov_op, CaptureRemedy, FovSource, LesionFoundBy};
use dermrobust_core::imaging::Image;

const DATA: &str = "synthetic:n=24,seed=3,size=64";

fn data() -> DataSpec {
    DATA.parse().unwrap()
}

/// The synthetic data's classes (the order the model's outputs follow).
fn classes() -> Vec<String> {
    let ds = dermrobust_core::data::Dataset::open(&data(), LabelScheme::Native).unwrap();
    ds.classes.clone()
}

/// A seeded random ResNet-18 x0.125 at 64 px, saved in `dir` with `capture` recorded.
fn save_model(dir: &Path, capture: Option<CaptureRemedy>) -> PathBuf {
    let device = Device::flex();
    device.seed(5);
    let classes = classes();
    let config = ModelConfig { width: 0.125, ..ModelConfig::new(Arch::Resnet18, classes.len()) };
    let meta = ModelMeta { config: config.clone(), classes, label_scheme: LabelScheme::Native, preprocess: Preprocess { size: 64, centre_crop: None }, capture };
    checkpoint::save(dir, config.init(&device), &meta).unwrap();
    dir.to_path_buf()
}

/// The data's images without any remedy, read the model's way.
fn plain_set(model: &Path) -> ImageSet {
    let (_, info) = load_model(model).unwrap();
    let info = info.with_capture(&CaptureChoice::Off);
    dermrobust::evaluation::model_data_with_masks(&info, &data(), None, "all", false, true, true).unwrap().0
}

/// `remedy` applied by hand to image `i` of `set`, as 8-bit pixels.
fn by_hand(set: &ImageSet, i: usize, remedy: &CaptureRemedy) -> Vec<u8> {
    remedy.apply(&set.image(i), set.mask(i).as_ref()).unwrap().0.to_planar_u8()
}

fn predictions(csv: &Path, strip: &str) -> HashMap<String, Vec<f64>> {
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let headers = reader.headers().unwrap().clone();
    let first_p = headers.iter().position(|h| h == "predicted_class").unwrap() + 1;
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].trim_end_matches(strip).to_string(), (first_p..r.len()).map(|k| r[k].parse().unwrap()).collect())
        })
        .collect()
}

fn max_diff(a: &HashMap<String, Vec<f64>>, b: &HashMap<String, Vec<f64>>) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().map(|(id, p)| p.iter().zip(&b[id]).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)).fold(0.0, f64::max)
}

#[test]
fn evaluate_with_a_remedy_equals_predictions_on_images_remedied_beforehand() {
    let tmp = tempfile::tempdir().unwrap();
    let model = save_model(&tmp.path().join("model"), None);
    let set = plain_set(&model);
    assert!(set.has_masks(), "the synthetic data has lesion masks");
    let eval = |data: &DataSpec, capture: &CaptureChoice, out: &str| {
        evaluate_model(&model, data, None, "all", None, capture, false, 1, &tmp.path().join(out), true).unwrap();
        tmp.path().join(out).join("predictions.csv")
    };
    let plain = predictions(&eval(&data(), &CaptureChoice::Recorded, "plain"), "");
    let remedies = [
        ("gamma", CaptureRemedy { gamma: Some(1.3), ..Default::default() }),
        ("fov-mask", CaptureRemedy { fov: Some(FovSource::Mask), gamma: Some(1.5), ..Default::default() }),
        ("fov-auto", CaptureRemedy { fov: Some(FovSource::Auto), ..Default::default() }),
    ];
    for (name, remedy) in remedies {
        // The images remedied beforehand, as PNG files of a manifest (no masks: the remedy is done).
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut manifest = String::from("path,label,group\n");
        for i in 0..set.len() {
            let img = Image::from_planar_u8(3, 64, 64, &by_hand(&set, i, &remedy));
            dermrobust_core::imaging::io::write_png(&img, &dir.join(format!("{}.png", set.ids[i]))).unwrap();
            manifest += &format!("{}.png,{},{}\n", set.ids[i], set.classes[set.labels[i]], set.groups[i]);
        }
        std::fs::write(dir.join("manifest.csv"), manifest).unwrap();
        let files: DataSpec = format!("manifest:{}", dir.join("manifest.csv").display()).parse().unwrap();
        let beforehand = predictions(&eval(&files, &CaptureChoice::Recorded, &format!("{name}-files")), ".png");
        let with_option = predictions(&eval(&data(), &CaptureChoice::Use(remedy.clone()), &format!("{name}-option")), "");
        let d = max_diff(&beforehand, &with_option);
        assert!(d < 1e-5, "{name}: evaluate with the remedy differs from the images remedied beforehand by {d}");
        // The remedy changes what the model sees (so the equality above says something).
        assert!(max_diff(&plain, &with_option) > 1e-6, "{name}: the remedy changed no prediction");
    }
}

#[test]
fn a_model_records_its_remedy_and_every_path_applies_it_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    let plain_model = save_model(&tmp.path().join("plain"), None);
    let remedy = CaptureRemedy { gamma: Some(1.3), fov: Some(FovSource::Mask), ..Default::default() };
    // The same weights with the remedy recorded (a second seeded initialisation is not enough: the
    // backend's generator is shared with the tests running beside this one).
    let remedied_model = tmp.path().join("remedied");
    let (weights, mut meta) = checkpoint::load(&plain_model, &Device::flex()).unwrap();
    meta.capture = Some(remedy.clone());
    checkpoint::save(&remedied_model, weights, &meta).unwrap();
    let set = plain_set(&plain_model);

    // Evaluation applies the recorded remedy by default; --no-capture-remedy turns it off.
    let eval = |model: &Path, capture: &CaptureChoice, out: &str| {
        evaluate_model(model, &data(), None, "all", None, capture, false, 1, &tmp.path().join(out), true).unwrap();
        predictions(&tmp.path().join(out).join("predictions.csv"), "")
    };
    let recorded = eval(&remedied_model, &CaptureChoice::Recorded, "recorded");
    let given = eval(&plain_model, &CaptureChoice::Use(remedy.clone()), "given");
    assert!(max_diff(&recorded, &given) < 1e-7);
    let off = eval(&remedied_model, &CaptureChoice::Off, "off");
    let plain = eval(&plain_model, &CaptureChoice::Recorded, "plain");
    assert!(max_diff(&off, &plain) < 1e-7);
    assert!(max_diff(&off, &recorded) > 1e-6);

    // Audits: the prepared images are the remedied ones, with the remedy recorded per image.
    let subject = AuditSubject {
        models: vec![remedied_model.clone()],
        ensemble: false,
        tta: None,
        data: data(),
        split: None,
        part: "all".into(),
        decision: DecisionRule::Argmax,
        max_images: None,
        skip_bad: false,
        capture: CaptureChoice::Recorded,
    };
    let prepared = subject.prepare(true).unwrap();
    for i in 0..set.len() {
        assert_eq!(prepared.set.pixels(i), &by_hand(&set, i, &remedy)[..], "audit image {}", set.ids[i]);
        let applied = prepared.set.remedy(i).unwrap();
        assert_eq!(applied.lesion_found_by, Some(LesionFoundBy::Mask));
        // The recorded operation rebuilds the image from the original (replayable).
        let rebuilt = applied.op.as_ref().unwrap().apply(&set.image(i)).unwrap().to_planar_u8();
        assert_eq!(rebuilt, by_hand(&set, i, &remedy));
    }
    assert!(subject.key().get("capture").is_none(), "a recorded remedy is part of the model, not of the key");
    let overridden = AuditSubject { capture: CaptureChoice::Off, ..subject.clone() };
    assert!(overridden.key().get("capture").is_some());

    // Training: the same pixels, and the model records the remedy.
    let cfg = TrainConfig { data: data(), capture: CaptureArgs { gamma: Some(1.3), fov: Some(FovSource::Mask), ..Default::default() }, ..Default::default() };
    let train = dermrobust::training::prepare_data(&cfg, &tmp.path().join("run"), true).unwrap();
    for i in 0..set.len() {
        let j = train.set.position(&set.ids[i]).unwrap();
        assert_eq!(train.set.pixels(j), &by_hand(&set, i, &remedy)[..], "training image {}", set.ids[i]);
    }
    assert_eq!(dermrobust::training::trainer::model_meta(&cfg, &train).capture, Some(remedy.clone()));

    // Prediction of a file: no mask, so the FOV finds the lesion by Otsu, as it says.
    let file = tmp.path().join("one.png");
    dermrobust_core::imaging::io::write_png(&set.image(0), &file).unwrap();
    let (_, info) = load_model(&remedied_model).unwrap();
    let (img, applied) = info.read_image(&file).unwrap();
    assert_eq!(applied.unwrap().lesion_found_by, Some(LesionFoundBy::Otsu));
    let otsu = remedy.apply(&set.image(0), None).unwrap().0.to_planar_u8();
    assert_eq!(img.to_planar_u8(), otsu);

    // Model data without masks asked for still loads them for --fov mask.
    let (_, info) = load_model(&remedied_model).unwrap();
    let (loaded, _) = model_data(&info, &data(), None, "all", false, true).unwrap();
    assert_eq!(loaded.remedy(0).unwrap().lesion_found_by, Some(LesionFoundBy::Mask));
}

#[test]
fn an_exported_model_carries_its_remedy_in_the_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let remedy = CaptureRemedy { gamma: Some(1.3), fov: Some(FovSource::Auto), ..Default::default() };
    let model = save_model(&tmp.path().join("model"), Some(remedy.clone()));
    let (net, meta) = checkpoint::load(&model, &dermrobust::device::inference_device()).unwrap();
    let onnx = tmp.path().join("net.onnx");
    dermrobust::models::onnx_export::export_onnx(&net.valid().fold_batch_norm(), &meta, &onnx).unwrap();
    let sidecar = std::fs::read_to_string(tmp.path().join("net.toml")).unwrap();
    assert!(sidecar.contains("[capture]") && sidecar.contains("gamma = 1.3"), "{sidecar}");
    let (_, info) = load_model(&onnx).unwrap();
    assert_eq!(info.capture, Some(remedy.clone()));
    // Both forms of the model evaluate the same remedied images.
    let eval = |m: &Path, out: &str| {
        evaluate_model(m, &data(), None, "all", None, &CaptureChoice::Recorded, false, 1, &tmp.path().join(out), true).unwrap();
        predictions(&tmp.path().join(out).join("predictions.csv"), "")
    };
    let d = max_diff(&eval(&model, "burn"), &eval(&onnx, "onnx"));
    assert!(d < 1e-4, "the ONNX form differs by {d}");
}

#[test]
fn the_fov_crop_keeps_the_lesion_box_in_view() {
    let w = 64;
    // Lesions of many sizes and places, borders and corners included.
    let boxes = [(40, 8, 52, 20), (0, 0, 10, 10), (50, 50, 63, 63), (5, 20, 60, 40), (0, 0, 63, 63), (30, 2, 33, 61), (20, 20, 22, 22)];
    for (x0, y0, x1, y1) in boxes {
        let mut mask = Image::filled(1, w, w, 0.0);
        for y in y0..=y1 {
            for x in x0..=x1 {
                mask.set(0, x, y, 1.0);
            }
        }
        for margin in [1.0, 1.25, 2.0] {
            let op = fov_op(&mask, margin, 3.0).unwrap();
            let moved = op.apply_mask(&mask).unwrap();
            let zoom = match &op {
                dermrobust_core::imaging::ImageOp::Warp { ops, .. } => match ops[1] {
                    dermrobust_core::imaging::ImageOp::Zoom { factor, .. } => factor,
                    _ => panic!("zoom expected"),
                },
                _ => panic!("warp expected"),
            };
            let before = mask.data.iter().filter(|v| **v > 0.5).count() as f32;
            let after = moved.data.iter().filter(|v| **v > 0.5).count() as f32;
            // Nothing of the lesion is cut off: its area grows by the zoom squared.
            let expected = before * zoom * zoom;
            assert!((after - expected).abs() <= 0.06 * expected + 4.0 * (x1 - x0 + y1 - y0 + 2) as f32 * zoom, "box {:?} margin {margin}: area {after}, expected {expected}", (x0, y0, x1, y1));
            // With a margin above 1 and a lesion smaller than the image, the box stays clear of
            // the border.
            let full = x1 - x0 + 1 == w || y1 - y0 + 1 == w;
            if margin > 1.0 && !full && zoom < 3.0 {
                let on_border = (0..w).any(|k| moved.get(0, k, 0) > 0.5 || moved.get(0, k, w - 1) > 0.5 || moved.get(0, 0, k) > 0.5 || moved.get(0, w - 1, k) > 0.5);
                assert!(!on_border, "box {:?} margin {margin}: the lesion touches the border after the crop", (x0, y0, x1, y1));
            }
        }
    }
    assert!(fov_op(&Image::filled(1, w, w, 0.0), 1.25, 3.0).is_none(), "no lesion, no crop");
}

#[test]
fn otsu_is_the_stated_fallback_without_a_mask() {
    let mut items = Vec::new();
    let blob = |cx: f32, cy: f32| {
        let mut img = Image::filled(3, 64, 64, 0.8);
        let mut mask = Image::filled(1, 64, 64, 0.0);
        for y in 0..64 {
            for x in 0..64 {
                if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < 64.0 {
                    (0..3).for_each(|c| img.set(c, x, y, 0.2));
                    mask.set(0, x, y, 1.0);
                }
            }
        }
        (img, mask)
    };
    let (a, ma) = blob(20.0, 40.0);
    let (b, _) = blob(44.0, 20.0);
    let (c, _) = blob(30.0, 30.0);
    items.push(("with-mask".to_string(), "g1".to_string(), 0, a, Some(ma)));
    items.push(("no-mask".to_string(), "g2".to_string(), 0, b, None));
    items.push(("empty-mask".to_string(), "g3".to_string(), 0, c, Some(Image::filled(1, 64, 64, 0.0))));
    let mut set = ImageSet::from_images(vec!["x".into()], items).unwrap();
    let remedy = CaptureRemedy { fov: Some(FovSource::Mask), ..Default::default() };
    assert_eq!(set.apply_capture_remedy(&remedy).unwrap(), (1, 2), "(by mask, by Otsu)");
    assert_eq!(set.remedy(0).unwrap().lesion_found_by, Some(LesionFoundBy::Mask));
    assert_eq!(set.remedy(1).unwrap().lesion_found_by, Some(LesionFoundBy::Otsu));
    assert_eq!(set.remedy(2).unwrap().lesion_found_by, Some(LesionFoundBy::Otsu));
    // Otsu found the dark blob: after the crop it sits in the centre.
    let img = set.image(1);
    assert!(img.get(0, 32, 32) < 0.4, "the lesion found by Otsu is not centred");
    assert!(set.apply_capture_remedy(&remedy).unwrap_err().to_string().contains("already applied"));
    assert!(CaptureRemedy { fov: Some(FovSource::Auto), ..Default::default() }.describe().contains("Otsu"));
}

#[test]
fn bad_capture_options_are_refused_with_the_option_named() {
    let args = |gamma: Option<f32>, fov: Option<FovSource>, fov_margin: f32| CaptureArgs { gamma, fov, fov_margin };
    for (a, flag) in [
        (args(Some(0.0), None, 1.25), "--gamma"),
        (args(Some(f32::NAN), None, 1.25), "--gamma"),
        (args(Some(-1.3), None, 1.25), "--gamma"),
        (args(None, Some(FovSource::Mask), 0.5), "--fov-margin"),
        (args(None, None, 2.0), "--fov-margin"),
    ] {
        let err = a.remedy().unwrap_err().to_string();
        assert!(err.contains(flag), "{a:?}: {err}");
    }
    let both = ModelCaptureArgs { capture: args(Some(1.3), None, 1.25), no_capture_remedy: true };
    assert!(both.choice().unwrap_err().to_string().contains("--no-capture-remedy"));
    assert_eq!(ModelCaptureArgs::default().choice().unwrap(), CaptureChoice::Recorded);
    let cfg = TrainConfig { capture: args(Some(-2.0), None, 1.25), ..Default::default() };
    assert!(cfg.validate().unwrap_err().to_string().contains("--gamma"));
    // The command line: a clear error, before anything is loaded.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(["evaluate", "--model", "nowhere", "--gamma", "0", "--out", "nowhere"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--gamma must be a positive number"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(["predict", "--model", "nowhere", "--fov", "lesion", "x.png"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("mask or auto"));
    // A TOML configuration takes the options by the same names.
    let mut cfg = TrainConfig::default();
    cfg.capture.gamma = Some(1.4);
    cfg.capture.fov = Some(FovSource::Auto);
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("gamma = 1.4") && text.contains("fov = \"auto\""), "{text}");
    let back: TrainConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);
}

// ---------------------------------------------------------------------------------------------
// explain --resume

fn explain_job(model: &Path, out: PathBuf, capture: CaptureChoice) -> ExplainJob {
    ExplainJob {
        models: vec![model.to_path_buf()],
        data: "synthetic:n=40,seed=8,size=64".parse().unwrap(),
        split: None,
        part: "all".into(),
        skip_bad: false,
        max_images: Some(40),
        image_files: vec![],
        records: vec![],
        capture,
        settings: ExplainSettings {
            methods: vec!["gradcam".parse::<Method>().unwrap(), "guided-backprop".parse().unwrap()],
            target: TargetChoice::Predicted,
            target_class: None,
            method_settings: MethodSettings::default(),
            capture: None,
            faithfulness_images: 20,
            steps: 4,
            sanity_images: 3,
            gallery: 2,
            seed: 1,
        },
        out,
        resume: false,
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn an_interrupted_explanation_resumes_to_the_same_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = save_model(&tmp.path().join("model"), None);
    let remedy = CaptureChoice::Use(CaptureRemedy { gamma: Some(1.3), fov: Some(FovSource::Mask), ..Default::default() });
    let whole = tmp.path().join("whole");
    run_job(&explain_job(&model, whole.clone(), remedy.clone()), true).unwrap();
    let lines = read(&whole.join(PROGRESS_FILE)).lines().count();
    assert_eq!(lines, 3, "40 images in batches of 16");
    // The remedy is recorded per image, with where the lesion was found.
    let csv = read(&whole.join("explain_per_image.csv"));
    assert!(csv.lines().skip(1).all(|l| l.contains("gamma") && l.contains(",mask,")), "{}", csv.lines().nth(1).unwrap());

    // An interruption after the first batch (a half-written second line included).
    let part = tmp.path().join("part");
    run_job(&explain_job(&model, part.clone(), remedy.clone()), true).unwrap();
    let progress = read(&part.join(PROGRESS_FILE));
    let first = progress.lines().next().unwrap();
    let second = progress.lines().nth(1).unwrap();
    std::fs::write(part.join(PROGRESS_FILE), format!("{first}\n{}", &second[..second.len() / 2])).unwrap();
    for f in ["explain.json", "explain_per_image.csv", "report.html"] {
        std::fs::remove_file(part.join(f)).unwrap();
    }
    let mut resumed = explain_job(&model, part.clone(), remedy.clone());
    resumed.resume = true;
    run_job(&resumed, true).unwrap();
    for f in ["explain.json", "explain_per_image.csv"] {
        assert_eq!(read(&part.join(f)), read(&whole.join(f)), "{f} of the resumed run differs");
    }
    assert_eq!(read(&part.join(PROGRESS_FILE)).lines().count(), 3);

    // The finished batches are kept, not recomputed: a mark put into the kept batch survives.
    let marked = tmp.path().join("marked");
    run_job(&explain_job(&model, marked.clone(), remedy.clone()), true).unwrap();
    let progress = read(&marked.join(PROGRESS_FILE));
    let mut first: serde_json::Value = serde_json::from_str(progress.lines().next().unwrap()).unwrap();
    first["rows"][0]["border_energy"] = serde_json::json!(0.123456);
    std::fs::write(marked.join(PROGRESS_FILE), format!("{first}\n")).unwrap();
    let mut again = explain_job(&model, marked.clone(), remedy.clone());
    again.resume = true;
    run_job(&again, true).unwrap();
    assert!(read(&marked.join("explain_per_image.csv")).contains("0.123456"), "the first batch was recomputed");

    // Other settings, or another remedy, are refused with what differs.
    let mut other = explain_job(&model, part.clone(), remedy.clone());
    other.resume = true;
    other.settings.steps = 8;
    let err = run_job(&other, true).unwrap_err().to_string();
    assert!(err.contains("cannot resume") && err.contains("steps"), "{err}");
    let mut other = explain_job(&model, part.clone(), CaptureChoice::Recorded);
    other.resume = true;
    let err = run_job(&other, true).unwrap_err().to_string();
    assert!(err.contains("cannot resume") && err.contains("capture"), "{err}");
    // Without --resume the folder is started again.
    let mut fresh = explain_job(&model, part.clone(), CaptureChoice::Recorded);
    fresh.max_images = Some(5);
    run_job(&fresh, true).unwrap();
    assert_eq!(read(&part.join(PROGRESS_FILE)).lines().count(), 1);
}

/// Models trained with different remedies are audited together only when an option sets one
/// remedy for all: the check compares the remedies as the options resolve them.
#[test]
fn models_with_different_remedies_are_reconciled_by_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let gamma = CaptureRemedy { gamma: Some(1.3), ..Default::default() };
    let models = vec![save_model(&dir.path().join("plain"), None), save_model(&dir.path().join("gamma"), Some(gamma.clone()))];
    let load = |choice: &CaptureChoice| dermrobust::evaluation::load_classifiers(&models, false, None, choice).map(|(_, info)| info.capture);
    let e = format!("{:#}", load(&CaptureChoice::Recorded).unwrap_err());
    assert!(e.contains("gamma") && e.contains("--no-capture-remedy"), "{e}");
    assert_eq!(load(&CaptureChoice::Off).unwrap(), None);
    let fov = CaptureRemedy { fov: Some(FovSource::Auto), ..Default::default() };
    assert_eq!(load(&CaptureChoice::Use(fov.clone())).unwrap(), Some(fov));
    // One model alone keeps its recorded remedy.
    let single = dermrobust::evaluation::load_classifiers(&models[1..], false, None, &CaptureChoice::Recorded).unwrap().1;
    assert_eq!(single.capture, Some(gamma));
}
