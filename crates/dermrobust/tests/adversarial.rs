//! The adversarial audit: attacks on constructed classifiers whose answers are known, and the
//! command end to end with every recorded success replayed.

use std::process::Command;

use anyhow::Result;
use dermrobust::audits::adversarial::{Attack, AttackContext, EvolutionAttack, Fgsm, Goal, LossGradient, Norm, Pgd, Search, Victim};
use dermrobust::evaluation::ImageClassifier;
use dermrobust_core::imaging::Image;

const SIDE: usize = 8;

/// A linear softmax classifier on raw pixels: logits = W x + b, with its analytic cross-entropy
/// gradient W^T (softmax - onehot).
struct Linear {
    w: Vec<Vec<f32>>,
    b: Vec<f32>,
    classes: Vec<String>,
}

impl Linear {
    fn new() -> Self {
        let n = 3 * SIDE * SIDE;
        let w = (0..2).map(|k| (0..n).map(|i| (((i * 37 + k * 11) % 17) as f32 - 8.0) / 40.0).collect()).collect();
        Linear { w, b: vec![0.1, -0.1], classes: vec!["nv".into(), "mel".into()] }
    }
    fn probs(&self, x: &Image) -> Vec<f32> {
        let l: Vec<f32> = self.w.iter().zip(&self.b).map(|(w, b)| w.iter().zip(&x.data).map(|(a, v)| a * v).sum::<f32>() + b).collect();
        dermrobust::evaluation::classifier::softmax(&l)
    }
}

impl ImageClassifier for Linear {
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn input_size(&self) -> usize {
        SIDE
    }
    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        Ok(images.iter().map(|x| self.probs(x)).collect())
    }
    fn describe(&self) -> String {
        "linear".into()
    }
}

impl LossGradient for Linear {
    fn loss_gradient(&self, images: &[Image], labels: &[usize]) -> Result<Vec<Image>> {
        Ok(images
            .iter()
            .zip(labels)
            .map(|(x, &y)| {
                let p = self.probs(x);
                let data = (0..x.data.len()).map(|i| (0..2).map(|k| self.w[k][i] * (p[k] - f32::from(k == y))).sum()).collect();
                Image::new(3, SIDE, SIDE, data)
            })
            .collect())
    }
}

fn images(n: usize) -> Vec<Image> {
    (0..n).map(|k| Image::new(3, SIDE, SIDE, (0..3 * SIDE * SIDE).map(|i| 0.1 + 0.7 * (((i * 7 + k * 13) % 29) as f32 / 29.0)).collect())).collect()
}

fn ctx(dir: &std::path::Path, n: usize) -> AttackContext {
    AttackContext { delta_dir: dir.to_path_buf(), ids: (0..n).map(|i| format!("img{i}")).collect(), seed: 3 }
}

#[test]
fn fgsm_on_a_linear_model_is_the_analytic_sign_of_the_gradient() {
    let tmp = tempfile::tempdir().unwrap();
    let model = Linear::new();
    let xs = images(4);
    let goals: Vec<Goal> = xs.iter().map(|x| Goal::Untargeted(dermrobust::evaluation::argmax(&model.probs(x)))).collect();
    let victim = Victim { classifier: &model, gradients: Some(&model) };
    let eps = 0.03;
    let out = Fgsm { eps, norm: Norm::Linf }.run(&victim, &xs, &goals, &ctx(tmp.path(), 4)).unwrap();
    for (k, (x, o)) in xs.iter().zip(&out).enumerate() {
        let Goal::Untargeted(y) = goals[k] else { unreachable!() };
        let p = model.probs(x);
        let adv = o.op.apply(x).unwrap();
        for i in 0..x.data.len() {
            // d CE / d x_i for a linear model, by hand.
            let g: f32 = (0..2).map(|c| model.w[c][i] * (p[c] - f32::from(c == y))).sum();
            let want = (x.data[i] + eps * g.signum()).clamp(0.0, 1.0);
            assert!((adv.data[i] - want).abs() < 1e-6, "image {k} pixel {i}: {} vs {want}", adv.data[i]);
        }
        assert!(o.size.linf <= eps + 1e-6);
    }
    // Targeted: a step down the target's loss raises the target's probability.
    let targeted: Vec<Goal> = xs.iter().map(|x| Goal::Targeted(1 - dermrobust::evaluation::argmax(&model.probs(x)))).collect();
    let out = Fgsm { eps, norm: Norm::Linf }.run(&victim, &xs, &targeted, &ctx(tmp.path(), 4)).unwrap();
    for ((x, o), g) in xs.iter().zip(&out).zip(&targeted) {
        let Goal::Targeted(t) = *g else { unreachable!() };
        assert!(o.probabilities[t] > model.probs(x)[t]);
    }
}

