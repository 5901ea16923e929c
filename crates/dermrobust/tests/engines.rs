//! Every inference engine gives the plain path's probabilities: burn's folded model against the
//! same model exported to ONNX in memory and run by tract, and by ONNX Runtime where its library
//! is present (`ORT_DYLIB_PATH`; otherwise those checks say so on stderr and pass). Tolerance:
//! 1e-4 in probability (float32 kernels sum in different orders; measured differences are about
//! 1e-6). Also the clear errors of a missing engine library and a missing GPU device.

use std::path::PathBuf;
use std::process::Command;

use burn::prelude::*;
use dermrobust::evaluation::engine::{Engine, EngineModel, ORT_LIBRARY_ENV};
use dermrobust::evaluation::onnx::OnnxModel;
use dermrobust::evaluation::{ImageClassifier, TrainedModel};
use dermrobust::models::checkpoint::ModelMeta;
use dermrobust::models::{Arch, ModelConfig};
use dermrobust_core::data::{LabelScheme, Preprocess};

mod common;
use common::{images, Jitter};

/// Largest allowed difference in any class probability between an engine and the plain path.
const TOLERANCE: f32 = 1e-4;

/// A seeded random network (folded, as `TrainedModel::load` gives it) at `size` pixels.
fn model(arch: Arch, anti_alias: bool, size: usize) -> TrainedModel {
    let device = Device::flex();
    device.seed(5);
    let config = ModelConfig { width: 0.25, anti_alias, mean: [0.6, 0.5, 0.4], std: [0.2, 0.25, 0.3], ..ModelConfig::new(arch, 3) };
    // Through serde, so fields added to ModelMeta later (with defaults) need no change here.
    let meta: ModelMeta = serde_json::from_value(serde_json::json!({
        "config": config,
        "classes": ["a", "b", "c"],
        "label_scheme": LabelScheme::Native,
        "preprocess": Preprocess { size, centre_crop: None },
    }))
    .unwrap();
    let model = config.init(&device).valid().map(&mut common::Reinit::new(5)).map(&mut Jitter::new(7, 20.0)).fold_batch_norm();
    // Not a multiple of tract's batch of 16 nor of this batch: padding and chunking are exercised.
    TrainedModel { model, meta, device, batch_size: 8 }
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The largest spread of a class probability over the images: a check that fails to see a wrong
/// layer would be weak if every image got the same answer.
fn spread(p: &[Vec<f32>]) -> f32 {
    (0..p[0].len()).map(|k| p.iter().map(|r| r[k]).fold(f32::MIN, f32::max) - p.iter().map(|r| r[k]).fold(f32::MAX, f32::min)).fold(0.0, f32::max)
}

/// ONNX Runtime's library, or `None` with a note on stderr.
fn ort_library() -> Option<PathBuf> {
    let path = std::env::var_os(ORT_LIBRARY_ENV).map(PathBuf::from).filter(|p| p.is_file());
    if path.is_none() || !cfg!(feature = "ort") {
        eprintln!("skipped: ONNX Runtime checks need the `ort` feature and {ORT_LIBRARY_ENV} naming libonnxruntime.so (e.g. from `pip install onnxruntime`)");
        return None;
    }
    path
}

fn check_engine(engine: Engine) {
    // (A random VGG's probabilities hardly depend on the image, so it makes no check here;
    // tests/onnx_export.rs checks its export.)
    for (arch, anti_alias, size) in [(Arch::Resnet18, false, 32), (Arch::Resnet18, true, 40), (Arch::Densenet121, false, 32)] {
        let plain = model(arch, anti_alias, size);
        let probe = images(19, size, 3);
        let want = plain.predict(&probe).unwrap();
        assert!(spread(&want) > 1e-3, "{arch} aa={anti_alias}: probabilities hardly vary between images, the check is weak: {want:?}");
        let fast = EngineModel::new(plain, engine).unwrap();
        assert_eq!(fast.engine(), engine);
        assert_eq!(fast.classes(), ["a", "b", "c"]);
        assert_eq!(fast.input_size(), size);
        let got = fast.predict(&probe).unwrap();
        let diff = max_abs_diff(&want, &got);
        assert!(diff < TOLERANCE, "{arch} aa={anti_alias} on {engine}: probabilities differ by {diff} from burn's");
        eprintln!("{arch} aa={anti_alias} on {engine}: largest probability difference from burn {diff:.2e}");
        // A batch of one and an empty batch.
        assert!(max_abs_diff(&want[..1], &fast.predict(&probe[..1]).unwrap()) < TOLERANCE);
        assert!(fast.predict(&[]).unwrap().is_empty());
    }
}

#[test]
fn tract_engine_matches_burn() {
    check_engine(Engine::Tract);
}

#[test]
fn ort_engine_matches_burn_where_the_library_is_present() {
    if ort_library().is_none() {
        return;
    }
    dermrobust::evaluation::engine::ort_library().unwrap();
    check_engine(Engine::Ort);
}

/// A PyTorch-exported ONNX file gives the same probabilities on ONNX Runtime as on tract.
#[test]
fn an_onnx_file_on_ort_matches_tract_where_the_library_is_present() {
    if ort_library().is_none() {
        return;
    }
    let onnx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_resnet18.onnx");
    let tract = OnnxModel::load_on(&onnx, Engine::Tract).unwrap();
    let ort = OnnxModel::load_on(&onnx, Engine::Ort).unwrap();
    let probe = images(37, 64, 9);
    let diff = max_abs_diff(&tract.predict(&probe).unwrap(), &ort.predict(&probe).unwrap());
    assert!(diff < TOLERANCE, "ONNX Runtime and tract differ by {diff}");
    assert!(ort.describe().contains("ONNX Runtime"), "{}", ort.describe());
}

fn dermrobust(args: &[&str], env: &[(&str, Option<&str>)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dermrobust"));
    cmd.args(args);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn ort_without_its_library_is_a_clear_error() {
    let bench = ["--engine", "ort", "bench", "--iters", "1", "--res", "16", "--batch", "2", "--width", "0.125"];
    let (ok, err) = dermrobust(&bench, &[(ORT_LIBRARY_ENV, None)]);
    assert!(!ok && !err.contains("panicked"), "{err}");
    if cfg!(feature = "ort") {
        assert!(err.contains(ORT_LIBRARY_ENV) && err.contains("libonnxruntime"), "{err}");
        let (ok, err) = dermrobust(&bench, &[(ORT_LIBRARY_ENV, Some("/nonexistent/libonnxruntime.so"))]);
        assert!(!ok && err.contains("no such file") && !err.contains("panicked"), "{err}");
    } else {
        assert!(err.contains("built without ONNX Runtime"), "{err}");
    }
}

/// The GPU device is never chosen silently, and asking for one that this build or this machine
/// lacks is a clear error, not a panic (or, on a machine with a Vulkan GPU and a `vulkan` build,
/// it works).
#[test]
fn a_missing_gpu_device_is_a_clear_error() {
    let (ok, err) = dermrobust(&["--device", "vulkan", "bench", "--iters", "1", "--res", "16", "--batch", "2", "--width", "0.125"], &[]);
    assert!(!err.contains("panicked"), "{err}");
    if cfg!(feature = "vulkan") {
        assert!(ok || (err.contains("--device vulkan") && err.contains("--device cpu")), "{err}");
    } else {
        assert!(!ok && err.contains("built without GPU support") && err.contains("--features vulkan"), "{err}");
    }
    assert_eq!(dermrobust::device::chosen(), dermrobust::device::DeviceChoice::Cpu, "the CPU unless a device is selected");
}
