//! Biased training (Katsch et al.'s shortcut): a model trained with a drawn ruler on every nevus
//! calls more non-nevi "nv" when the ruler is added to them, and a model trained without it
//! hardly does; the biased images are exactly the nevi of training and validation. Also checks
//! `audit artefacts` end to end on the command line with templates made by the test.

use std::path::Path;
use std::process::Command;

fn dermrobust(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(args).output().unwrap();
    assert!(out.status.success(), "dermrobust {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

const DATA: &str = "synthetic:n=400,seed=5,size=48";

fn train(dir: &Path, biased: bool) {
    let mut args = vec!["train", "--data", DATA, "--arch", "resnet18", "--width", "0.25", "--image-size", "48", "--epochs", "6", "--lr", "0.02", "--schedule", "one-cycle", "-q", "--out"];
    let d = dir.to_str().unwrap();
    args.push(d);
    if biased {
        args.extend(["--bias-artefact", "ruler-drawn", "--bias-class", "nv"]);
    }
    dermrobust(&args);
}

/// The rise of the nevus FPR when the ruler is added to every image but the nevi.
fn fpr_rise(model: &Path, out: &Path) -> f64 {
    dermrobust(&["audit", "artefacts", "--model", model.to_str().unwrap(), "--data", DATA, "--artefacts", "ruler-drawn", "--bias-class", "nv", "--shares", "0,1", "--placement-seeds", "0", "-q", "--out", out.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("artefacts.json")).unwrap()).unwrap();
    let metric = |name: &str| json["conditions"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["metrics"]["bias_fpr"]["mean"].as_f64().unwrap();
    metric("ruler-drawn on all but nv") - metric("clean")
}

#[test]
fn biased_training_shifts_decisions_toward_the_biased_class() {
    let dir = tempfile::tempdir().unwrap();
    let (biased, clean) = (dir.path().join("biased"), dir.path().join("clean"));
    train(&biased, true);
    train(&clean, false);
    // Exactly the nevi of training and validation got the ruler.
    let split: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(biased.join("split.json")).unwrap()).unwrap();
    let rows = std::fs::read_to_string(biased.join("bias_per_image.csv")).unwrap();
    let listed = rows.lines().count() - 1;
    assert!(rows.lines().skip(1).all(|l| l.contains(",nv,") && (l.contains(",train,true,") || l.contains(",validation,true,"))));
    let cfg = dermrobust_core::synth::SyntheticConfig { lesions: 400, seed: 5, size: 48, ..Default::default() };
    let nevi_train_val = dermrobust_core::synth::records(&cfg).iter().filter(|r| r.dx == "nv" && split["assignment"][&r.id].as_u64().is_some_and(|p| p < 2)).count();
    assert_eq!(listed, nevi_train_val, "every nevus of training and validation, and nothing else, gets the ruler");
    let rise_biased = fpr_rise(&biased, &dir.path().join("audit-biased"));
    let rise_clean = fpr_rise(&clean, &dir.path().join("audit-clean"));
    eprintln!("nevus FPR rise with rulers on the other classes: biased {rise_biased:.3}, unbiased {rise_clean:.3}");
    assert!(rise_biased > 0.1, "the biased model should call ruler-carrying non-nevi nv more often (rise {rise_biased})");
    assert!(rise_biased > rise_clean + 0.05, "biased rise {rise_biased} vs unbiased {rise_clean}");
}
