//! The data model and the synthetic generator depend on each other in one direction only:
//! `data::record` and `synth::config` are leaves, `data::spec` names a synthetic dataset through
//! `synth::config` alone, and the generator builds records from `data::record` without reading
//! specs or sources. These tests read the source files, so a re-introduced cycle fails here.

use std::path::Path;

fn source(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Module paths a file refers to (`crate::a::b`, `super::a`), comments left out.
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for prefix in ["crate::", "super::"] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let tail = &rest[i..];
                let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
                out.push(tail[..end].trim_end_matches(':').to_string());
                rest = &tail[end..];
            }
        }
    }
    out
}

#[test]
fn record_and_synthetic_config_are_leaves() {
    for file in ["data/record.rs", "synth/config.rs"] {
        let refs = references(&source(file));
        let bad: Vec<_> = refs.iter().filter(|r| r.starts_with("crate::data") || r.starts_with("crate::synth") || r.starts_with("super::")).collect();
        assert!(bad.is_empty(), "{file} should depend on no other data or synth module, refers to {bad:?}");
    }
}

#[test]
fn dataset_specs_do_not_depend_on_the_generator() {
    for file in ["data/spec.rs", "data/record.rs", "data/labels.rs"] {
        let refs = references(&source(file));
        let bad: Vec<_> = refs.iter().filter(|r| r.starts_with("crate::synth") && !r.starts_with("crate::synth::config")).collect();
        assert!(bad.is_empty(), "{file} depends on the synthetic generator: {bad:?}");
        assert!(!refs.iter().any(|r| r.contains("sources")), "{file} depends on data::sources: {refs:?}");
    }
}

#[test]
fn the_generator_depends_only_on_records() {
    for file in ["synth/mod.rs", "synth/render.rs", "synth/noise.rs", "synth/config.rs"] {
        let refs = references(&source(file));
        let bad: Vec<_> =
            refs.iter().filter(|r| r.starts_with("crate::data") && !r.starts_with("crate::data::record")).collect();
        assert!(bad.is_empty(), "{file} depends on data modules other than data::record: {bad:?}");
    }
}

#[test]
fn the_reference_scanner_sees_imports() {
    // The checks above are only as good as the scanner: it must see a plain `use` line.
    let refs = references("use crate::data::sources::{ImageSource, Record};\n// use crate::synth::render;\n");
    assert_eq!(refs, vec!["crate::data::sources".to_string()]);
}
