//! `dermrobust train`: train one model, or `--repeats N` of them.

use std::path::Path;

use anyhow::Result;

use crate::training::{train_runs, RunResult, TrainConfig};

pub fn run(cfg: &TrainConfig, out: &Path, resume: bool, quiet: bool) -> Result<Vec<RunResult>> {
    train_runs(cfg, out, resume, quiet)
}
