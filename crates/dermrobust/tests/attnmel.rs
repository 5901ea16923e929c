//! AttnMel-CNN (Yan et al. 2019): the model against the authors' PyTorch code, its attention maps,
//! the Dice regularisation, and that mask-regularised training moves attention onto the lesions.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use dermrobust::audits::explain::attention::{attention_maps, AttentionLayer};
use dermrobust::audits::explain::metrics::localisation;
use dermrobust::evaluation::gradients::DifferentiableModel;
use dermrobust::models::attnmel::{MAP_POOL3, MAP_POOL4};
use dermrobust::models::checkpoint::{self, ModelMeta};
use dermrobust::models::{Arch, HeadKind, ModelConfig, ModelOutput};
use dermrobust::training::attention::{config_terms, dice_loss, resize_masks, AttentionDice};
use dermrobust::training::config::{AugmentPreset, LossKind, ScheduleKind};
use dermrobust::training::loss::{BatchTargets, Loss, LossTerm};
use dermrobust::training::{prepare_data_with_masks, train_one, TrainConfig};
use dermrobust_core::data::{LabelScheme, Preprocess};
use dermrobust_core::imaging::Image;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

fn floats(v: &serde_json::Value, key: &str) -> Vec<f32> {
    v[key].as_array().unwrap_or_else(|| panic!("no {key}")).iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, e)) in got.iter().zip(want).enumerate() {
        assert!((g - e).abs() <= tol * (1.0 + e.abs()), "{what}[{i}]: {g} vs PyTorch {e}");
    }
}

fn map<'a>(out: &'a ModelOutput, name: &str) -> &'a Tensor<4> {
    &out.maps.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no map {name}")).1
}

/// The authors' `AttnVGG` (their `AttentionBlock` and `forward`, sigmoid attention) at 1/8 width
/// with random weights (`tools/reference/make_attnmel_fixture.py`), imported under its own
/// parameter names: the same logits and both attention maps as PyTorch.
#[test]
fn authors_attnvgg_imports_with_pytorch_logits_and_attention_maps() {
    let e: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny_attnmel_expected.json")).unwrap()).unwrap();
    let device = Device::flex();
    let x = Tensor::<4>::from_data(TensorData::new(floats(&e, "input"), [2, 3, 64, 64]), &device);
    let cfg = ModelConfig { width: 0.125, head: HeadKind::Linear, ..ModelConfig::new(Arch::Attnmel, 2) };
    let (model, report) = checkpoint::import_torchvision(cfg.init(&device), Arch::Attnmel, &fixtures().join("tiny_attnmel.safetensors")).unwrap();
    assert!(report.missing.is_empty(), "not imported: {:?}", report.missing);
    assert!(report.unused.is_empty(), "unused: {:?}", report.unused);
    let model = model.valid();
    let out = model.forward_output(x.clone());
    assert_eq!(map(&out, MAP_POOL3).dims(), [2, 1, 8, 8]);
    assert_eq!(map(&out, MAP_POOL4).dims(), [2, 1, 4, 4]);
    assert_close("attention pool-3", &values(map(&out, MAP_POOL3).clone()), &floats(&e, "a1"), 1e-4);
    assert_close("attention pool-4", &values(map(&out, MAP_POOL4).clone()), &floats(&e, "a2"), 1e-4);
    assert_close("logits", &values(out.logits), &floats(&e, "logits"), 1e-4);
    assert_close("forward", &values(model.forward(x)), &floats(&e, "logits"), 1e-4);
}

