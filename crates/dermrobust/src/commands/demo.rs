//! `dermrobust demo`: synthetic data -> train a small model -> evaluate -> print where the
//! results are. Needs no download; a few minutes on two cores.

use std::path::PathBuf;

use anyhow::Result;

use crate::training::config::{AugmentPreset, ScheduleKind};
use crate::training::TrainConfig;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "demo-output")]
    pub out: PathBuf,
    /// Number of synthetic lesions.
    #[arg(long, default_value_t = 1500)]
    pub lesions: usize,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub fn config(a: &DemoArgs) -> Result<TrainConfig> {
    Ok(TrainConfig {
        data: format!("synthetic:n={},seed={}", a.lesions, a.seed).parse()?,
        arch: "resnet18".parse().map_err(anyhow::Error::msg)?,
        width: 0.25,
        image_size: 64,
        epochs: a.epochs,
        batch_size: 32,
        lr: 0.02,
        schedule: ScheduleKind::OneCycle,
        augment: AugmentPreset::Standard,
        seed: a.seed,
        cache_dir: Some(a.out.join("cache")),
        ..TrainConfig::default()
    })
}

pub fn run(a: &DemoArgs, quiet: bool) -> Result<()> {
    let cfg = config(a)?;
    if !quiet {
        eprintln!("dermrobust demo: {} synthetic lesions, {} at 64px (width 0.25), {} epochs", a.lesions, cfg.arch, cfg.epochs);
    }
    let results = super::train::run(&cfg, &a.out, false, quiet)?;
    let r = &results[0];
    println!("\nDemo finished.");
    if let Some(m) = &r.test {
        println!("Test set: {}", m.summary().replace('\n', "\n          "));
    }
    println!("Model:        {}", a.out.join("model").display());
    println!("Metrics:      {}", a.out.join("metrics.json").display());
    println!("Predictions:  {}", a.out.join("predictions.csv").display());
    println!("Curves:       {}", a.out.join("training_curves.svg").display());
    Ok(())
}
