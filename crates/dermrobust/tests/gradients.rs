//! The differentiable classifier against PyTorch: input gradients (of a class score and of the
//! cross-entropy loss, normalisation inside the graph), layer4 activations and their gradients,
//! and the Grad-CAM map built from them, for the tiny torchvision ResNet-18 fixture. Reference
//! values: `tools/reference/make_gradient_fixture.py` (PyTorch 2.15, pytorch-grad-cam 1.5.7).

use burn::prelude::*;
use dermrobust::evaluation::gradients::{DifferentiableClassifier, DifferentiableModel, GradTarget};
use dermrobust::evaluation::ImageClassifier;
use dermrobust::models::checkpoint::{self, ModelMeta};
use dermrobust::models::{Arch, HeadKind, ModelConfig};
use dermrobust_core::data::{LabelScheme, Preprocess};
use dermrobust_core::imaging::Image;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    mean: [f32; 3],
    std: [f32; 3],
    target_classes: Vec<usize>,
    loss_labels: Vec<usize>,
    input: Vec<f32>,
    logits: Vec<f32>,
    input_gradient: Vec<f32>,
    loss_input_gradient: Vec<f32>,
    layer4_activations: Vec<f32>,
    layer4_gradients: Vec<f32>,
    gradcam_layer4: Vec<f32>,
    gradcam_upsampled: Vec<f32>,
}

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> Reference {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny_resnet18_gradients.json")).unwrap()).unwrap()
}

/// The fixture's network as a differentiable dermrobust model (normalisation inside).
fn model(r: &Reference) -> DifferentiableModel {
    let config = ModelConfig { width: 0.125, head: HeadKind::Linear, mean: r.mean, std: r.std, ..ModelConfig::new(Arch::Resnet18, 3) };
    let (net, report) = checkpoint::import_torchvision(config.init(&Device::flex()), Arch::Resnet18, &fixtures().join("tiny_resnet18.safetensors")).unwrap();
    assert!(report.missing.is_empty(), "missing {:?}", report.missing);
    let meta = ModelMeta { config, classes: vec!["akiec".into(), "bcc".into(), "mel".into()], label_scheme: LabelScheme::Native, preprocess: Preprocess { size: 64, centre_crop: None }, capture: None };
    DifferentiableModel::from_model(net, meta)
}

fn images(r: &Reference) -> Vec<Image> {
    r.input.chunks(3 * 64 * 64).map(|c| Image::new(3, 64, 64, c.to_vec())).collect()
}

/// Largest absolute difference, relative to the largest reference magnitude.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: {} values vs {}", got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
    assert!(worst <= tol * scale, "{what}: max |difference| {worst:e} > {tol:e} x {scale:e}");
}

