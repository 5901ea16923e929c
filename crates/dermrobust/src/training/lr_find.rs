//! The learning-rate range test (Smith 2017; Mishra et al. 2019).
//! The learning rate grows exponentially batch by batch; the smoothed loss is recorded until it
//! explodes. The suggestion is the learning rate where the loss falls fastest.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use burn::optim::GradientsParams;
use dermrobust_core::report::plots::{line_plot, Series};
use dermrobust_core::report::{atomic_write, write_csv, write_json};
use serde::Serialize;

use crate::models::normalise;
use super::{batch, prepare_data, trainer, TrainConfig};

#[derive(Clone, Debug, Serialize)]
pub struct LrPoint {
    pub lr: f64,
    pub loss: f64,
    pub smoothed_loss: f64,
}

/// The range test's result (`lr_find.json`).
#[derive(Serialize)]
pub struct LrFindResult {
    pub suggested_lr: f64,
    /// fastai's other rule of thumb: a tenth of the learning rate at the minimum loss.
    pub min_loss_lr_over_10: f64,
    pub points: Vec<LrPoint>,
}

/// The learning rate of steepest descent of the smoothed loss (in log learning rate), ignoring
/// the first and last tenth of the curve.
pub fn suggest(points: &[LrPoint]) -> f64 {
    let n = points.len();
    if n < 5 {
        return points.first().map_or(1e-3, |p| p.lr);
    }
    let (from, to) = (n / 10, n - n / 10 - 1);
    let mut best = (f64::MAX, points[from].lr);
    for i in from.max(1)..to {
        let slope = (points[i + 1].smoothed_loss - points[i - 1].smoothed_loss) / (points[i + 1].lr.ln() - points[i - 1].lr.ln());
        if slope < best.0 {
            best = (slope, points[i].lr);
        }
    }
    best.1
}

/// Run the range test with the configuration `train` would use, writing `lr_find.csv`,
/// `lr_find.svg` and `lr_find.json` into `out`.
pub fn lr_range_test(cfg: &TrainConfig, out: &Path, start_lr: f64, end_lr: f64, steps: usize, quiet: bool) -> Result<LrFindResult> {
    anyhow::ensure!(start_lr > 0.0 && end_lr > start_lr && steps >= 5, "need 0 < start-lr < end-lr and at least 5 steps");
    std::fs::create_dir_all(out)?;
    let data = prepare_data(cfg, out, quiet)?;
    let set = Arc::clone(&data.set);
    // The very model, normalisation, optimiser and loss that `train` would use.
    let device = crate::device::autodiff_device();
    device.seed(cfg.seed);
    let config = trainer::model_meta(cfg, &data).config;
    let mut model = trainer::new_model(cfg, &config, &device, quiet)?;
    let mut optim = trainer::optimizer(cfg);
    let loss_fn = trainer::loss(cfg, &data);
    let bar = dermrobust_core::progress::bar(steps as u64, "lr range test", quiet);
    let mut points = Vec::new();
    let (mut avg, mut best) = (0.0f64, f64::MAX);
    let beta = 0.98;
    let mut order = Vec::new();
    while order.len() < steps * cfg.batch_size {
        order.extend_from_slice(&data.train);
    }
    for (step, host) in batch::prefetch(set, order, cfg.batch_size, cfg.augment, cfg.seed).into_iter().take(steps).enumerate() {
        let lr = start_lr * (end_lr / start_lr).powf(step as f64 / (steps - 1) as f64);
        let loss = loss_fn.forward(model.forward(normalise(host.to_tensor(&device), &config)), &host.labels);
        let value = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            break;
        }
        avg = beta * avg + (1.0 - beta) * value;
        let smoothed = avg / (1.0 - beta.powi(step as i32 + 1));
        points.push(LrPoint { lr, loss: value, smoothed_loss: smoothed });
        bar.inc(1);
        if step > 5 && smoothed > 4.0 * best {
            break;
        }
        best = best.min(smoothed);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(trainer::learning_rates(lr, cfg.discriminative_lr), model, grads);
    }
    bar.finish_and_clear();
    let suggested = suggest(&points);
    let min_lr = points.iter().min_by(|a, b| a.smoothed_loss.partial_cmp(&b.smoothed_loss).unwrap()).map_or(start_lr, |p| p.lr);
    write_csv(&out.join("lr_find.csv"), &points)?;
    let svg = line_plot(
        &format!("LR range test (suggested {suggested:.2e})"),
        "learning rate",
        "loss",
        &[
            Series { name: "smoothed loss".into(), points: points.iter().map(|p| (p.lr, p.smoothed_loss)).collect(), dashed: false },
            Series { name: "suggested".into(), points: vec![(suggested, points.iter().map(|p| p.smoothed_loss).fold(f64::MAX, f64::min)), (suggested, points.iter().map(|p| p.smoothed_loss).fold(f64::MIN, f64::max))], dashed: true },
        ],
        true,
    )?;
    atomic_write(&out.join("lr_find.svg"), svg.as_bytes())?;
    let result = LrFindResult { suggested_lr: suggested, min_loss_lr_over_10: min_lr / 10.0, points };
    write_json(&out.join("lr_find.json"), &result)?;
    Ok(result)
}
