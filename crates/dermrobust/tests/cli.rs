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
