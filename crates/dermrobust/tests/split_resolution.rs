//! Which split a model is evaluated and audited on: its run's own `split.json`, or for a model of
//! an experiment grid the grid's `split.json`; an explicit `--split` wins; ONNX files have none.

use dermrobust::evaluation::split_for;

#[test]
fn a_models_split_is_found_in_its_run_or_its_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let touch = |p: &std::path::Path| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "{}").unwrap();
    };
    // A plain run.
    let run = tmp.path().join("run");
    touch(&run.join("model/model.json"));
    assert_eq!(split_for(&run, None), None, "no split file yet");
    touch(&run.join("split.json"));
    assert_eq!(split_for(&run, None), Some(run.join("split.json")));
    assert_eq!(split_for(&run.join("model"), None), Some(run.join("split.json")));
    // A cell of an experiment grid: the grid's split.
    let exp = tmp.path().join("exp");
    let cell = exp.join("models/resnet18/baseline/run0");
    touch(&cell.join("model/model.json"));
    assert_eq!(split_for(&cell, None), None);
    touch(&exp.join("split.json"));
    assert_eq!(split_for(&cell, None), Some(exp.join("split.json")));
    // An explicit split wins; an ONNX file has no run.
    let other = tmp.path().join("other.json");
    assert_eq!(split_for(&cell, Some(&other)), Some(other.clone()));
    assert_eq!(split_for(&tmp.path().join("net.onnx"), None), None);
    // A run trained with --split FILE keeps no copy: its manifest names the file.
    let named = tmp.path().join("named-run");
    std::fs::create_dir_all(named.join("model")).unwrap();
    std::fs::write(named.join("model/model.json"), "{}").unwrap();
    let shared = tmp.path().join("shared-split.json");
    std::fs::write(named.join("manifest.json"), format!("{{\"split_file\": {:?}}}", shared.display().to_string())).unwrap();
    assert_eq!(split_for(&named, None), None, "the named file does not exist yet");
    touch(&shared);
    assert_eq!(split_for(&named, None), Some(shared.clone()));
    assert_eq!(split_for(&named.join("model"), None), Some(shared));
}
