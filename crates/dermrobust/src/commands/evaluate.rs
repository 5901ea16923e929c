//! `dermrobust evaluate`: metrics and per-image predictions of a trained model on a dataset.

use std::path::PathBuf;

use anyhow::Result;
use dermrobust_core::report::write_json;

use crate::evaluation::{self, ImageClassifier, TrainedModel};
use crate::training::trainer::resolve_model_path;

#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// A model folder (or a training run folder: its best model is used).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: super::ModelDataArgs,
    #[command(flatten)]
    pub tta: super::TtaArgs,
    /// Output folder for metrics.json and predictions.csv.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub skip_bad: bool,
}

pub fn run(a: &EvaluateArgs, quiet: bool) -> Result<()> {
    let model = TrainedModel::load(&resolve_model_path(&a.model))?;
    let (set, indices) = evaluation::model_data(&model, &a.data.data, a.data.split_for(&a.model).as_deref(), &a.data.part, a.skip_bad, quiet)?;
    let classifier: Box<dyn ImageClassifier> = match a.tta.chosen()? {
        Some(tta) => tta.wrap(Box::new(model)),
        None => Box::new(model),
    };
    let probs = evaluation::predict_set(classifier.as_ref(), &set, &indices, quiet)?;
    let labels: Vec<usize> = indices.iter().map(|&i| set.labels[i]).collect();
    let metrics = evaluation::evaluate(&labels, &probs, &set.classes, a.seed)?;
    std::fs::create_dir_all(&a.out)?;
    write_json(&a.out.join("metrics.json"), &metrics)?;
    evaluation::write_predictions(&a.out.join("predictions.csv"), &set, &indices, &probs)?;
    println!("{} ({})\n{}", classifier.describe(), a.data.data, metrics.summary());
    println!("wrote {} and {}", a.out.join("metrics.json").display(), a.out.join("predictions.csv").display());
    Ok(())
}