#[test]
fn logits_and_input_gradients_match_pytorch() {
    let r = reference();
    let m = model(&r);
    let x = images(&r);
    let logits: Vec<f32> = m.logits(&x).unwrap().concat();
    assert_close("logits", &logits, &r.logits, 1e-4);
    let g = m.input_gradient(&x, &GradTarget::ClassScore(r.target_classes.clone())).unwrap();
    let flat: Vec<f32> = g.gradients.iter().flat_map(|i| i.data.iter().copied()).collect();
    assert_close("d logit / d pixel", &flat, &r.input_gradient, 1e-4);
    // The gradient is not trivially zero: the reference has real structure.
    assert!(r.input_gradient.iter().any(|v| v.abs() > 1e-4));
    let g = m.input_gradient(&x, &GradTarget::Loss(r.loss_labels.clone())).unwrap();
    let flat: Vec<f32> = g.gradients.iter().flat_map(|i| i.data.iter().copied()).collect();
    assert_close("d cross-entropy / d pixel", &flat, &r.loss_input_gradient, 1e-4);
    // The loss values are the cross-entropies of the logits.
    for (i, &label) in r.loss_labels.iter().enumerate() {
        let l = &logits[i * 3..i * 3 + 3];
        let lse = l.iter().map(|v| v.exp()).sum::<f32>().ln();
        assert!((g.values[i] - (lse - l[label])).abs() < 1e-4);
    }
    // Probabilities agree with the logits.
    let p = m.predict(&x).unwrap();
    assert!((p[0].iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn layer4_activations_gradients_and_gradcam_match_pytorch() {
    let r = reference();
    let m = model(&r);
    assert_eq!(m.layer_names(), ["stem", "layer1", "layer2", "layer3", "layer4"]);
    let cap = m.layer_gradient(&images(&r), "layer4", &GradTarget::ClassScore(r.target_classes.clone())).unwrap();
    assert_eq!(cap.shape, [2, 64, 2, 2]);
    assert_close("layer4 activations", &cap.activations, &r.layer4_activations, 1e-4);
    assert_close("layer4 gradients", &cap.gradients, &r.layer4_gradients, 1e-4);
    // Grad-CAM: channel weights = spatial mean of the gradients; map = ReLU(sum_k w_k A_k).
    let [n, c, h, w] = cap.shape;
    let mut cam = vec![0f32; n * h * w];
    for i in 0..n {
        for k in 0..c {
            let base = (i * c + k) * h * w;
            let weight = cap.gradients[base..base + h * w].iter().sum::<f32>() / (h * w) as f32;
            for p in 0..h * w {
                cam[i * h * w + p] += weight * cap.activations[base + p];
            }
        }
    }
    cam.iter_mut().for_each(|v| *v = v.max(0.0));
    assert_close("Grad-CAM at layer4", &cam, &r.gradcam_layer4, 1e-4);
    // pytorch-grad-cam's output: min-max scaled, bilinearly upsampled (half-pixel centres),
    // scaled again.
    let scale = |v: &mut [f32]| {
        let min = v.iter().copied().fold(f32::MAX, f32::min);
        let max = v.iter().map(|x| x - min).fold(0f32, f32::max);
        v.iter_mut().for_each(|x| *x = (*x - min) / (1e-7 + max));
    };
    let mut up = Vec::new();
    for i in 0..n {
        let mut map = cam[i * h * w..(i + 1) * h * w].to_vec();
        scale(&mut map);
        let mut big = Image::new(1, w, h, map).resized(64, 64).data;
        scale(&mut big);
        up.extend(big);
    }
    assert_close("Grad-CAM upsampled", &up, &r.gradcam_upsampled, 1e-4);
}

#[test]
fn bad_targets_and_layers_are_errors() {
    let r = reference();
    let m = model(&r);
    let x = images(&r);
    assert!(m.input_gradient(&x, &GradTarget::ClassScore(vec![0])).is_err(), "one target for two images");
    assert!(m.input_gradient(&x, &GradTarget::ClassScore(vec![0, 7])).is_err(), "class 7 of 3");
    let e = m.layer_gradient(&x, "layer9", &GradTarget::ClassScore(vec![0, 0])).unwrap_err().to_string();
    assert!(e.contains("layer9") && e.contains("layer4"), "{e}");
    let small = vec![Image::filled(3, 32, 32, 0.5)];
    assert!(m.logits(&small).is_err());
}

/// An ONNX model cannot give gradients, and says so.
#[test]
fn an_onnx_model_says_it_has_no_gradients() {
    let e = DifferentiableModel::load(&fixtures().join("tiny_resnet18.onnx")).err().expect("an error").to_string();
    assert!(e.contains("ONNX") && e.contains("gradient"), "{e}");
}

/// An ensemble's gradients are those of what it predicts: the mean of its members' logits for a
/// class score, and the cross-entropy of the mean of their probabilities for the loss. Checked
/// against finite differences of the ensemble's own prediction, and, for two copies of one
/// network, against that network's gradient.
#[test]
fn ensemble_gradients_are_the_gradients_of_the_ensemble_prediction() {
    let r = reference();
    let single = model(&r);
    let x = images(&r);
    let net = |seed: u64| {
        let config = ModelConfig { width: 0.125, head: HeadKind::Linear, mean: r.mean, std: r.std, ..ModelConfig::new(Arch::Resnet18, 3) };
        let device = Device::flex();
        device.seed(seed);
        let net = config.init(&device);
        let meta = ModelMeta { config, classes: vec!["akiec".into(), "bcc".into(), "mel".into()], label_scheme: LabelScheme::Native, preprocess: Preprocess { size: 64, centre_crop: None }, capture: None };
        (net, meta)
    };
    let (fixture_net, fixture_meta) = {
        let config = ModelConfig { width: 0.125, head: HeadKind::Linear, mean: r.mean, std: r.std, ..ModelConfig::new(Arch::Resnet18, 3) };
        let (n, _) = checkpoint::import_torchvision(config.init(&Device::flex()), Arch::Resnet18, &fixtures().join("tiny_resnet18.safetensors")).unwrap();
        (n, net(0).1)
    };
    // Two copies of one network: the ensemble's gradients are the network's.
    let twice = DifferentiableModel::from_models(vec![(fixture_net.clone(), fixture_meta.clone()), (fixture_net.clone(), fixture_meta.clone())]).unwrap();
    for target in [GradTarget::ClassScore(r.target_classes.clone()), GradTarget::Loss(r.loss_labels.clone())] {
        let a: Vec<f32> = single.input_gradient(&x, &target).unwrap().gradients.iter().flat_map(|i| i.data.clone()).collect();
        let b: Vec<f32> = twice.input_gradient(&x, &target).unwrap().gradients.iter().flat_map(|i| i.data.clone()).collect();
        assert_close(&format!("{target:?}"), &b, &a, 1e-4);
    }
    // Two different networks: the loss gradient is that of -log(mean probability), checked by
    // a central finite difference along the gradient's own direction.
    let pair = DifferentiableModel::from_models(vec![(fixture_net, fixture_meta), net(11)]).unwrap();
    let labels = r.loss_labels.clone();
    let g = pair.input_gradient(&x[..1], &GradTarget::Loss(labels[..1].to_vec())).unwrap();
    let dir = &g.gradients[0];
    let norm = dir.data.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!(norm > 0.0);
    let loss = |t: f32| {
        let moved = Image::new(3, 64, 64, x[0].data.iter().zip(&dir.data).map(|(p, d)| p + t * d / norm).collect());
        -(pair.predict(&[moved]).unwrap()[0][labels[0]] as f64).ln()
    };
    let h = 2e-3;
    let numeric = (loss(h) - loss(-h)) / (2.0 * h as f64);
    assert!((numeric - norm as f64).abs() < 0.05 * norm as f64, "directional derivative {numeric} vs gradient norm {norm}");
    assert!(pair.layer_gradient(&x, "layer4", &GradTarget::ClassScore(vec![0, 0])).is_err(), "layers of an ensemble are not defined");
}
