//! Training and inference throughput on random input (`dermrobust bench`): the same measurement
//! as `../shared/bench/torch_resnet18.py` makes for PyTorch, so the two can be compared on one
//! machine (BENCHMARKS.md).

use std::time::Instant;

use anyhow::Result;
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::Serialize;

use crate::models::{normalise, Arch, ModelConfig};
use crate::training::config::LossKind;
use crate::training::loss::Loss;

/// What to measure: a network, an input size and batch, and how many timed iterations.
#[derive(Debug, Clone)]
pub struct ThroughputConfig {
    pub arch: Arch,
    pub width: f64,
    pub res: usize,
    pub batch: usize,
    /// Timed iterations (after 2 warm-up iterations); the median is reported.
    pub iters: usize,
    pub classes: usize,
    pub anti_alias: bool,
}

impl ThroughputConfig {
    /// Refuse options that would measure nothing or divide by zero.
    pub fn validate(&self) -> Result<()> {
        if self.iters == 0 {
            anyhow::bail!("--iters must be at least 1, got 0 (the median of no timings is undefined)");
        }
        if self.batch == 0 {
            anyhow::bail!("--batch must be at least 1, got 0");
        }
        if self.classes < 2 {
            anyhow::bail!("--classes must be at least 2, got {}", self.classes);
        }
        if self.res < 16 {
            anyhow::bail!("--res must be at least 16 pixels, got {}", self.res);
        }
        if !(self.width.is_finite() && self.width > 0.0) {
            anyhow::bail!("--width must be a finite number greater than 0, got {}", self.width);
        }
        Ok(())
    }
}

/// Images per second, as `torch_resnet18.py` reports them for PyTorch.
#[derive(Serialize, Debug, Clone)]
pub struct Throughput {
    pub arch: String,
    pub width: f64,
    pub res: usize,
    pub batch: usize,
    pub threads: usize,
    pub train_images_per_s: f64,
    pub infer_images_per_s: f64,
    /// Inference with batch norm folded into the convolutions (what evaluation and audits use).
    pub infer_folded_images_per_s: f64,
    /// Inference through `--engine` (tract or ort), when it is not burn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infer_engine_images_per_s: Option<f64>,
}

/// Seconds per call of `run`: the median of `iters` timed calls after 2 warm-up calls.
fn median_seconds(iters: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::with_capacity(iters);
    for it in 0..iters + 2 {
        let t = Instant::now();
        run()?;
        if it >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Times training steps (SGD with momentum, cross-entropy), inference, inference with batch norm
/// folded, and inference through the `--engine` in use when it is not burn; medians over
/// `iters` iterations after 2 warm-up iterations.
pub fn measure(a: &ThroughputConfig) -> Result<Throughput> {
    a.validate()?;
    let config = ModelConfig { width: a.width, anti_alias: a.anti_alias, head: crate::models::HeadKind::Linear, ..ModelConfig::new(a.arch, a.classes) };
    let device = crate::device::autodiff_device();
    device.seed(0);
    let mut model = Some(config.init(&device));
    // The trainer's SGD (`training::sgd`), as PyTorch's script uses SGD with momentum 0.9.
    let mut optim = super::sgd::FusedSgd::new(0.9, 0.0, None).init();
    let loss_fn = Loss { kind: LossKind::CrossEntropy, class_weights: None, label_smoothing: 0.0, focal_gamma: 0.0 };
    let n = a.batch * 3 * a.res * a.res;
    let pixels: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let labels: Vec<usize> = (0..a.batch).map(|i| i % a.classes).collect();
    let train = median_seconds(a.iters, || {
        let m = model.take().expect("the model is put back after every step");
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [a.batch, 3, a.res, a.res]), &device);
        let loss = loss_fn.forward(m.forward(normalise(x, &config)), &labels);
        let _: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        model = Some(optim.step(0.01, m, grads));
        Ok(())
    })?;
    let cpu = crate::device::inference_device();
    let time_inference = |eval: &crate::models::Classifier| {
        median_seconds(a.iters, || {
            let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [a.batch, 3, a.res, a.res]), &cpu);
            let _ = eval.forward(normalise(x, &config)).try_into_vec_as::<f32>();
            Ok(())
        })
    };
    let model = model.expect("the model is put back after every step");
    let eval = model.valid();
    let infer = time_inference(&eval)?;
    let folded = eval.fold_batch_norm();
    let infer_folded = time_inference(&folded)?;
    // The engine chosen with --engine, when it is not burn: the same folded model through it
    // (probabilities of the same input, as the inference-only commands compute them).
    let engine = crate::evaluation::engine::engine();
    let infer_engine = if engine == crate::evaluation::engine::Engine::Burn {
        None
    } else {
        let meta = crate::models::checkpoint::ModelMeta {
            config: config.clone(),
            classes: (0..a.classes).map(|k| format!("class{k}")).collect(),
            label_scheme: dermrobust_core::data::LabelScheme::Native,
            preprocess: dermrobust_core::data::Preprocess { size: a.res, centre_crop: None },
            capture: None,
        };
        let trained = crate::evaluation::TrainedModel { model: folded, meta, device: cpu.clone(), batch_size: a.batch };
        let fast = crate::evaluation::engine::EngineModel::new(trained, engine)?;
        let plane = 3 * a.res * a.res;
        let images: Vec<dermrobust_core::imaging::Image> = pixels.chunks(plane).map(|c| dermrobust_core::imaging::Image::new(3, a.res, a.res, c.to_vec())).collect();
        let seconds = median_seconds(a.iters, || crate::evaluation::ImageClassifier::predict(&fast, &images).map(|_| ()))?;
        Some(a.batch as f64 / seconds)
    };
    Ok(Throughput {
        arch: a.arch.to_string(),
        width: a.width,
        res: a.res,
        batch: a.batch,
        threads: rayon::current_num_threads(),
        train_images_per_s: a.batch as f64 / train,
        infer_images_per_s: a.batch as f64 / infer,
        infer_folded_images_per_s: a.batch as f64 / infer_folded,
        engine: infer_engine.map(|_| engine.flag().to_string()),
        infer_engine_images_per_s: infer_engine,
    })
}
