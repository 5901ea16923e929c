//! Architectures, the blur-pool low-pass, saving/loading and torchvision import.

mod common;

use burn::module::Module;
use burn::prelude::*;
use dermrobust::models::checkpoint::{self, ModelMeta};
use dermrobust::models::layers::BlurPool;
use dermrobust::models::{Arch, HeadKind, ModelConfig};
use dermrobust_core::data::{LabelScheme, Preprocess};

fn input(n: usize, size: usize, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..n * 3 * size * size).map(|i| ((i * 37 % 101) as f32) / 101.0).collect();
    Tensor::from_data(TensorData::new(v, [n, 3, size, size]), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

#[test]
fn every_architecture_gives_logits_with_and_without_anti_aliasing() {
    let device = Device::flex();
    for arch in Arch::ALL {
        for anti_alias in [false, true] {
            for head in [HeadKind::Fastai, HeadKind::Linear] {
                let cfg = ModelConfig { width: 0.125, anti_alias, head, ..ModelConfig::new(arch, 3) };
                let model = cfg.init(&device);
                let out = model.forward(input(2, 64, &device));
                assert_eq!(out.dims(), [2, 3], "{arch} aa={anti_alias} {head:?}");
                assert!(values(out).iter().all(|v| v.is_finite()));
            }
        }
    }
}

#[test]
fn resnet18_has_torchvisions_parameter_count() {
    // torchvision.models.resnet18(num_classes=1000): 11,689,512 parameters; burn also counts
    // the 2 x 4,800 batch-norm running statistics.
    let cfg = ModelConfig { head: HeadKind::Linear, ..ModelConfig::new(Arch::Resnet18, 1000) };
    assert_eq!(cfg.init(&Device::flex()).num_params(), 11_689_512 + 9_600);
}

#[test]
fn blur_pool_is_a_low_pass_filter() {
    let device = Device::flex();
    let blur = BlurPool::new(1, 1, 4, &device);
    let n = 16;
    // A constant image passes unchanged.
    let flat = Tensor::<4>::ones([1, 1, n, n], &device);
    let out = values(blur.forward(flat));
    assert!(out.iter().all(|v| (v - 1.0).abs() < 1e-5));
    // The highest frequency (a checkerboard) is removed; a slow ramp is kept.
    let checker: Vec<f32> = (0..n * n).map(|i| ((i / n + i % n) % 2) as f32).collect();
    let out = values(blur.forward(Tensor::from_data(TensorData::new(checker, [1, 1, n, n]), &device)));
    let interior: Vec<f32> = (2..n - 2).flat_map(|y| (2..n - 2).map(move |x| (x, y))).map(|(x, y)| out[y * n + x]).collect();
    let spread = interior.iter().cloned().fold(f32::MIN, f32::max) - interior.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread < 1e-5, "checkerboard survives with amplitude {spread}");
    let ramp: Vec<f32> = (0..n * n).map(|i| (i % n) as f32 / n as f32).collect();
    let out = values(blur.forward(Tensor::from_data(TensorData::new(ramp.clone(), [1, 1, n, n]), &device)));
    for y in 2..n - 2 {
        for x in 2..n - 2 {
            assert!((out[y * n + x] - ramp[y * n + x]).abs() < 0.04, "ramp changed at ({x},{y})");
        }
    }
    // With stride 2 it halves the size.
    let down = BlurPool::new(3, 2, 4, &device).forward(input(1, 16, &device));
    assert_eq!(down.dims(), [1, 3, 8, 8]);
}

#[test]
fn anti_aliased_resnet_is_more_shift_stable() {
    // Shift the input by one pixel: the anti-aliased network's features change less (Zhang 2019).
    // Averaged over several random initialisations to compare architectures, not weights.
    let device = Device::flex();
    let size = 64;
    let base: Vec<f32> = (0..3 * size * size).map(|i| ((i * 7919) % 997) as f32 / 997.0).collect();
    let shifted: Vec<f32> = (0..3 * size * size).map(|i| { let (c, r) = (i / (size * size), i % (size * size)); let (y, x) = (r / size, r % size); base[c * size * size + y * size + (x + size - 1) % size] }).collect();
    let change = |anti_alias: bool| -> f32 {
        let mut total = 0.0;
        for seed in 0..3 {
            // The tests' own generator: the same weights for both architectures on every run.
            let model = ModelConfig { width: 0.25, anti_alias, head: HeadKind::Linear, ..ModelConfig::new(Arch::Resnet18, 4) }.init(&device).map(&mut common::Reinit::new(seed));
            let a = values(model.features(Tensor::from_data(TensorData::new(base.clone(), [1, 3, size, size]), &device)).mean_dims(&[2, 3]));
            let b = values(model.features(Tensor::from_data(TensorData::new(shifted.clone(), [1, 3, size, size]), &device)).mean_dims(&[2, 3]));
            let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
            total += a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt() / norm;
        }
        total
    };
    let (plain, blurred) = (change(false), change(true));
    assert!(blurred < plain, "anti-aliased change {blurred} not below plain {plain}");
}

