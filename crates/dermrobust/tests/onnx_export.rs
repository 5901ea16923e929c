//! `dermrobust export`: every architecture and head, with and without anti-aliasing, written as
//! ONNX and run by tract gives the dermrobust model's probabilities (through `OnnxModel`, the way
//! every command loads an ONNX file) and logits (at a symbolic batch size); and the command line
//! round trip `export` then `predict` matches `predict` on the model itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use burn::prelude::*;
use dermrobust::evaluation::onnx::OnnxModel;
use dermrobust::evaluation::{ImageClassifier, TrainedModel};
use dermrobust::models::checkpoint::{self, ModelMeta};
use dermrobust::models::onnx_export::export_onnx;
use dermrobust::models::input::images_to_tensor;
use dermrobust::models::{normalise, Arch, Classifier, HeadKind, ModelConfig};
use dermrobust_core::data::{LabelScheme, Preprocess};
use dermrobust_core::imaging::Image;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;

mod common;
use common::{images, Jitter};

const CLASSES: usize = 3;

fn input(n: usize, size: usize, device: &Device) -> burn::tensor::Tensor<4> {
    let v: Vec<f32> = (0..n * 3 * size * size).map(|i| ((i * 37 % 101) as f32) / 101.0).collect();
    burn::tensor::Tensor::from_data(TensorData::new(v, [n, 3, size, size]), device)
}

/// A model with trained-looking batch norms: running statistics from training-mode passes (as
/// tests/models.rs does, repeated until they are close to the batch statistics, so activations
/// keep their scale through the network and the outputs depend clearly on the image), then every
/// scale, shift and statistic jittered.
fn randomised(model: Classifier, config: &ModelConfig, size: usize, seed: u64) -> Classifier {
    let ad = Device::flex().autodiff();
    let m = model.map(&mut common::Reinit::new(seed)).fork(&ad);
    let x = normalise(images_to_tensor(&images(6, size, seed + 1000), &ad), config);
    for _ in 0..40 {
        let _ = m.forward(x.clone());
    }
    m.valid().map(&mut Jitter::new(seed, 2.0))
}

fn meta(config: ModelConfig, classes: Vec<String>, size: usize, centre_crop: Option<f32>, label_scheme: LabelScheme) -> ModelMeta {
    ModelMeta { config, classes, label_scheme, preprocess: Preprocess { size, centre_crop }, capture: None }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Logits of the ONNX file run by tract at a symbolic batch (no input fact given), for a batch of `n`.
fn tract_logits(onnx: &Path, x: Vec<f32>, n: usize, size: usize) -> Vec<f32> {
    let model = tract_onnx::onnx().model_for_path(onnx).unwrap();
    let fact = model.input_fact(0).unwrap().clone();
    assert!(format!("{fact:?}").contains("batch"), "the batch dimension is symbolic: {fact:?}");
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let input: tract_onnx::prelude::Tensor = tract_ndarray::Array4::from_shape_vec((n, 3, size, size), x).unwrap().into();
    let out = plan.run(tvec!(input.into())).unwrap();
    assert_eq!(out[0].shape(), &[n, CLASSES]);
    out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
}

/// Save a randomised model, export it (batch norms folded, as `dermrobust export` does, and
/// unfolded), and compare: probabilities through `OnnxModel` against `TrainedModel`, and logits
/// through tract at a symbolic batch against the model. Returns a line for the report.
fn check_export(arch: Arch, anti_alias: bool, head: HeadKind, size: usize, seed: u64, dir: &Path) -> String {
    let device = Device::flex();
    // Seeded initialisation: the same weights on every run, so the strength check below is
    // deterministic.
    device.seed(seed);
    let what = format!("{arch} aa={anti_alias} {head:?} {size}px");
    let classes: Vec<String> = ["akiec", "bcc", "mel"].map(String::from).to_vec();
    let config = ModelConfig { width: 0.125, anti_alias, head, mean: [0.6, 0.5, 0.4], std: [0.2, 0.25, 0.3], ..ModelConfig::new(arch, CLASSES) };
    let meta = meta(config.clone(), classes.clone(), size, None, LabelScheme::Native);
    let model = randomised(config.init(&device), &config, size, seed);
    checkpoint::save(&dir.join("model"), model, &meta).unwrap();

    // As `dermrobust export` does: the inference model, batch norms folded.
    let (loaded, loaded_meta) = checkpoint::load(&dir.join("model"), &dermrobust::device::inference_device()).unwrap();
    let folded_onnx = dir.join("folded.onnx");
    export_onnx(&loaded.clone().valid().fold_batch_norm(), &loaded_meta, &folded_onnx).unwrap();
    assert!(dir.join("folded.toml").is_file(), "{what}: no sidecar");
    let ours = TrainedModel::load(&dir.join("model")).unwrap();
    let theirs = OnnxModel::load(&folded_onnx).unwrap();
    assert_eq!(theirs.classes(), &classes[..]);
    assert_eq!(theirs.input_size(), size);
    assert_eq!(theirs.sidecar.mean, config.mean);
    assert_eq!(theirs.sidecar.std, config.std);
    let probe = images(5, size, 11);
    let p = ours.predict(&probe).unwrap().concat();
    let q = theirs.predict(&probe).unwrap().concat();
    let prob_diff = max_abs_diff(&p, &q);
    assert!(prob_diff < 1e-4, "{what}: probabilities {p:?} vs ONNX {q:?}");
    // The probabilities depend clearly on the image (a wrong layer would show).
    let spread = (0..CLASSES)
        .map(|k| {
            let col = p.iter().skip(k).step_by(CLASSES);
            col.clone().fold(f32::MIN, |m, &v| m.max(v)) - col.fold(f32::MAX, |m, &v| m.min(v))
        })
        .fold(0f32, f32::max);
    assert!(spread > 1e-2, "{what}: probabilities hardly vary between images, the check is weak: {p:?}");

    // Unfolded (BatchNormalization nodes), at a symbolic batch, compared in logits.
    let unfolded_onnx = dir.join("unfolded.onnx");
    let plain = loaded.valid();
    export_onnx(&plain, &loaded_meta, &unfolded_onnx).unwrap();
    let x = normalise(input(3, size, &device), &config);
    let want: Vec<f32> = plain.forward(x.clone()).try_into_vec_as::<f32>().unwrap();
    let got = tract_logits(&unfolded_onnx, x.try_into_vec_as::<f32>().unwrap(), 3, size);
    let logit_diff = max_abs_diff(&want, &got);
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    assert!(logit_diff < 1e-4 * scale, "{what}: logits {want:?} vs ONNX {got:?}");
    format!("{what:<42} max |dp| {prob_diff:.2e}  max |dlogit| {logit_diff:.2e} (largest |logit| {scale:.2}, probability spread {spread:.3})")
}

/// At 64 pixels every backbone ends in a 2x2 map (so max and average pooling differ and the
/// order of fastai's concatenated pooling matters) and every blur-pool reflects.
#[test]
fn every_architecture_and_head_exports_to_onnx_with_the_same_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    let mut seed = 0;
    for arch in Arch::ALL {
        for anti_alias in [false, true] {
            for head in [HeadKind::Fastai, HeadKind::Linear] {
                seed += 1;
                let dir = tmp.path().join(format!("{arch}-{anti_alias}-{head:?}"));
                report.push(check_export(arch, anti_alias, head, 64, seed, &dir));
            }
        }
    }
    println!("{}", report.join("\n"));
}

