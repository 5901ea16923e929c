//! The brittleness audit on the shared audit runner gives the numbers of the audit before the
//! move (`tests/fixtures/brittleness_v1`, made by the binary of commit d37197c: see its README),
//! for the same model, data and seed: per set, per image, with and without TTA and balanced
//! decisions.

use std::process::Command;

use serde_json::Value;

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/brittleness_v1")
}

/// Within this of each other (absolute, or relative for large numbers) numbers count as equal:
/// float32 rounding of the network. The fixture's probabilities came from burn-flex's convolution;
/// since issue 14 small feature maps use a batch-wide matrix product (`models::layers::conv_forward`),
/// which sums in another order and moves probabilities by about 2e-6.
const TOLERANCE: f64 = 1e-5;

/// Numbers equal to float precision; everything else equal; timings ignored.
fn assert_same(path: &str, old: &Value, new: &Value) {
    match (old, new) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= TOLERANCE * (1.0 + a.abs()), "{path}: old {a} new {b}");
        }
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if ["seconds", "forward_passes_per_second"].contains(&k.as_str()) {
                    continue;
                }
                let w = b.get(k).unwrap_or_else(|| panic!("{path}.{k} is missing from the new output"));
                assert_same(&format!("{path}.{k}"), v, w);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: length");
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                assert_same(&format!("{path}[{i}]"), v, w);
            }
        }
        _ => assert_eq!(old, new, "{path}"),
    }
}

fn compare_csv(old: &std::path::Path, new: &std::path::Path) {
    let read = |p: &std::path::Path| {
        let mut r = csv::Reader::from_path(p).unwrap();
        let h = r.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        (h, rows)
    };
    let (ho, ro) = read(old);
    let (hn, rn) = read(new);
    assert_eq!(ro.len(), rn.len(), "per-image rows");
    for (name, i) in ho.iter().zip(0..) {
        let j = hn.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name} is missing"));
        for (a, b) in ro.iter().zip(&rn) {
            match (a[i].parse::<f64>(), b[j].parse::<f64>()) {
                (Ok(x), Ok(y)) => assert!((x - y).abs() <= TOLERANCE, "{name}: {x} vs {y}"),
                _ => assert_eq!(&a[i], &b[j], "{name}"),
            }
        }
    }
    assert!(hn.iter().any(|h| h == "op"), "the new records carry the operation");
}

fn run_case(name: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join(name);
    let mut args = vec!["audit", "brittleness", "--quiet", "--model", fixture().join("run").to_str().unwrap().to_string().leak(), "--data", "synthetic:n=80,seed=3,size=48", "--max-images", "25", "--out", out.to_str().unwrap().to_string().leak()];
    args.extend_from_slice(extra);
    let res = Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(&args).env("DERMROBUST_CACHE", tmp.path().join("cache")).output().unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let read = |p: std::path::PathBuf| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let old = read(fixture().join(name).join("brittleness.json"));
    let new = read(out.join("brittleness.json"));
    assert_same(name, &old, &new);
    compare_csv(&fixture().join(name).join("brittleness_per_image.csv"), &out.join("brittleness_per_image.csv"));
}

#[test]
fn brittleness_numbers_are_unchanged() {
    run_case("audit", &[]);
}

#[test]
fn brittleness_numbers_with_tta_and_balanced_decisions_are_unchanged() {
    run_case("audit_tta", &["--tta", "--tta-views", "flips", "--decision", "balanced"]);
}

/// Every perturbed image of an audit is replayable: `dermrobust replay` rebuilds it from the
/// record and the original, and the model predicts what the audit recorded.
#[test]
fn replayed_images_get_the_recorded_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("audit");
    let model = fixture().join("run");
    let run = |args: &[&str]| {
        let res = Command::new(env!("CARGO_BIN_EXE_dermrobust")).args(args).env("DERMROBUST_CACHE", tmp.path().join("cache")).output().unwrap();
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        String::from_utf8_lossy(&res.stdout).to_string()
    };
    let data = "synthetic:n=80,seed=3,size=48";
    run(&["audit", "brittleness", "--quiet", "--model", model.to_str().unwrap(), "--data", data, "--max-images", "6", "--out", out.to_str().unwrap()]);
    let csv_path = out.join("brittleness_per_image.csv");
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    // Rows of different operations, flipped ones first.
    let mut chosen: Vec<usize> = (0..rows.len()).filter(|&i| &rows[i][col("class_changed")] == "true").take(3).collect();
    chosen.extend((0..rows.len()).step_by(rows.len() / 5).take(5));
    for i in chosen {
        let png = tmp.path().join(format!("row{i}.png"));
        let stdout = run(&["replay", "--record", csv_path.to_str().unwrap(), "--row", &(i + 1).to_string(), "--data", data, "--model", model.to_str().unwrap(), "--out", png.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["predicted_class"].as_str().unwrap(), &rows[i][col("predicted_transformed")], "row {i}");
        let p = v["probabilities"][&rows[i][col("true_class")]].as_f64().unwrap();
        let recorded: f64 = rows[i][col("p_true_transformed")].parse().unwrap();
        assert!((p - recorded).abs() < 1e-5, "row {i}: replayed {p}, recorded {recorded}");
        assert!(png.is_file());
    }
}
