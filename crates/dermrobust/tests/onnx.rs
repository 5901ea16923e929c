//! Models from other frameworks: an ONNX file exported by PyTorch (the tiny torchvision ResNet-18
//! of `tools/reference/make_onnx_fixture.py`) gives PyTorch's probabilities, and is predicted on,
//! evaluated and audited end to end through the command line like a dermrobust model.

use std::process::Command;

use dermrobust::evaluation::onnx::OnnxModel;
use dermrobust::evaluation::ImageClassifier;
use dermrobust_core::imaging::Image;
use serde::Deserialize;

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn dermrobust(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[derive(Deserialize)]
struct Expected {
    input: Vec<f32>,
    probabilities: Vec<f32>,
}

fn expected() -> Expected {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny_resnet18_onnx_expected.json")).unwrap()).unwrap()
}

#[test]
fn onnx_model_gives_pytorchs_probabilities() {
    let e = expected();
    let model = OnnxModel::load(&fixtures().join("tiny_resnet18.onnx")).unwrap();
    assert_eq!(model.classes(), ["akiec", "bcc", "mel"]);
    assert_eq!(model.input_size(), 64);
    let images: Vec<Image> = e.input.chunks(3 * 64 * 64).map(|c| Image::new(3, 64, 64, c.to_vec())).collect();
    let got: Vec<f32> = model.predict(&images).unwrap().concat();
    for (g, w) in got.iter().zip(&e.probabilities) {
        assert!((g - w).abs() < 1e-4, "{got:?} vs PyTorch {:?}", e.probabilities);
    }
    // Batches larger than the compiled batch are split and padded correctly.
    let many: Vec<Image> = (0..37).map(|i| images[i % 2].clone()).collect();
    let p = model.predict(&many).unwrap();
    assert_eq!(p.len(), 37);
    for (i, row) in p.iter().enumerate() {
        for (g, w) in row.iter().zip(&e.probabilities[(i % 2) * 3..(i % 2) * 3 + 3]) {
            assert!((g - w).abs() < 1e-4);
        }
    }
}

#[test]
fn an_onnx_model_without_a_sidecar_or_with_a_bad_one_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let onnx = tmp.path().join("net.onnx");
    std::fs::copy(fixtures().join("tiny_resnet18.onnx"), &onnx).unwrap();
    let e = OnnxModel::load(&onnx).err().unwrap().to_string();
    assert!(e.contains("sidecar") && e.contains("net.toml"), "{e}");
    std::fs::write(tmp.path().join("net.toml"), "classes = [\"a\", \"b\"]\ninput_size = 64\nmean = [0.5, 0.5, 0.5]\nstd = [0.2, 0.2, 0.2]\n").unwrap();
    let e = format!("{:#}", OnnxModel::load(&onnx).err().unwrap());
    assert!(e.contains("3 outputs") && e.contains("2 classes"), "{e}");
    std::fs::write(tmp.path().join("net.toml"), "classes = [\"a\", \"b\", \"c\"]\ninput_size = 64\nmean = [0.5, 0.5, 0.5]\nstd = [0.0, 0.2, 0.2]\n").unwrap();
    let e = format!("{:#}", OnnxModel::load(&onnx).err().unwrap());
    assert!(e.contains("std"), "{e}");
}

/// A PyTorch-exported ONNX model through predict, evaluate and the brittleness audit, on an
/// external dataset (`--part all`).
#[test]
fn an_onnx_model_is_predicted_evaluated_and_audited_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let e = expected();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut manifest = String::from("path,label,group\n");
    let classes = ["akiec", "bcc", "mel"];
    for i in 0..12 {
        // Variations of the fixture's two images, so that predictions differ.
        let base = &e.input[(i % 2) * 3 * 64 * 64..(i % 2 + 1) * 3 * 64 * 64];
        let v: Vec<f32> = base.iter().enumerate().map(|(k, &p)| (p * (0.6 + 0.04 * i as f32) + 0.02 * ((k + i) % 7) as f32).clamp(0.0, 1.0)).collect();
        let png = dermrobust_core::imaging::io::encode_png(&Image::new(3, 64, 64, v)).unwrap();
        std::fs::write(data.join(format!("img{i}.png")), png).unwrap();
        manifest += &format!("img{i}.png,{},lesion{}\n", classes[i % 3], i / 2);
    }
    std::fs::write(data.join("manifest.csv"), manifest).unwrap();
    let spec = format!("manifest:{}", data.join("manifest.csv").display());
    let onnx = fixtures().join("tiny_resnet18.onnx");
    let onnx = onnx.to_str().unwrap();

    let (ok, stdout, stderr) = dermrobust(&["predict", "--model", onnx, "--json", data.join("img0.png").to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let predicted: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let p_akiec = predicted[0]["probabilities"]["akiec"].as_f64().unwrap();

    let eval = tmp.path().join("eval");
    let (ok, _, stderr) = dermrobust(&["evaluate", "--quiet", "--model", onnx, "--data", &spec, "--part", "all", "--out", eval.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(eval.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["images"], 12);

    let audit = tmp.path().join("audit");
    let (ok, _, stderr) = dermrobust(&["audit", "brittleness", "--quiet", "--model", onnx, "--data", &spec, "--part", "all", "--out", audit.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(audit.join("brittleness.json")).unwrap()).unwrap();
    assert_eq!(result["images"], 12);
    assert!(result["models"][0]["model"].as_str().unwrap().contains("ONNX"));
    assert!(audit.join("report.html").is_file());
    // The audit's original prediction of img0 is predict's.
    let mut rows = csv::Reader::from_path(audit.join("brittleness_per_image.csv")).unwrap();
    let headers = rows.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let row = rows.records().map(|r| r.unwrap()).find(|r| &r[col("image_id")] == "img0.png").unwrap();
    assert_eq!(&row[col("true_class")], "akiec");
    let p_true: f64 = row[col("p_true_original")].parse().unwrap();
    assert!((p_true - p_akiec).abs() < 1e-5, "audit {p_true} vs predict {p_akiec}");

    // A gradient method on an ONNX model is refused with the reason (the split of a training run
    // does not apply either: without --part all the message says how to use the whole data).
    let (ok, _, stderr) = dermrobust(&["audit", "brittleness", "--quiet", "--model", onnx, "--data", &spec, "--split", eval.join("missing.json").to_str().unwrap(), "--out", audit.to_str().unwrap()]);
    assert!(!ok && stderr.contains("missing.json"), "{stderr}");
}
