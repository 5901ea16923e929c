//! Training runs: one model, or `--repeats N` models with consecutive seeds and their summary.

use std::path::Path;

use anyhow::Result;
use dermrobust_core::metrics::mean_std;
use dermrobust_core::report::write_json;
use serde::Serialize;

use crate::models::run_dir::RunDir;
use super::{prepare_data, train_one, RunResult, TrainConfig};

/// What produced a run: configuration, seed, split, data and versions.
#[derive(Serialize)]
pub struct Manifest<'a> {
    pub dermrobust_version: &'static str,
    pub burn_version: &'static str,
    pub command: Vec<String>,
    pub config: &'a TrainConfig,
    pub split_file: String,
    pub data_hash: String,
    pub images: usize,
    pub train_images: usize,
    pub validation_images: usize,
    pub test_images: usize,
    pub skipped_images: usize,
    pub started_unix: u64,
}

#[derive(Serialize)]
struct RepeatSummary {
    runs: usize,
    seeds: Vec<u64>,
    /// (mean, sample standard deviation) over runs of each test metric.
    test_accuracy: (f64, f64),
    test_balanced_accuracy: (f64, f64),
    test_macro_auroc: (f64, f64),
    test_melanoma_vs_nevus_auroc: Option<(f64, f64)>,
    best_validation_auroc: (f64, f64),
}

/// Train `cfg.repeats` models (seeds `seed`, `seed + 1`, ...) into `out` (one run folder, or
/// `run0`, `run1`, ... with a `summary.json` of mean and standard deviation), writing the run's
/// manifest and configuration first.
pub fn train_runs(cfg: &TrainConfig, out: &Path, resume: bool, quiet: bool) -> Result<Vec<RunResult>> {
    cfg.validate()?;
    std::fs::create_dir_all(out)?;
    let data = prepare_data(cfg, out, quiet)?;
    let manifest = Manifest {
        dermrobust_version: env!("CARGO_PKG_VERSION"),
        burn_version: "0.22.1",
        command: std::env::args().collect(),
        config: cfg,
        split_file: data.split_file.display().to_string(),
        data_hash: data.data_hash.clone(),
        images: data.set.len(),
        train_images: data.train.len(),
        validation_images: data.val.len(),
        test_images: data.test.len(),
        skipped_images: data.skipped,
        started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    };
    write_json(&RunDir::new(out).manifest(), &manifest)?;
    dermrobust_core::report::atomic_write(&RunDir::new(out).config(), toml::to_string(cfg)?.as_bytes())?;
    if !quiet {
        eprintln!(
            "{} images: {} train / {} validation / {} test (lesion-aware split {})",
            data.set.len(),
            data.train.len(),
            data.val.len(),
            data.test.len(),
            data.split_file.display()
        );
    }
    let mut results = Vec::new();
    for r in 0..cfg.repeats.max(1) {
        let mut run_cfg = cfg.clone();
        run_cfg.seed = cfg.seed + r as u64;
        let dir = if cfg.repeats > 1 { out.join(format!("run{r}")) } else { out.to_path_buf() };
        if cfg.repeats > 1 && !quiet {
            eprintln!("run {}/{} (seed {})", r + 1, cfg.repeats, run_cfg.seed);
        }
        let result = train_one(&run_cfg, &data, &dir, resume, quiet)?;
        if let (Some(m), false) = (&result.test, quiet) {
            eprintln!("test set (best epoch {}):\n{}", result.best_epoch, m.summary());
        }
        results.push(result);
    }
    if results.len() > 1 {
        let tests: Vec<_> = results.iter().filter_map(|r| r.test.as_ref()).collect();
        let ms = |f: &dyn Fn(&crate::evaluation::EvalMetrics) -> Option<f64>| {
            let v: Vec<f64> = tests.iter().filter_map(|m| f(m)).collect();
            mean_std(&v)
        };
        let mvn: Vec<f64> = tests.iter().filter_map(|m| m.melanoma_vs_nevus_auroc).collect();
        let summary = RepeatSummary {
            runs: results.len(),
            seeds: (0..results.len() as u64).map(|r| cfg.seed + r).collect(),
            test_accuracy: ms(&|m| Some(m.accuracy.estimate)),
            test_balanced_accuracy: ms(&|m| Some(m.balanced_accuracy.estimate)),
            test_macro_auroc: ms(&|m| m.macro_auroc.map(|c| c.estimate)),
            test_melanoma_vs_nevus_auroc: (!mvn.is_empty()).then(|| mean_std(&mvn)),
            best_validation_auroc: mean_std(&results.iter().map(|r| r.best_val_auroc).collect::<Vec<_>>()),
        };
        write_json(&out.join("summary.json"), &summary)?;
        if !quiet {
            eprintln!(
                "{} runs: test accuracy {:.3} ± {:.3}, balanced accuracy {:.3} ± {:.3}, macro AUROC {:.3} ± {:.3}",
                summary.runs,
                summary.test_accuracy.0,
                summary.test_accuracy.1,
                summary.test_balanced_accuracy.0,
                summary.test_balanced_accuracy.1,
                summary.test_macro_auroc.0,
                summary.test_macro_auroc.1
            );
        }
    }
    if !quiet {
        eprintln!("results in {}", out.display());
    }
    Ok(results)
}
