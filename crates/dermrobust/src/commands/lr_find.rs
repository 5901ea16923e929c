//! `dermrobust lr-find`: the learning-rate range test (Smith 2017; Mishra et al. 2019).

use std::path::Path;

use anyhow::Result;

use crate::training::lr_find::lr_range_test;
use crate::training::TrainConfig;

pub fn run(cfg: &TrainConfig, out: &Path, start_lr: f64, end_lr: f64, steps: usize, quiet: bool) -> Result<()> {
    let r = lr_range_test(cfg, out, start_lr, end_lr, steps, quiet)?;
    println!("suggested learning rate {:.3e} (steepest descent); minimum-loss/10 {:.3e}", r.suggested_lr, r.min_loss_lr_over_10);
    println!("wrote {}, lr_find.csv and lr_find.json", out.join("lr_find.svg").display());
    Ok(())
}
