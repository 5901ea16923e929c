//! `dermrobust evaluate`: metrics and per-image predictions of a trained model on a dataset.

use std::path::PathBuf;

use anyhow::Result;

use crate::evaluation;

#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// A model folder, a training run folder (its best model is used), or an ONNX file with its
    /// sidecar TOML.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: super::ModelDataArgs,
    #[command(flatten)]
    pub tta: super::TtaArgs,
    /// Output folder for metrics.json and predictions.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the bootstrap confidence intervals.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(a: &EvaluateArgs, quiet: bool) -> Result<()> {
    let (metrics, description) = evaluation::evaluate_model(&a.model, &a.data.data, a.data.split_for(&a.model).as_deref(), &a.data.part, a.tta.chosen()?.as_ref(), &a.data.capture.choice()?, a.data.skip_bad, a.seed, &a.out, quiet)?;
    println!("{description} ({})\n{}", a.data.data, metrics.summary());
    println!("wrote {} and {}", a.out.join("metrics.json").display(), a.out.join("predictions.csv").display());
    Ok(())
}