/// torchvision's `vgg16_bn` (the fixture of `make_torchvision_fixture.py`) imports into the
/// AttnMel backbone with PyTorch's feature map; only the attention modules and the classifier
/// stay new.
#[test]
fn torchvision_vgg16_bn_imports_into_the_attnmel_backbone() {
    let e: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny_vgg16_bn_expected.json")).unwrap()).unwrap();
    let device = Device::flex();
    let shape: Vec<usize> = e["input_shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let x = Tensor::<4>::from_data(TensorData::new(floats(&e, "input"), [shape[0], shape[1], shape[2], shape[3]]), &device);
    let cfg = ModelConfig { width: 0.125, head: HeadKind::Linear, ..ModelConfig::new(Arch::Attnmel, 2) };
    let (model, report) = checkpoint::import_torchvision(cfg.init(&device), Arch::Attnmel, &fixtures().join("tiny_vgg16_bn.safetensors")).unwrap();
    assert!(!report.missing.is_empty() && report.missing.iter().all(|m| m.contains("head.")), "missing: {:?}", report.missing);
    assert!(report.missing.iter().any(|m| m.contains("attention")), "the attention modules should be new: {:?}", report.missing);
    assert_close("vgg16_bn features in attnmel", &values(model.features(x)), &floats(&e, "features"), 1e-4);
}

/// Attention maps are `[N, 1, h, w]` at pool-3 (1/8) and pool-4 (1/16) of the input, in [0, 1],
/// also for sizes where pool-5 is not a power-of-two fraction, and with anti-aliasing; the logits
/// of `forward`, `forward_output` and the split at every stage (for layer gradients) agree.
#[test]
fn attention_maps_are_in_unit_range_with_pool_shapes() {
    let device = Device::flex();
    for (size, anti_alias) in [(64, false), (96, false), (64, true)] {
        device.seed(7);
        let cfg = ModelConfig { width: 0.125, anti_alias, head: HeadKind::Linear, ..ModelConfig::new(Arch::Attnmel, 3) };
        let model = cfg.init(&device).valid();
        let v: Vec<f32> = (0..2 * 3 * size * size).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v.clone(), [2, 3, size, size]), &device);
        let out = model.forward_output(x.clone());
        assert_eq!(out.logits.dims(), [2, 3]);
        assert_eq!(map(&out, MAP_POOL3).dims(), [2, 1, size / 8, size / 8], "size {size}");
        assert_eq!(map(&out, MAP_POOL4).dims(), [2, 1, size / 16, size / 16], "size {size}");
        for name in [MAP_POOL3, MAP_POOL4] {
            let a = values(map(&out, name).clone());
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)), "{name} outside [0, 1]");
            assert!(a.iter().any(|v| (v - a[0]).abs() > 1e-6), "{name} is constant");
        }
        let logits = values(out.logits);
        assert_close("forward", &values(model.forward(x.clone())), &logits, 1e-5);
        // The split for layer gradients (on the autodiff device, as gradients.rs uses it).
        let ad = dermrobust::device::autodiff_device();
        let model = model.fork(&ad).freeze();
        let x = Tensor::<4>::from_data(TensorData::new(v, [2, 3, size, size]), &ad);
        for stage in 0..5 {
            let (leaf, l) = model.forward_split(x.clone(), stage);
            assert_close(&format!("split at stage {stage}"), &values(l.clone()), &logits, 1e-5);
            let g = leaf.grad(&l.sum().backward()).expect("the split layer gets a gradient");
            assert!(values(g).iter().any(|v| *v != 0.0), "stage {stage}: zero gradient");
        }
    }
}

fn tensor4(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v, shape), &Device::flex())
}

/// Dice over the whole batch, `1 - 2 Σ(a·m) / Σ(a + m)`, with masks average-pooled to the map's
/// size, against a value computed by hand; images without masks are left out.
#[test]
fn dice_term_matches_a_hand_computed_value() {
    // Maps of 2 images, 2 x 2.
    let maps = tensor4(vec![0.2, 0.8, 0.5, 0.5, 0.9, 0.1, 0.3, 0.7], [2, 1, 2, 2]);
    // 4 x 4 masks: image 1 its top half; image 2 two pixels of the top-left block and the whole
    // bottom-right block. Pooled to 2 x 2: [1, 1, 0, 0] and [0.5, 0, 0, 1].
    #[rustfmt::skip]
    let masks = tensor4(vec![
        1., 1., 1., 1.,  1., 1., 1., 1.,  0., 0., 0., 0.,  0., 0., 0., 0.,
        1., 1., 0., 0.,  0., 0., 0., 0.,  0., 0., 1., 1.,  0., 0., 1., 1.,
    ], [2, 1, 4, 4]);
    assert_close("pooled masks", &values(resize_masks(masks.clone(), [2, 2])), &[1., 1., 0., 0., 0.5, 0., 0., 1.], 1e-6);
    // Σ a·m = 0.2 + 0.8 + 0.9 x 0.5 + 0.7 = 2.15; Σ a = 4; Σ m = 3.5; Dice = 4.3 / 7.5.
    let want = 1.0 - 4.3 / 7.5;
    assert_close("dice loss", &values(dice_loss(maps.clone(), resize_masks(masks.clone(), [2, 2]))), &[want], 1e-5);

    let logits = tensor4(vec![0.0; 4], [2, 2, 1, 1]).reshape([2, 2]);
    let output = ModelOutput { logits, maps: vec![(MAP_POOL3.to_string(), maps)] };
    let term = AttentionDice { map: MAP_POOL3.to_string(), lambda: 0.5 };
    let both = BatchTargets { labels: &[0, 1], masks: Some(masks.clone()), has_mask: &[true, true] };
    assert_close("term", &values(term.forward(&output, &both)), &[0.5 * want], 1e-5);
    // Only the first image has a mask: Σ a·m = 1, Σ a = 2, Σ m = 2, Dice = 0.5.
    let first = BatchTargets { labels: &[0, 1], masks: Some(masks), has_mask: &[true, false] };
    assert_close("term, first image only", &values(term.forward(&output, &first)), &[0.5 * 0.5], 1e-5);
    let none = BatchTargets { labels: &[0, 1], masks: None, has_mask: &[false, false] };
    assert_close("term without masks", &values(term.forward(&output, &none)), &[0.0], 0.0);
}