#[test]
fn pgd_never_leaves_its_ball_or_the_valid_range() {
    let tmp = tempfile::tempdir().unwrap();
    let model = Linear::new();
    let xs = images(6);
    let goals: Vec<Goal> = xs.iter().map(|x| Goal::Untargeted(dermrobust::evaluation::argmax(&model.probs(x)))).collect();
    let victim = Victim { classifier: &model, gradients: Some(&model) };
    for norm in [Norm::Linf, Norm::L2] {
        let eps = if norm == Norm::Linf { 0.05 } else { 0.5 };
        let pgd = Pgd { eps, alpha: eps / 3.0, steps: 12, random_start: true, restarts: 2, norm };
        let out = pgd.run(&victim, &xs, &goals, &ctx(tmp.path(), 6)).unwrap();
        for (x, o) in xs.iter().zip(&out) {
            let adv = o.op.apply(x).unwrap();
            assert!(adv.data.iter().all(|v| (0.0..=1.0).contains(v)));
            let linf = adv.data.iter().zip(&x.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let l2 = adv.data.iter().zip(&x.data).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
            match norm {
                Norm::Linf => assert!(linf <= eps + 1e-6, "L∞ {linf} > {eps}"),
                Norm::L2 => assert!(l2 <= eps + 1e-4, "L2 {l2} > {eps}"),
            }
            assert!(o.queries >= 12);
        }
        // In L∞ the best perturbation of a linear model is FGSM's corner of the box, which PGD's
        // steps reach from any start: both end at the same probability.
        if norm == Norm::Linf {
            let fgsm = Fgsm { eps, norm }.run(&victim, &xs, &goals, &ctx(tmp.path(), 6)).unwrap();
            for (k, (p, f)) in out.iter().zip(&fgsm).enumerate() {
                let Goal::Untargeted(y) = goals[k] else { unreachable!() };
                assert!((p.probabilities[y] - f.probabilities[y]).abs() < 1e-4, "image {k}: PGD {} FGSM {}", p.probabilities[y], f.probabilities[y]);
            }
        }
    }
}

/// A classifier that answers the same whatever the image: no attack can succeed.
struct Constant;
impl ImageClassifier for Constant {
    fn classes(&self) -> &[String] {
        static C: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        C.get_or_init(|| vec!["nv".into(), "mel".into()])
    }
    fn input_size(&self) -> usize {
        SIDE
    }
    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        Ok(images.iter().map(|_| vec![0.3, 0.7]).collect())
    }
    fn describe(&self) -> String {
        "constant".into()
    }
}

/// A classifier that sees only grey levels after dividing each channel by its mean: blind to
/// any per-channel gain, so the colour-balance attack cannot succeed; it does see pixels and
/// geometry.
struct ColourBlind;
impl ImageClassifier for ColourBlind {
    fn classes(&self) -> &[String] {
        Constant.classes()
    }
    fn input_size(&self) -> usize {
        SIDE
    }
    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        Ok(images
            .iter()
            .map(|x| {
                let plane = SIDE * SIDE;
                let means: Vec<f32> = (0..3).map(|c| x.data[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32).collect();
                // Grey level of the top-left quarter, normalised per channel.
                let grey: f32 = (0..3).map(|c| (0..SIDE / 2).flat_map(|yy| (0..SIDE / 2).map(move |xx| (xx, yy))).map(|(xx, yy)| x.get(c, xx, yy) / means[c]).sum::<f32>()).sum::<f32>() / (3 * SIDE * SIDE / 4) as f32;
                let p = 1.0 / (1.0 + (-(grey - 1.0) * 40.0).exp());
                vec![1.0 - p, p]
            })
            .collect())
    }
    fn describe(&self) -> String {
        "colour-blind".into()
    }
}