#[test]
fn saved_models_load_with_identical_outputs() {
    let device = Device::flex();
    let cfg = ModelConfig { width: 0.125, anti_alias: true, ..ModelConfig::new(Arch::Resnet18, 4) };
    let model = cfg.init(&device);
    let meta = ModelMeta {
        config: cfg.clone(),
        classes: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        label_scheme: LabelScheme::Native,
        preprocess: Preprocess { size: 32, centre_crop: None },
        capture: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    let expected = values(model.forward(input(2, 32, &device)));
    checkpoint::save(tmp.path(), model, &meta).unwrap();
    let (loaded, meta2) = checkpoint::load(tmp.path(), &device).unwrap();
    assert_eq!(meta2, meta);
    assert_eq!(values(loaded.forward(input(2, 32, &device))), expected);
    // A missing or foreign folder is a clear error.
    let err = checkpoint::load(&tmp.path().join("nope"), &device).err().expect("loading a missing folder fails").to_string();
    assert!(err.contains("not a dermrobust model folder"), "{err}");
}

#[derive(serde::Deserialize)]
struct Expected {
    input_shape: Vec<usize>,
    input: Vec<f32>,
    #[serde(default)]
    logits: Vec<f32>,
    #[serde(default)]
    features: Vec<f32>,
}

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected(name: &str) -> (Expected, Tensor<4>) {
    let e: Expected = serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap();
    let shape: [usize; 4] = e.input_shape.clone().try_into().unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(e.input.clone(), shape), &Device::flex());
    (e, x)
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: {} values vs {}", got.len(), want.len());
    for (g, e) in got.iter().zip(want) {
        assert!((g - e).abs() < 1e-4 * (1.0 + e.abs()), "{what}: {got:?} vs PyTorch {want:?}");
    }
}

/// torchvision's `vgg16_bn` layout (fixture from `tools/reference/make_torchvision_fixture.py`):
/// after import our VGG-16 backbone gives PyTorch's feature map; the dense classifier is unused
/// and our pooled head stays new.
#[test]
fn torchvision_vgg16_bn_imports_with_pytorch_features() {
    let (e, x) = expected("tiny_vgg16_bn_expected.json");
    let device = Device::flex();
    let cfg = ModelConfig { width: 0.125, head: HeadKind::Linear, ..ModelConfig::new(Arch::Vgg16Gap, 3) };
    let (model, report) = checkpoint::import_torchvision(cfg.init(&device), Arch::Vgg16Gap, &fixtures().join("tiny_vgg16_bn.safetensors")).unwrap();
    assert!(report.missing.iter().all(|m| m.contains("head.")), "backbone parameters missing: {:?}", report.missing);
    assert!(report.unused.iter().all(|u| u.starts_with("classifier.")), "unused: {:?}", report.unused);
    assert_close("vgg16_bn features", &values(model.features(x)), &e.features);
}

/// torchvision's `densenet121` layout, with the parameter names of `state_dict()` and with the
/// legacy names of its published files: PyTorch's logits after import.
#[test]
fn torchvision_densenet121_imports_with_pytorch_outputs() {
    let (e, x) = expected("tiny_densenet121_expected.json");
    let device = Device::flex();
    for file in ["tiny_densenet121.pth", "tiny_densenet121_legacy_names.safetensors"] {
        let cfg = ModelConfig { width: 0.25, head: HeadKind::Linear, ..ModelConfig::new(Arch::Densenet121, 3) };
        let (model, report) = checkpoint::import_torchvision(cfg.init(&device), Arch::Densenet121, &fixtures().join(file)).unwrap();
        assert!(report.missing.is_empty() && report.unused.is_empty(), "{file}: missing {:?}, unused {:?}", report.missing, report.unused);
        assert_close(file, &values(model.forward(x.clone())), &e.logits);
    }
}

/// A torchvision-layout ResNet-18 checkpoint made by `tools/reference/make_torchvision_fixture.py`
/// (PyTorch 2.15) gives PyTorch's eval-mode logits after import, from `.pth` and `.safetensors`.
#[test]
fn torchvision_checkpoint_imports_with_pytorch_outputs() {
    let (e, x) = expected("tiny_resnet18_expected.json");
    let dir = fixtures();
    let device = Device::flex();
    for file in ["tiny_resnet18.pth", "tiny_resnet18.safetensors"] {
        let cfg = ModelConfig { width: 0.125, head: HeadKind::Linear, ..ModelConfig::new(Arch::Resnet18, 3) };
        let (model, report) = checkpoint::import_torchvision(cfg.init(&device), Arch::Resnet18, &dir.join(file)).unwrap();
        assert!(report.missing.is_empty(), "{file}: missing {:?}", report.missing);
        assert_close(file, &values(model.forward(x.clone())), &e.logits);
    }
    // A checkpoint for another width is refused with a message, not a panic.
    let wrong = ModelConfig { width: 0.25, head: HeadKind::Linear, ..ModelConfig::new(Arch::Resnet18, 3) };
    assert!(checkpoint::import_torchvision(wrong.init(&device), Arch::Resnet18, &dir.join("tiny_resnet18.pth")).is_err());
}

#[test]
fn folding_batch_norm_keeps_the_outputs() {
    let device = Device::flex();
    for arch in [Arch::Resnet18, Arch::Resnet50, Arch::Vgg16Gap, Arch::Densenet121] {
        for anti_alias in [false, true] {
            let cfg = ModelConfig { width: 0.125, anti_alias, ..ModelConfig::new(arch, 3) };
            // Random batch-norm statistics, so folding has something to fold.
            let model = cfg.init(&device);
            let model = randomise_running_stats(model);
            let before = values(model.forward(input(2, 32, &device)));
            let after = values(model.fold_batch_norm().forward(input(2, 32, &device)));
            for (a, b) in before.iter().zip(&after) {
                assert!((a - b).abs() < 1e-3 * (1.0 + a.abs()), "{arch} aa={anti_alias}: {before:?} vs {after:?}");
            }
        }
    }
}

/// Give every batch norm non-trivial statistics (as after training).
fn randomise_running_stats(model: dermrobust::models::Classifier) -> dermrobust::models::Classifier {
    // One training-mode forward pass on the autodiff device updates the running statistics.
    let ad = Device::flex().autodiff();
    let m = model.fork(&ad);
    let _ = m.forward(input(4, 32, &ad) * 3.0 + 0.5);
    m.valid()
}
