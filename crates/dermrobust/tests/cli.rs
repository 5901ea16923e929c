//! The command line: help for every command, data commands, predict.

use std::process::Command;

fn dermrobust(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn every_command_has_help() {
    for cmd in [
        vec!["--help"],
        vec!["train", "--help"],
        vec!["evaluate", "--help"],
        vec!["predict", "--help"],
        vec!["demo", "--help"],
        vec!["lr-find", "--help"],
        vec!["bench", "--help"],
        vec!["data", "summary", "--help"],
        vec!["data", "split", "--help"],
        vec!["data", "synth", "--help"],
        vec!["data", "duplicates", "--help"],
        vec!["audit", "brittleness", "--help"],
        vec!["audit", "adversarial", "--help"],
        vec!["audit", "artefacts", "--help"],
        vec!["explain", "--help"],
        vec!["export", "--help"],
        vec!["experiment", "--help"],
        vec!["replay", "--help"],
    ] {
        let (ok, stdout, _) = dermrobust(&cmd);
        assert!(ok && stdout.contains("Usage"), "{cmd:?}");
    }
    let (_, stdout, _) = dermrobust(&["train", "--help"]);
    assert!(stdout.contains("ham10000:DIR") && stdout.contains("--discriminative-lr"), "data syntax documented in train --help");
}

#[test]
fn bad_input_gives_an_error_not_a_panic() {
    let (ok, _, stderr) = dermrobust(&["data", "summary", "--data", "manifest:/does/not/exist.csv"]);
    assert!(!ok && stderr.starts_with("error:") && stderr.contains("/does/not/exist.csv"), "{stderr}");
    let (ok, _, stderr) = dermrobust(&["train", "--out", "/tmp/x", "--arch", "alexnet"]);
    assert!(!ok && stderr.contains("unknown architecture 'alexnet'"), "{stderr}");
    let (ok, _, stderr) = dermrobust(&["predict", "--model", "/nonexistent", "a.png"]);
    assert!(!ok && stderr.contains("not a dermrobust model folder"), "{stderr}");
}

#[test]
fn synth_then_summary_and_split_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("syn");
    let (ok, stdout, stderr) = dermrobust(&["data", "synth", "--quiet", "--data", "synthetic:n=40,seed=2,size=48", "--out", dir.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("of 40 lesions"));
    let manifest = format!("manifest:{}", dir.join("manifest.csv").display());
    let json = tmp.path().join("s.json");
    let (ok, stdout, stderr) = dermrobust(&["data", "summary", "--data", &manifest, "--json", json.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("lesions        40") && stdout.contains("(OK)"), "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["split"]["lesions_crossing_parts"], 0);
    assert_eq!(summary["images_with_masks"], summary["images"]);
    let split = tmp.path().join("split.json");
    let (ok, _, stderr) = dermrobust(&["data", "split", "--data", &manifest, "--kfold", "4", "--out", split.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, _) = dermrobust(&["data", "summary", "--data", &manifest, "--split", split.to_str().unwrap()]);
    assert!(ok && stdout.contains("fold3"));
}

/// Numeric options out of range are errors naming the option, before any work starts.
#[test]
fn out_of_range_options_are_errors_not_panics() {
    for (args, flag) in [
        (vec!["train", "--quiet", "--out", "/tmp/dermrobust-never", "--batch-size", "0"], "--batch-size"),
        (vec!["train", "--quiet", "--out", "/tmp/dermrobust-never", "--dropout", "1.5"], "--dropout"),
        (vec!["train", "--quiet", "--out", "/tmp/dermrobust-never", "--epochs", "0"], "--epochs"),
        (vec!["bench", "--iters", "0"], "--iters"),
    ] {
        let (ok, _, stderr) = dermrobust(&args);
        assert!(!ok && stderr.starts_with("error:") && stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(!std::path::Path::new("/tmp/dermrobust-never").exists(), "a refused run wrote its folder");
}

/// A truncated JPEG is an error naming the file (predict), or skipped with --skip-bad (evaluate).
#[test]
fn a_truncated_jpeg_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    // A model to predict with: one epoch on tiny synthetic data.
    let run = tmp.path().join("run");
    let (ok, _, stderr) = dermrobust(&["train", "--quiet", "--data", "synthetic:n=40,seed=2,size=48", "--width", "0.125", "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--out", run.to_str().unwrap(), "--cache-dir", tmp.path().join("cache").to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let mut img = image::RgbImage::new(200, 150);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Rgb([(x % 256) as u8, (y * 2 % 256) as u8, ((x + y) % 256) as u8]);
    }
    let whole = tmp.path().join("whole.jpg");
    img.save(&whole).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let cut = tmp.path().join("cut.jpg");
    std::fs::write(&cut, &bytes[..2000.min(bytes.len() / 2)]).unwrap();
    let (ok, _, stderr) = dermrobust(&["predict", "--model", run.to_str().unwrap(), whole.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = dermrobust(&["predict", "--model", run.to_str().unwrap(), cut.to_str().unwrap()]);
    assert!(!ok && stderr.contains("cut.jpg"), "a truncated JPEG was predicted: {stdout} {stderr}");
    // In a dataset: an error naming the file, or skipped with --skip-bad.
    std::fs::write(tmp.path().join("m.csv"), "path,label\nwhole.jpg,mel\ncut.jpg,nv\n").unwrap();
    let spec = format!("manifest:{}", tmp.path().join("m.csv").display());
    let out = tmp.path().join("eval");
    let (ok, _, stderr) = dermrobust(&["evaluate", "--quiet", "--model", run.to_str().unwrap(), "--data", &spec, "--part", "all", "--out", out.to_str().unwrap()]);
    assert!(!ok && stderr.contains("cut.jpg"), "{stderr}");
    let (ok, _, stderr) = dermrobust(&["evaluate", "--quiet", "--model", run.to_str().unwrap(), "--data", &spec, "--part", "all", "--skip-bad", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["images"], 1);

    // The run's split does not cover another dataset: the message says how to use all of it.
    let (ok, _, stderr) = dermrobust(&["evaluate", "--quiet", "--model", run.to_str().unwrap(), "--data", &spec, "--skip-bad", "--out", out.to_str().unwrap()]);
    assert!(!ok && stderr.contains("--part all"), "{stderr}");
}
