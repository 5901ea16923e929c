//! The audit and experiment commands end to end on small synthetic data, and the HTML report in
//! a real headless browser (Debian's chromium; skipped with a message when it is not installed).

use std::path::Path;
use std::process::Command;

fn dermrobust(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

const DATA: &str = "synthetic:n=160,seed=3,photos=3,size=48";

/// Render `html` with headless chromium; returns false (and says why) when chromium is absent.
fn renders_in_chromium(html: &Path, screenshot: &Path) -> bool {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success())) else {
        skipped("SKIPPED: browser check: chromium is not installed (apt-get install chromium)");
        return false;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1200,3000")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let png = image::open(screenshot).expect("chromium wrote a PNG screenshot").to_rgb8();
    // A rendered report is not a blank page: count distinct colours.
    let mut colours: Vec<[u8; 3]> = png.pixels().map(|p| p.0).collect();
    colours.sort();
    colours.dedup();
    assert!(colours.len() > 50, "the screenshot looks blank ({} colours)", colours.len());
    true
}

#[test]
fn train_audit_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cache = tmp.path().join("cache");
    let (ok, _, err) = dermrobust(&[
        "train", "--quiet", "--data", DATA, "--width", "0.125", "--image-size", "32", "--epochs", "3", "--batch-size", "16",
        "--lr", "0.02", "--out", run.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let audit = tmp.path().join("audit");
    let (ok, stdout, err) = dermrobust(&["audit", "brittleness", "--quiet", "--model", run.to_str().unwrap(), "--data", DATA, "--tta", "--out", audit.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("rotate 45") && stdout.contains("natural pairs"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(audit.join("brittleness.json")).unwrap()).unwrap();
    let sets = json["models"][0]["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 17);
    for s in sets {
        let p = s["p_class_change"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
    }
    assert!(json["models"][0]["model"].as_str().unwrap().contains("TTA (8 views, original weighted 0.4)"));
    let rows = std::fs::read_to_string(audit.join("brittleness_per_image.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 17 * json["images"].as_u64().unwrap() as usize);
    let html = std::fs::read_to_string(audit.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("P(class change)"));
    renders_in_chromium(&audit.join("report.html"), &tmp.path().join("shot.png"));
    // Balanced decisions use the run's training shares; without a split they are refused.
    let balanced = tmp.path().join("audit-balanced");
    let (ok, _, err) = dermrobust(&["audit", "brittleness", "--quiet", "--model", run.to_str().unwrap(), "--data", DATA, "--decision", "balanced", "--max-images", "30", "--out", balanced.to_str().unwrap()]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(balanced.join("brittleness.json")).unwrap()).unwrap();
    assert!(json["models"][0]["model"].as_str().unwrap().ends_with("balanced decision"));
    assert_eq!(json["images"], 30);
    let lone = tmp.path().join("lone/model");
    std::fs::create_dir_all(&lone).unwrap();
    for f in std::fs::read_dir(run.join("model")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, lone.join(f.file_name().unwrap())).unwrap();
    }
    let (ok, _, err) = dermrobust(&["audit", "brittleness", "--quiet", "--model", lone.to_str().unwrap(), "--data", DATA, "--decision", "balanced", "--out", balanced.to_str().unwrap()]);
    assert!(!ok && err.contains("needs the training split"), "{err}");
    // evaluate and predict on the same model
    let eval = tmp.path().join("eval");
    let (ok, stdout, err) = dermrobust(&["evaluate", "--quiet", "--model", run.to_str().unwrap(), "--data", DATA, "--split", run.join("split.json").to_str().unwrap(), "--out", eval.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("macro AUROC"));
    let synth = tmp.path().join("imgs");
    assert!(dermrobust(&["data", "synth", "--quiet", "--data", "synthetic:n=4,size=48", "--out", synth.to_str().unwrap()]).0);
    let img = synth.join("images/syn_00000_0.png");
    let (ok, stdout, err) = dermrobust(&["predict", "--json", "--model", run.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(ok, "{err}");
    let preds: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let total: f64 = preds[0]["probabilities"].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4);
}

#[test]
fn experiment_grid_writes_one_table() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exp");
    let (ok, stdout, err) = dermrobust(&[
        "experiment", "--quiet", "--data", DATA, "--width", "0.125", "--image-size", "32", "--epochs", "2", "--batch-size", "16",
        "--variants", "baseline,ada+aam", "--repeats", "2", "--out", out.to_str().unwrap(),
        "--cache-dir", tmp.path().join("cache").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("ADA+AAM+TTA"), "{stdout}");
    let mut reader = csv::Reader::from_path(out.join("experiment.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    // 2 variants x (without, with TTA) x (original, single, combined, natural) families.
    assert_eq!(rows.len(), 16);
    let methods: std::collections::BTreeSet<String> = rows.iter().map(|r| r[1].to_string()).collect();
    assert_eq!(methods.into_iter().collect::<Vec<_>>(), vec!["ADA+AAM", "ADA+AAM+TTA", "TTA", "baseline"]);
    assert!(rows.iter().all(|r| r[4] == *"2"), "two models per cell");
    assert!(out.join("audits/resnet18/ADA_AAM_TTA/brittleness_per_image.csv").is_file());
    assert!(out.join("models/resnet18/ada+aam/run1/model/model.json").is_file());
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("Method comparison"));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("experiment.json")).unwrap()).unwrap();
    assert_eq!((json["tta"]["views"].as_array().unwrap().len(), json["tta"]["original_weight"].as_f64().unwrap()), (8, 0.4), "Maron's TTA by default");
    // --resume reuses the trained models; their audits are made again because the decision rule
    // changed (balanced), and a second identical --resume reuses those audits as well.
    let weights = out.join("models/resnet18/baseline/run0/model/model.bpk");
    let audit = out.join("audits/resnet18/baseline/brittleness.json");
    let modified = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (trained_at, first_audit_at) = (modified(&weights), modified(&audit));
    let resume = || {
        dermrobust(&[
            "experiment", "--quiet", "--data", DATA, "--width", "0.125", "--image-size", "32", "--epochs", "2", "--batch-size", "16",
            "--variants", "baseline,ada+aam", "--repeats", "2", "--out", out.to_str().unwrap(), "--resume",
            "--no-tta", "--decision", "balanced", "--cache-dir", tmp.path().join("cache").to_str().unwrap(),
        ])
    };
    let (ok, _, err) = resume();
    assert!(ok, "{err}");
    assert_eq!(modified(&weights), trained_at, "a finished model is not retrained");
    let balanced_audit_at = modified(&audit);
    assert_ne!(balanced_audit_at, first_audit_at, "an audit with another decision rule is not reused");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("experiment.json")).unwrap()).unwrap();
    assert_eq!(json["decision"], "balanced");
    let table = std::fs::read_to_string(out.join("experiment.csv")).unwrap();
    let (ok, _, err) = resume();
    assert!(ok, "{err}");
    assert_eq!(modified(&audit), balanced_audit_at, "a finished audit with the same key is reused");
    assert_eq!(std::fs::read_to_string(out.join("experiment.csv")).unwrap(), table, "the reused audits give the same table");
}

/// Say why a check is skipped, visibly: written straight to the process's stderr, which the test
/// harness does not capture (it captures only `eprintln!`), so CI's log shows it.
fn skipped(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}