/// A batch whose masks are all empty (no lesion pixel): the whole-batch Dice keeps a positive
/// denominator (sigmoid maps are never zero), so the loss is focal + λ3 + λ4 exactly (Dice 0) and
/// every gradient is finite.
#[test]
fn all_empty_masks_give_a_finite_loss_and_finite_gradients() {
    let device = dermrobust::device::autodiff_device();
    device.seed(3);
    let cfg = ModelConfig { width: 0.125, head: HeadKind::Linear, ..ModelConfig::new(Arch::Attnmel, 2) };
    let model = cfg.init(&device);
    let n = 4;
    let v: Vec<f32> = (0..n * 3 * 64 * 64).map(|i| ((i * 53 % 97) as f32) / 97.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(v, [n, 3, 64, 64]), &device);
    let masks = Tensor::<4>::zeros([n, 1, 64, 64], &device);
    let labels = [0, 1, 0, 1];
    let has_mask = [true; 4];
    let train = TrainConfig { arch: Arch::Attnmel, attention_masks: true, lambda_pool3: 0.3, lambda_pool4: 0.7, ..TrainConfig::default() };
    let terms = config_terms(&train);
    assert_eq!(terms.len(), 2);
    let output = model.forward_output(x);
    let focal = Loss { kind: LossKind::Focal, class_weights: None, label_smoothing: 0.0, focal_gamma: 2.0 }.forward(output.logits.clone(), &labels);
    let targets = BatchTargets { labels: &labels, masks: Some(masks), has_mask: &has_mask };
    let mut loss = focal.clone();
    for t in &terms {
        loss = loss + t.forward(&output, &targets);
    }
    let (l, f) = (values(loss.clone())[0], values(focal)[0]);
    assert!(l.is_finite(), "loss {l}");
    assert!((l - (f + 0.3 + 0.7)).abs() < 1e-4, "loss {l} vs focal {f} + 1");
    let grads = loss.backward();
    let attention = model.head.attention.as_ref().unwrap();
    let dermrobust::models::Stage::Vgg(first) = &model.body_early[0] else { panic!("a VGG stage") };
    let grad4 = |p: &burn::module::Param<Tensor<4>>| p.val().grad(&grads).map(values);
    let params = [
        ("pool-3 phi", grad4(&attention.pool3.phi.weight)),
        ("pool-3 phi bias", attention.pool3.phi.bias.as_ref().unwrap().val().grad(&grads).map(values)),
        ("pool-4 W_l", grad4(&attention.pool4.w_l.weight)),
        ("pool-3 W_g", grad4(&attention.pool3.w_g.weight)),
        ("first convolution", grad4(&first.convs[0].weight)),
    ];
    for (name, g) in params {
        let g = g.unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(g.iter().all(|v| v.is_finite()), "{name}: non-finite gradient");
        assert!(g.iter().any(|v| *v != 0.0), "{name}: zero gradient");
    }
}

/// Mean attention Jaccard (Yan's protocol) of each map over the images of `part` that have a mask.
fn attention_jaccard(run: &Path, data: &dermrobust::training::TrainData) -> [f64; 2] {
    let model = DifferentiableModel::load(run).unwrap();
    let set = &data.set;
    let masks: Vec<(usize, Image)> = data.test.iter().filter_map(|&i| set.mask(i).filter(|m| m.data.iter().any(|v| *v > 0.5)).map(|m| (i, m))).collect();
    let ids: Vec<usize> = masks.iter().map(|(i, _)| *i).collect();
    assert!(ids.len() >= 20, "too few test images with masks: {}", ids.len());
    let images: Vec<Image> = ids.iter().map(|&i| set.image(i)).collect();
    let mut out = [0.0; 2];
    for (k, layer) in [AttentionLayer::Pool3, AttentionLayer::Pool4].into_iter().enumerate() {
        let maps = attention_maps(&model, &images, layer).unwrap();
        let js: Vec<f64> = maps.iter().zip(&masks).filter_map(|(m, (_, mask))| localisation(m, mask).map(|l| l.jaccard)).collect();
        out[k] = js.iter().sum::<f64>() / js.len() as f64;
    }
    out
}

