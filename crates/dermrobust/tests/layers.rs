//! The crate's layers depend downward only: device -> models -> evaluation -> training ->
//! audits -> commands (and `main.rs` on top). These tests read the source files, so an upward
//! import (a cycle between layers) fails here.

use std::path::{Path, PathBuf};

const LAYERS: [&str; 6] = ["device", "models", "evaluation", "training", "audits", "commands"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file refers to through `crate::NAME` (comments left out).
fn crate_references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(tail.len());
            out.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    out
}

/// The layer of a source file: its top-level module.
fn layer_of(src: &Path, file: &Path) -> Option<usize> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
    LAYERS.iter().position(|l| *l == first)
}

#[test]
fn layers_depend_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some(layer) = layer_of(&src, file) else { continue };
        checked += 1;
        for r in crate_references(&std::fs::read_to_string(file).unwrap()) {
            if let Some(target) = LAYERS.iter().position(|l| *l == r) {
                if target > layer {
                    violations.push(format!("{} ({}) uses crate::{r}", file.strip_prefix(&src).unwrap().display(), LAYERS[layer]));
                }
            }
        }
    }
    assert!(checked > 30, "only {checked} files were checked");
    assert!(violations.is_empty(), "upward imports:\n{}", violations.join("\n"));
}

#[test]
fn the_check_sees_an_upward_import() {
    // The detector itself: a training file that imports an audit is caught.
    assert_eq!(crate_references("use crate::audits::runner::Audit; // crate::commands in a comment"), vec!["audits"]);
}
