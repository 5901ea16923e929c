//! `dermrobust bench`: images per second of training steps and inference on random input,
//! the same measurement as `../shared/bench/torch_resnet18.py` makes for PyTorch.

use anyhow::Result;

use crate::models::Arch;
use crate::training::throughput::{measure, ThroughputConfig};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "resnet18")]
    pub arch: Arch,
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    #[arg(long, default_value_t = 64)]
    pub res: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed iterations (after 2 warm-up iterations); the median is reported.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    #[arg(long, default_value_t = 7)]
    pub classes: usize,
    #[arg(long)]
    pub anti_alias: bool,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// Refuse options that would measure nothing or divide by zero (naming the option).
    pub fn validate(&self) -> Result<()> {
        self.config().validate()
    }

    pub fn config(&self) -> ThroughputConfig {
        ThroughputConfig { arch: self.arch, width: self.width, res: self.res, batch: self.batch, iters: self.iters, classes: self.classes, anti_alias: self.anti_alias }
    }
}

pub fn run(a: &BenchArgs) -> Result<()> {
    let r = measure(&a.config())?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} x{} at {}px, batch {}, {} threads: train {:.1} images/s, inference {:.1} images/s ({:.1} with batch norm folded)",
            r.arch, r.width, r.res, r.batch, r.threads, r.train_images_per_s, r.infer_images_per_s, r.infer_folded_images_per_s
        );
        if let (Some(engine), Some(v)) = (&r.engine, r.infer_engine_images_per_s) {
            println!("inference on {engine}: {v:.1} images/s");
        }
    }
    Ok(())
}