#[test]
fn attacks_on_a_property_the_classifier_ignores_never_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let xs = images(4);
    let evolution = |search| EvolutionAttack { search, popsize: 10, max_generations: 10, max_queries: None, stop_confidence: 0.5 };
    let constant = Victim { classifier: &Constant, gradients: None };
    let goals = vec![Goal::Untargeted(1); 4];
    for search in [Search::Pixels { count: 3 }, Search::Colour { low: 0.9, high: 1.1 }, Search::Geometry { max_degrees: 360.0, max_shift: 0.2 }] {
        let out = evolution(search.clone()).run(&constant, &xs, &goals, &ctx(tmp.path(), 4)).unwrap();
        assert!(out.iter().all(|o| !o.success), "{search:?} fooled a constant classifier");
        assert!(out.iter().all(|o| o.queries > 0));
    }
    // The colour-blind classifier: every image's decision, and the colour attack fails on all.
    let blind = Victim { classifier: &ColourBlind, gradients: None };
    let p: Vec<Vec<f32>> = ColourBlind.predict(&xs).unwrap();
    let goals: Vec<Goal> = p.iter().map(|p| Goal::Untargeted(dermrobust::evaluation::argmax(p))).collect();
    let colour = evolution(Search::Colour { low: 0.9, high: 1.1 }).run(&blind, &xs, &goals, &ctx(tmp.path(), 4)).unwrap();
    assert!(colour.iter().all(|o| !o.success), "a gain-blind classifier was fooled by a gain");
    // ... while the same search over pixels does change its mind on some image: the check can fail.
    let pixels = EvolutionAttack { search: Search::Pixels { count: 8 }, popsize: 10, max_generations: 30, max_queries: None, stop_confidence: 0.5 }.run(&blind, &xs, &goals, &ctx(tmp.path(), 4)).unwrap();
    assert!(pixels.iter().any(|o| o.success), "the pixel attack never fooled the colour-blind classifier");
}

#[test]
fn gradient_attacks_on_a_model_without_gradients_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = Victim { classifier: &Constant, gradients: None };
    let e = Fgsm { eps: 0.01, norm: Norm::Linf }.run(&victim, &images(1), &[Goal::Untargeted(1)], &ctx(tmp.path(), 1)).unwrap_err().to_string();
    assert!(e.contains("differentiable") && e.contains("black-box"), "{e}");
}

fn dermrobust(args: &[&str], cache: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(args).env("DERMROBUST_CACHE", cache).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// The command on a small trained model: every recorded success replays to the recorded, flipped
/// decision; ONNX models refuse gradient attacks with the reason.
#[test]
fn every_recorded_success_replays_to_a_flipped_decision() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let data = "synthetic:n=160,seed=4,size=48";
    let (ok, _, err) = dermrobust(&["train", "--quiet", "--data", data, "--width", "0.125", "--image-size", "32", "--epochs", "3", "--batch-size", "16", "--out", run.to_str().unwrap()], &cache);
    assert!(ok, "{err}");
    let out = tmp.path().join("adv");
    let (ok, stdout, err) = dermrobust(
        &["audit", "adversarial", "--quiet", "--model", run.to_str().unwrap(), "--data", data, "--attack-images", "correct", "--attacks", "fgsm,pgd,colour,geometry", "--eps", "0.01,0.05", "--popsize", "5", "--generations", "4", "--sweep-offset", "10", "--sweep-offset-step", "10", "--sweep-angle-step", "90", "--out", out.to_str().unwrap()],
        &cache,
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("pgd linf eps=0.05"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("adversarial.json")).unwrap()).unwrap();
    let attacks = json["models"][0]["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 6);
    assert_eq!(json["models"][0]["sweeps"].as_array().unwrap().len(), 1 + 6 + 3);
    assert!(out.join("report.html").is_file());
    let csv_path = out.join("adversarial_per_image.csv");
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let successes: Vec<usize> = (0..rows.len()).filter(|&i| &rows[i][col("success")] == "true").collect();
    assert!(!successes.is_empty(), "no attack succeeded: the replay check would be empty");
    for &i in successes.iter().take(12) {
        let (ok, stdout, err) = dermrobust(&["replay", "--record", csv_path.to_str().unwrap(), "--row", &(i + 1).to_string(), "--data", data, "--model", run.to_str().unwrap(), "--json"], &cache);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let replayed = v["predicted_class"].as_str().unwrap();
        assert_eq!(replayed, &rows[i][col("predicted_perturbed")], "row {i} ({})", &rows[i][col("attack")]);
        assert_ne!(replayed, &rows[i][col("predicted_original")], "row {i}: a success that does not flip");
    }
    // Gradient attacks on an ONNX model are refused with the reason.
    let onnx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_resnet18.onnx");
    let (ok, _, err) = dermrobust(&["audit", "adversarial", "--quiet", "--model", onnx.to_str().unwrap(), "--data", data, "--part", "all", "--attacks", "fgsm", "--out", tmp.path().join("x").to_str().unwrap()], &cache);
    assert!(!ok && err.contains("ONNX") && err.contains("gradient"), "{err}");
}

/// Adversarial training's examples stay in their L∞ ball and in [0, 1], and raise the loss of the
/// model they were made against; a short adversarial training run works end to end.
#[test]
fn adversarial_training_examples_raise_the_loss_within_their_ball() {
    use burn::prelude::*;
    use dermrobust::models::{normalise, Arch, HeadKind, ModelConfig};
    use dermrobust::training::config::LossKind;
    use dermrobust::training::loss::Loss;
    let device = Device::flex().autodiff();
    device.seed(5);
    let config = ModelConfig { width: 0.125, head: HeadKind::Linear, ..ModelConfig::new(Arch::Resnet18, 2) };
    let model = config.init(&device);
    let loss = Loss { kind: LossKind::CrossEntropy, class_weights: None, label_smoothing: 0.0, focal_gamma: 0.0 };
    let n = 6;
    let pixels: Vec<f32> = (0..n * 3 * 32 * 32).map(|i| ((i * 7919) % 997) as f32 / 997.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [n, 3, 32, 32]), &device);
    let labels = vec![0, 1, 0, 1, 1, 0];
    let eps = 0.03;
    let adv = dermrobust::training::trainer::adversarial_batch(&model, &config, &loss, x.clone(), &labels, eps, 3);
    let a: Vec<f32> = adv.clone().inner().try_into_vec_as::<f32>().unwrap();
    for (v, o) in a.iter().zip(&pixels) {
        assert!((0.0..=1.0).contains(v) && (v - o).abs() <= eps + 1e-6);
    }
    let frozen = model.valid().fork(&device);
    let value = |t: Tensor<4>| loss.forward(frozen.forward(normalise(t, &config)), &labels).inner().into_scalar::<f32>();
    let (clean, attacked) = (value(x), value(adv));
    assert!(attacked > clean, "adversarial loss {attacked} not above clean {clean}");

    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("adv-train");
    let (ok, _, err) = dermrobust(&["train", "--quiet", "--data", "synthetic:n=60,seed=4,size=48", "--width", "0.125", "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--max-batches", "3", "--adversarial-eps", "0.01", "--out", run.to_str().unwrap()], &tmp.path().join("cache"));
    assert!(ok, "{err}");
    assert!(run.join("model/model.json").is_file());
    let (ok, _, err) = dermrobust(&["train", "--quiet", "--data", "synthetic:n=60,seed=4,size=48", "--adversarial-eps", "2", "--out", tmp.path().join("x").to_str().unwrap()], &tmp.path().join("cache"));
    assert!(!ok && err.contains("--adversarial-eps"), "{err}");
}