/// At 32 pixels the last blur-pools of anti-aliased models see maps of 2 or 1 pixels, where
/// they pad by repeating the edge instead of reflecting; and the backbones end in 1x1 maps.
#[test]
fn anti_aliased_models_on_tiny_maps_export_with_edge_padding() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (i, arch) in [Arch::Resnet18, Arch::Resnet50, Arch::Vgg16Gap, Arch::Densenet121].into_iter().enumerate() {
        let dir = tmp.path().join(arch.name());
        report.push(check_export(arch, true, HeadKind::Fastai, 32, 100 + i as u64, &dir));
    }
    println!("{}", report.join("\n"));
}

fn dermrobust(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[derive(serde::Deserialize)]
struct Prediction {
    predicted_class: String,
    probabilities: BTreeMap<String, f32>,
}

fn predict(model: &Path, image: &Path) -> Vec<Prediction> {
    let (ok, out, err) = dermrobust(&["predict", "--json", "--model", model.to_str().unwrap(), image.to_str().unwrap()]);
    assert!(ok, "predict --model {}: {err}", model.display());
    serde_json::from_str(&out).unwrap()
}

#[test]
fn export_then_predict_on_the_onnx_file_matches_the_model() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let size = 48;
    let config = ModelConfig { width: 0.125, anti_alias: true, ..ModelConfig::new(Arch::Resnet18, 2) };
    let meta = meta(config.clone(), vec!["nv".into(), "mel".into()], size, Some(0.8), LabelScheme::MelVsNevus);
    let model_dir = tmp.path().join("run").join("model");
    checkpoint::save(&model_dir, randomised(config.init(&device), &config, size, 99), &meta).unwrap();
    // A photograph that is not square and not at the model's size: both sides crop and resize it.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let photo = Image::new(3, 70, 60, (0..3 * 70 * 60).map(|_| rng.random::<f32>()).collect());
    let image = tmp.path().join("photo.png");
    dermrobust_core::imaging::io::write_png(&photo, &image).unwrap();

    let onnx = tmp.path().join("exports").join("r18.onnx");
    // A run folder names its best model.
    let (ok, out, err) = dermrobust(&["export", "--model", tmp.path().join("run").to_str().unwrap(), "--onnx", onnx.to_str().unwrap()]);
    assert!(ok, "export failed: {err}");
    assert!(out.contains("check:"), "{out}");
    let sidecar = std::fs::read_to_string(onnx.with_extension("toml")).unwrap();
    assert!(sidecar.contains("labels = \"mel-vs-nevus\"") && sidecar.contains("resize = \"centre-crop\"") && sidecar.contains("centre_crop = 0.8"), "{sidecar}");

    let want = predict(&model_dir, &image);
    let got = predict(&onnx, &image);
    assert_eq!(want[0].predicted_class, got[0].predicted_class);
    for (class, p) in &want[0].probabilities {
        assert!((p - got[0].probabilities[class]).abs() < 1e-4, "{class}: {p} vs ONNX {}", got[0].probabilities[class]);
    }

    let (ok, _, err) = dermrobust(&["export", "--model", model_dir.to_str().unwrap(), "--onnx", tmp.path().join("r18.bin").to_str().unwrap()]);
    assert!(!ok && err.contains(".onnx") && !err.contains("panicked"), "{err}");
    let (ok, _, err) = dermrobust(&["export", "--model", tmp.path().join("nothing").to_str().unwrap(), "--onnx", onnx.to_str().unwrap()]);
    assert!(!ok && err.contains("model") && !err.contains("panicked"), "{err}");
    let (ok, out, _) = dermrobust(&["export", "--help"]);
    assert!(ok && out.contains("--onnx") && out.contains("sidecar"), "{out}");
}