/// On synthetic photographs with lesion masks, the same training with the Dice terms
/// (AttnMel-CNN-Lesion) gives attention maps that overlap the lesions more than without them
/// (AttnMel-CNN), at both layers. λ is 1 here (Yan's 0.001 / 0.01 act over 50 epochs; this run
/// has a few hundred steps).
#[test]
fn mask_regularised_training_raises_attention_jaccard() {
    let dir = tempfile::tempdir().unwrap();
    let base = TrainConfig {
        data: "synthetic:n=320,seed=11,photos=1,size=64".parse().unwrap(),
        labels: LabelScheme::Native,
        arch: Arch::Attnmel,
        width: 0.125,
        head: HeadKind::Linear,
        dropout: 0.0,
        image_size: 64,
        epochs: 3,
        batch_size: 32,
        lr: 0.01,
        schedule: ScheduleKind::Constant,
        augment: AugmentPreset::None,
        lambda_pool3: 1.0,
        lambda_pool4: 1.0,
        seed: 5,
        cache_dir: Some(dir.path().join("cache")),
        ..TrainConfig::default()
    };
    let mut results = Vec::new();
    for masks in [false, true] {
        let cfg = TrainConfig { attention_masks: masks, ..base.clone() };
        let out = dir.path().join(if masks { "lesion" } else { "plain" });
        // Masks loaded for both runs (the attention Jaccard needs them); only the second trains with them.
        let data = prepare_data_with_masks(&cfg, &out, true, true).unwrap();
        train_one(&cfg, &data, &out, false, true).unwrap();
        results.push(attention_jaccard(&out, &data));
    }
    let (plain, lesion) = (results[0], results[1]);
    eprintln!("attention Jaccard pool-3 / pool-4: without masks {plain:?}, with masks {lesion:?}");
    for k in 0..2 {
        assert!(lesion[k] > plain[k] + 0.2, "layer {k}: with masks {} vs without {}", lesion[k], plain[k]);
    }
}

/// `--attention-masks` needs the attention model, and a model without attention says so when
/// asked for attention maps.
#[test]
fn attention_options_and_maps_refuse_other_architectures() {
    let cfg = TrainConfig { arch: Arch::Resnet18, attention_masks: true, ..TrainConfig::default() };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("--attention-masks") && e.contains("attnmel"), "{e}");
    let cfg = TrainConfig { arch: Arch::Attnmel, lambda_pool4: -1.0, ..TrainConfig::default() };
    assert!(cfg.validate().unwrap_err().to_string().contains("--lambda-pool4"));

    let device = Device::flex();
    device.seed(1);
    let config = ModelConfig { width: 0.125, head: HeadKind::Linear, ..ModelConfig::new(Arch::Vgg16Gap, 2) };
    let meta = two_class_meta(&config, 32);
    let model = DifferentiableModel::from_model(config.init(&device), meta);
    let e = attention_maps(&model, &[Image::filled(3, 32, 32, 0.5)], AttentionLayer::Pool3).unwrap_err().to_string();
    assert!(e.contains("no attention maps"), "{e}");
}

/// Metadata for a two-class model at `size` pixels (through serde, so fields added to `ModelMeta`
/// later, with defaults, need no change here).
fn two_class_meta(config: &ModelConfig, size: usize) -> ModelMeta {
    serde_json::from_value(serde_json::json!({
        "config": config, "classes": ["a", "b"], "label_scheme": LabelScheme::Native, "preprocess": Preprocess { size, centre_crop: None },
    }))
    .unwrap()
}

/// Yan's recipe fills the options left at their defaults and keeps the ones given.
#[test]
fn yan_recipe_sets_defaults_only() {
    let mut cfg = TrainConfig { recipe: Some(dermrobust::training::config::Recipe::Yan), epochs: 8, ..TrainConfig::default() };
    cfg.apply_recipe();
    assert_eq!((cfg.lr, cfg.schedule, cfg.step_epochs, cfg.loss, cfg.oversample, cfg.centre_crop), (0.01, ScheduleKind::Step, 10, LossKind::Focal, true, Some(0.7)));
    assert_eq!((cfg.epochs, cfg.augment, cfg.head), (8, AugmentPreset::Yan, HeadKind::Linear));
    cfg.validate().unwrap();
}

/// The exported attention head up-samples pool-5 by whole-number scales: at 80 pixels pool-4 is
/// 5x5 and pool-5 2x2, which it cannot do exactly, so export refuses clearly instead of writing a
/// graph that differs from the model (at sizes divisible by 32, export is checked against the model
/// in tests/onnx_export.rs).
#[test]
fn onnx_export_of_attnmel_refuses_uneven_up_sampling_clearly() {
    let device = Device::flex();
    device.seed(2);
    let config = ModelConfig { width: 0.125, head: HeadKind::Linear, ..ModelConfig::new(Arch::Attnmel, 2) };
    let meta = two_class_meta(&config, 80);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attnmel.onnx");
    let e = dermrobust::models::onnx_export::export_onnx(&config.init(&device).valid(), &meta, &path).unwrap_err().to_string();
    assert!(e.contains("divisible by 32") && e.contains("pool4"), "{e}");
    assert!(!path.exists());
}
