//! The training losses against PyTorch (`tools/reference/make_loss_fixture.py`, PyTorch 2.15):
//! cross-entropy with class weights and label smoothing (PyTorch's conventions), focal loss, and
//! the gradient of the cross-entropy.

use burn::prelude::*;
use dermrobust::training::config::LossKind;
use dermrobust::training::loss::Loss;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    logits: Vec<f32>,
    labels: Vec<usize>,
    weights: Vec<f32>,
    label_smoothing: f64,
    cross_entropy: f32,
    cross_entropy_weighted: f32,
    cross_entropy_smoothed: f32,
    cross_entropy_weighted_smoothed: f32,
    focal_gamma2: f32,
    focal_gamma2_weighted: f32,
    cross_entropy_grad: Vec<f32>,
}

fn reference() -> Reference {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loss_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn value(loss: &Loss, r: &Reference, device: &Device) -> f32 {
    let logits = Tensor::<2>::from_data(TensorData::new(r.logits.clone(), [r.labels.len(), 4]), device);
    loss.forward(logits, &r.labels).into_scalar::<f32>()
}

fn loss(kind: LossKind, weights: Option<Vec<f32>>, smoothing: f64) -> Loss {
    Loss { kind, class_weights: weights, label_smoothing: smoothing, focal_gamma: 2.0 }
}

#[test]
fn losses_match_pytorch() {
    let r = reference();
    let d = Device::flex();
    let w = Some(r.weights.clone());
    let eps = r.label_smoothing;
    let cases = [
        ("cross-entropy", loss(LossKind::CrossEntropy, None, 0.0), r.cross_entropy),
        ("weighted cross-entropy", loss(LossKind::CrossEntropy, w.clone(), 0.0), r.cross_entropy_weighted),
        ("smoothed cross-entropy", loss(LossKind::CrossEntropy, None, eps), r.cross_entropy_smoothed),
        ("weighted smoothed cross-entropy", loss(LossKind::CrossEntropy, w.clone(), eps), r.cross_entropy_weighted_smoothed),
        ("focal loss", loss(LossKind::Focal, None, 0.0), r.focal_gamma2),
    ];
    for (what, l, want) in cases {
        let got = value(&l, &r, &d);
        assert!((got - want).abs() < 1e-5 * (1.0 + want.abs()), "{what}: {got} vs PyTorch {want}");
    }
    // Weighted focal loss: the reference is the plain mean of w_y * focal_i; dermrobust divides by
    // the summed weights of the true classes, as PyTorch's weighted cross-entropy does.
    let weight_sum: f32 = r.labels.iter().map(|&l| r.weights[l]).sum();
    let want = r.focal_gamma2_weighted * r.labels.len() as f32 / weight_sum;
    let got = value(&loss(LossKind::Focal, w, 0.0), &r, &d);
    assert!((got - want).abs() < 1e-5 * (1.0 + want.abs()), "weighted focal: {got} vs {want}");
}

#[test]
fn cross_entropy_gradient_matches_pytorch() {
    let r = reference();
    let d = Device::flex().autodiff();
    let logits = Tensor::<2>::from_data(TensorData::new(r.logits.clone(), [r.labels.len(), 4]), &d).require_grad();
    let grads = loss(LossKind::CrossEntropy, None, 0.0).forward(logits.clone(), &r.labels).backward();
    let g: Vec<f32> = logits.grad(&grads).unwrap().try_into_vec_as::<f32>().unwrap();
    for (a, b) in g.iter().zip(&r.cross_entropy_grad) {
        assert!((a - b).abs() < 1e-6, "{g:?} vs {:?}", r.cross_entropy_grad);
    }
}