/// `experiment --audit adversarial` compares attack success before and after a remedy (colour
/// jitter) in one table, with the gradient attacks bound to each cell's own models.
#[test]
fn experiment_compares_attack_success_across_training_variants() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exp");
    let (ok, stdout, err) = dermrobust(
        &[
            "experiment", "--quiet", "--audit", "adversarial", "--data", "synthetic:n=120,seed=6,size=48", "--width", "0.125", "--image-size", "32",
            "--epochs", "2", "--batch-size", "16", "--variants", "baseline,jitter", "--no-tta", "--attacks", "fgsm,colour", "--eps", "0.02",
            "--popsize", "4", "--generations", "3", "--attack-images", "correct", "--no-sweeps", "--out", out.to_str().unwrap(),
        ],
        &tmp.path().join("cache"),
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("jitter"), "{stdout}");
    let mut reader = csv::Reader::from_path(out.join("experiment.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert!(headers.iter().any(|h| h == "success_rate_mean"), "{headers:?}");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let methods: std::collections::BTreeSet<String> = rows.iter().map(|r| r[1].to_string()).collect();
    assert_eq!(methods.into_iter().collect::<Vec<_>>(), vec!["baseline", "jitter"]);
    // Each cell's FGSM records point at that cell's own perturbation files.
    for cell in ["baseline", "jitter"] {
        let csv_path = out.join("audits/resnet18").join(cell).join("adversarial_per_image.csv");
        let text = std::fs::read_to_string(&csv_path).unwrap();
        if text.contains("add_delta") {
            assert!(text.contains(&format!("{cell}/perturbations")), "{cell}: {}", &text[..text.len().min(400)]);
        }
    }
    // An unknown variant or adversarial training without a budget are errors.
    let (ok, _, err) = dermrobust(&["experiment", "--quiet", "--audit", "adversarial", "--variants", "adv", "--out", tmp.path().join("y").to_str().unwrap()], &tmp.path().join("cache"));
    assert!(!ok && err.contains("--adversarial-eps"), "{err}");
}
