//! The training loop: epochs of augmented batches, validation every epoch, the best model kept
//! by validation AUROC, a checkpoint every epoch (resumable), NaN detection, early stopping.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use dermrobust_core::data::{self, Dataset, ImageSet, LoadOptions, Preprocess, Split};
use dermrobust_core::imaging::remedy::CaptureRemedy;
use dermrobust_core::metrics;
use dermrobust_core::report::{read_json, write_json};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::batch;
use super::config::{ClassWeighting, OptimizerKind, TrainConfig};
use super::loss::{BatchTargets, Loss, LossTerm};
use super::schedule::Schedule;
use crate::evaluation::{self, argmax, TrainedModel};
use crate::models::checkpoint::{self, ModelMeta};
use crate::models::run_dir::RunDir;
use crate::models::{normalise, Classifier, ModelConfig, IMAGENET_MEAN, IMAGENET_STD, LAYER_GROUPS};

/// Decoded data and the lesion-aware split of a training run.
pub struct TrainData {
    pub set: Arc<ImageSet>,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
    pub data_hash: String,
    pub split_file: PathBuf,
    pub skipped: usize,
    /// Mishra's capture remedy applied to every image of `set` (validated), recorded with the model.
    pub capture: Option<CaptureRemedy>,
}

/// Open the dataset, make or reuse the split, decode (or read cached) pixels.
/// Masks are loaded when the configuration's loss terms need them (`--attention-masks`).
pub fn prepare_data(cfg: &TrainConfig, out: &Path, quiet: bool) -> Result<TrainData> {
    prepare_data_with_masks(cfg, out, quiet, cfg.attention_masks)
}

/// [`prepare_data`], with the lesion masks loaded too when `masks` (for loss terms that use
/// them); batches then carry them.
pub fn prepare_data_with_masks(cfg: &TrainConfig, out: &Path, quiet: bool, masks: bool) -> Result<TrainData> {
    cfg.validate()?;
    let ds = Dataset::open(&cfg.data, cfg.labels)?;
    let split_file = cfg.split.clone().unwrap_or_else(|| RunDir::new(out).split());
    let train_fraction = 1.0 - cfg.val_fraction - cfg.test_fraction;
    let split = Split::load_or_create(&split_file, &ds, [train_fraction, cfg.val_fraction, cfg.test_fraction], cfg.split_seed)?;
    let prep = Preprocess { size: cfg.image_size, centre_crop: cfg.centre_crop };
    // Biased training places its artefacts with the lesion masks.
    let remedy = cfg.capture.remedy()?;
    let masks = masks || super::bias::is_biased(cfg) || remedy.as_ref().is_some_and(|r| r.uses_masks());
    let opts = LoadOptions { cache_dir: Some(cfg.cache_dir.clone().unwrap_or_else(data::default_cache_dir)), skip_bad: cfg.skip_bad, masks, quiet };
    let (mut set, report) = ImageSet::load(&ds, &prep, &opts)?;
    if !report.skipped.is_empty() && !quiet {
        eprintln!("skipped {} unreadable images (first: {}: {})", report.skipped.len(), report.skipped[0].0, report.skipped[0].1);
    }
    if let Some(r) = &remedy {
        evaluation::apply_capture_remedy(&mut set, r, quiet)?;
    }
    let position: HashMap<&str, usize> = set.ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let to_set = |part: &str| -> Result<Vec<usize>> {
        Ok(split.indices(&ds, part)?.into_iter().filter_map(|i| position.get(ds.records[i].id.as_str()).copied()).collect())
    };
    let (train, val, test) = (to_set(data::split::TRAIN)?, to_set(data::split::VALIDATION)?, to_set(data::split::TEST)?);
    if train.is_empty() || val.is_empty() {
        bail!("the split leaves {} training and {} validation images; use more data or other fractions", train.len(), val.len());
    }
    let data = TrainData { skipped: report.skipped.len(), set: Arc::new(set), train, val, test, data_hash: report.data_hash, split_file, capture: remedy };
    if super::bias::is_biased(cfg) {
        return super::bias::biased_data(cfg, &data, Some(out), quiet);
    }
    Ok(data)
}

/// One epoch's record in `history.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_balanced_accuracy: f64,
    pub val_auroc: f64,
    pub seconds: f64,
}

/// Progress saved with every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    pub best_val_auroc: f64,
    pub best_epoch: usize,
    pub history: Vec<EpochRecord>,
    pub config: TrainConfig,
    /// Early stopping ended the run before `config.epochs`.
    #[serde(default)]
    pub stopped_early: bool,
}

/// What a finished run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub out: PathBuf,
    pub best_epoch: usize,
    pub best_val_auroc: f64,
    pub test: Option<evaluation::EvalMetrics>,
}

fn mean_std_of_training_images(set: &ImageSet, train: &[usize]) -> ([f32; 3], [f32; 3]) {
    let plane = set.size * set.size;
    let (mut sum, mut sq) = ([0f64; 3], [0f64; 3]);
    for &i in train {
        let px = set.pixels(i);
        for c in 0..3 {
            for &v in &px[c * plane..(c + 1) * plane] {
                let v = v as f64 / 255.0;
                sum[c] += v;
                sq[c] += v * v;
            }
        }
    }
    let n = (train.len() * plane) as f64;
    let mut mean = [0f32; 3];
    let mut std = [0f32; 3];
    for c in 0..3 {
        let m = sum[c] / n;
        mean[c] = m as f32;
        std[c] = ((sq[c] / n - m * m).max(1e-8)).sqrt() as f32;
    }
    (mean, std)
}

/// What the model of a run is: architecture, classes, preprocessing and the normalisation
/// (ImageNet statistics for pretrained weights, else the training images' own).
pub fn model_meta(cfg: &TrainConfig, data: &TrainData) -> ModelMeta {
    let set = &data.set;
    let (mean, std) = if cfg.pretrained.is_some() { (IMAGENET_MEAN, IMAGENET_STD) } else { mean_std_of_training_images(set, &data.train) };
    let config = ModelConfig { arch: cfg.arch, num_classes: set.num_classes(), width: cfg.width, head: cfg.head, dropout: cfg.dropout, anti_alias: cfg.anti_alias, mean, std };
    ModelMeta {
        config,
        classes: set.classes.clone(),
        label_scheme: cfg.labels,
        preprocess: Preprocess { size: cfg.image_size, centre_crop: cfg.centre_crop },
        capture: data.capture.clone(),
    }
}

/// A fresh model of `config` on `device`, with `--pretrained` weights imported.
pub fn new_model(cfg: &TrainConfig, config: &ModelConfig, device: &Device, quiet: bool) -> Result<Classifier> {
    let mut model = config.init(device);
    if let Some(p) = &cfg.pretrained {
        let (m, report) = checkpoint::import_torchvision(model, cfg.arch, p)?;
        model = m;
        if !quiet {
            eprintln!("imported {} tensors from {} ({} head parameters left new)", report.applied, p.display(), report.missing.len());
        }
    }
    Ok(model)
}

/// The training loss of a run: its kind, class weights (from the training part), smoothing.
pub fn loss(cfg: &TrainConfig, data: &TrainData) -> Loss {
    let set = &data.set;
    let train_labels: Vec<usize> = data.train.iter().map(|&i| set.labels[i]).collect();
    let class_weights = match cfg.class_weights {
        ClassWeighting::None => None,
        ClassWeighting::Balanced => Some(data::balance::balanced_class_weights(&data::balance::class_counts(&train_labels, set.num_classes()))),
    };
    Loss { kind: cfg.loss, class_weights, label_smoothing: cfg.label_smoothing, focal_gamma: cfg.focal_gamma }
}

/// The optimiser of a run (SGD with momentum or AdamW, weight decay, gradient clipping).
pub fn optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    let optim = match cfg.optimizer {
        // burn's SGD with momentum and weight decay, updated in one pass per parameter.
        OptimizerKind::Sgd => super::sgd::FusedSgd::new(cfg.momentum as f32, 0.0, Some(cfg.weight_decay as f32)).init(),
        OptimizerKind::Adamw => AdamWConfig::new().with_weight_decay(cfg.weight_decay as f32).with_epsilon(1e-8).init(),
    };
    match cfg.clip_grad_norm {
        Some(norm) => optim.with_grad_clipping(burn::grad_clipping::GradientClipping::Norm(norm)),
        None => optim,
    }
}

/// Per-group learning rates: 0.01x / 0.1x / 1x with discriminative learning rates.
pub fn learning_rates(lr: f64, discriminative: bool) -> burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate {
    let mut s = ModuleLrScheduler::new(lr);
    if discriminative {
        s = s
            .with_group(ParamGroup::from_predicate(LAYER_GROUPS[0]), lr * 0.01)
            .with_group(ParamGroup::from_predicate(LAYER_GROUPS[1]), lr * 0.1);
    }
    s.step()
}

/// Quick validation metrics (no bootstrap): loss, accuracy, balanced accuracy, AUROC.
fn validate(model: &TrainedModel, set: &ImageSet, val: &[usize]) -> Result<(f64, f64, f64, f64)> {
    let probs = evaluation::predict_set(model, set, val, true)?;
    let labels: Vec<usize> = val.iter().map(|&i| set.labels[i]).collect();
    let loss = labels.iter().zip(&probs).map(|(&l, p)| -(p[l].max(1e-7) as f64).ln()).sum::<f64>() / labels.len() as f64;
    let preds: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let cm = metrics::ConfusionMatrix::new(&labels, &preds, set.num_classes())?;
    let auroc = evaluation::metrics::headline_auroc_f32(&labels, &probs, &set.classes).unwrap_or(f64::NAN);
    Ok((loss, cm.accuracy(), cm.balanced_accuracy(), auroc))
}

/// Train one model into `out`. With `resume`, continue from `out/checkpoint`.
/// The configuration's own loss terms (`--attention-masks`: Yan's Dice terms) are added.
pub fn train_one(cfg: &TrainConfig, data: &TrainData, out: &Path, resume: bool, quiet: bool) -> Result<RunResult> {
    train_one_with_terms(cfg, data, out, resume, quiet, &super::attention::config_terms(cfg))
}

/// [`train_one`] with extra loss terms added to the classification loss (terms that need masks
/// need `data` prepared with them: [`prepare_data_with_masks`]).
pub fn train_one_with_terms(cfg: &TrainConfig, data: &TrainData, out: &Path, resume: bool, quiet: bool, terms: &[Box<dyn LossTerm>]) -> Result<RunResult> {
    if let Some(t) = terms.iter().find(|t| t.needs_masks()) {
        if !data.set.has_any_mask() {
            bail!("the loss term '{}' needs lesion masks, but {} has none loaded", t.name(), cfg.data);
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let set = &data.set;
    let device = crate::device::autodiff_device();
    let run = RunDir::new(out);
    device.seed(cfg.seed);
    let meta = model_meta(cfg, data);
    let model_config = meta.config.clone();
    let ckpt = run.checkpoint();
    let (mut model, mut optim, mut state) = if resume && run.state().is_file() {
        let state: TrainState = read_json(&run.state())?;
        if state.config != *cfg {
            bail!("--resume: the configuration differs from the interrupted run's ({}); start a new run or use the same options", run.state().display());
        }
        let (model, _) = checkpoint::load(&ckpt, &device)?;
        let optim = optimizer(cfg).load(ckpt.join("optimizer.bpk")).map_err(|e| anyhow::anyhow!("cannot load optimizer state: {e:?}"))?;
        if !quiet {
            eprintln!("resuming after epoch {} of {}", state.epochs_done, cfg.epochs);
        }
        (model, optim, state)
    } else {
        if resume && !quiet {
            eprintln!("--resume: no checkpoint in {}, starting from scratch", ckpt.display());
        }
        (new_model(cfg, &model_config, &device, quiet)?, optimizer(cfg), TrainState { epochs_done: 0, best_val_auroc: f64::NEG_INFINITY, best_epoch: 0, history: vec![], config: cfg.clone(), stopped_early: false })
    };

    let train_labels: Vec<usize> = data.train.iter().map(|&i| set.labels[i]).collect();
    let loss_fn = loss(cfg, data);
    let schedule = Schedule::from_config(cfg);

    // A run that stopped early stays stopped when resumed.
    let last_epoch = if state.stopped_early { state.epochs_done } else { cfg.epochs };
    for epoch in state.epochs_done..last_epoch {
        let started = Instant::now();
        device.seed(cfg.seed.wrapping_mul(1000).wrapping_add(epoch as u64));
        // Freeze-then-unfreeze fine-tuning: the backbone is fixed for the first epochs.
        model = if epoch < cfg.freeze_epochs { model.freeze_group(ParamGroup::from_predicate("body_")) } else { model.unfreeze() };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let mut order: Vec<usize> = if cfg.oversample {
            data::balance::oversampled_order(&train_labels, set.num_classes(), rand::Rng::random(&mut rng)).into_iter().map(|k| data.train[k]).collect()
        } else {
            data.train.clone()
        };
        order.shuffle(&mut rng);
        // Drop the last incomplete batch: a batch of a few images gives batch norm useless
        // statistics and a noisy step.
        if order.len() > cfg.batch_size {
            order.truncate(order.len() / cfg.batch_size * cfg.batch_size);
        }
        let batches_total = order.len().div_ceil(cfg.batch_size);
        let batches = cfg.max_batches.map_or(batches_total, |m| m.min(batches_total));
        order.truncate((batches * cfg.batch_size).min(order.len()));
        let bar = dermrobust_core::progress::bar(batches as u64, &format!("epoch {}/{}", epoch + 1, cfg.epochs), quiet);
        let receiver = batch::prefetch(Arc::clone(set), order, cfg.batch_size, cfg.augment, cfg.seed.wrapping_add(epoch as u64 * 7919));
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let mut lr = schedule.lr(epoch as f64);
        for (b, host) in receiver.into_iter().enumerate() {
            lr = schedule.lr(epoch as f64 + b as f64 / batches as f64);
            let x = host.to_tensor(&device);
            let x = if cfg.adversarial_eps > 0.0 { adversarial_batch(&model, &model_config, &loss_fn, x, &host.labels, cfg.adversarial_eps, cfg.adversarial_steps) } else { x };
            let x = normalise(x, &model_config);
            let output = model.forward_output(x);
            let mut loss = loss_fn.forward(output.logits.clone(), &host.labels);
            if !terms.is_empty() {
                let targets = BatchTargets { labels: &host.labels, masks: host.masks_tensor(&device), has_mask: &host.has_mask };
                for term in terms {
                    loss = loss + term.forward(&output, &targets);
                }
            }
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                bar.abandon();
                bail!(
                    "training diverged: the loss became {value} in epoch {} batch {} (learning rate {lr:.3e}). \
                     The last good checkpoint (after epoch {}) is kept in {}; lower --lr or check the data.",
                    epoch + 1,
                    b + 1,
                    state.epochs_done,
                    ckpt.display()
                );
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(learning_rates(lr, cfg.discriminative_lr), model, grads);
            loss_sum += value as f64 * host.labels.len() as f64;
            seen += host.labels.len();
            bar.set_prefix(format!("loss {:.4} lr {lr:.2e}", loss_sum / seen as f64));
            bar.inc(1);
        }
        bar.finish_and_clear();

        let inference = TrainedModel { model: model.valid(), meta: meta.clone(), device: crate::device::inference_device(), batch_size: 128 };
        let (val_loss, val_acc, val_bacc, val_auroc) = validate(&inference, set, &data.val)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss,
            val_accuracy: val_acc,
            val_balanced_accuracy: val_bacc,
            val_auroc,
            seconds: started.elapsed().as_secs_f64(),
        };
        if !quiet {
            eprintln!(
                "epoch {:>3}/{}  loss {:.4}  val loss {:.4}  val acc {:.3}  bal acc {:.3}  AUROC {:.4}  {:.0}s",
                record.epoch, cfg.epochs, record.train_loss, val_loss, val_acc, val_bacc, val_auroc, record.seconds
            );
        }
        state.history.push(record);
        state.epochs_done = epoch + 1;
        let score = if val_auroc.is_finite() { val_auroc } else { val_bacc };
        if score > state.best_val_auroc {
            state.best_val_auroc = score;
            state.best_epoch = epoch + 1;
            checkpoint::save(&run.best_model(), inference.model.clone(), &meta)?;
        }
        state.stopped_early = cfg.patience > 0 && state.epochs_done - state.best_epoch >= cfg.patience;
        save_checkpoint(out, inference.model, &meta, &optim, &state)?;
        write_history(out, &state.history)?;
        if state.stopped_early {
            if !quiet {
                eprintln!("early stopping: no improvement for {} epochs", cfg.patience);
            }
            break;
        }
    }

    let test = if data.test.is_empty() {
        None
    } else {
        let best = TrainedModel::load(&run.best_model())?;
        let probs = evaluation::predict_set(&best, set, &data.test, quiet)?;
        let labels: Vec<usize> = data.test.iter().map(|&i| set.labels[i]).collect();
        let m = evaluation::evaluate(&labels, &probs, &set.classes, cfg.seed)?;
        write_json(&run.metrics(), &m)?;
        evaluation::write_predictions(&run.predictions(), set, &data.test, &probs)?;
        Some(m)
    };
    Ok(RunResult { out: out.to_path_buf(), best_epoch: state.best_epoch, best_val_auroc: state.best_val_auroc, test })
}

/// PGD adversarial examples of a batch (Madry et al. 2018), for adversarial training: against a
/// inference copy of the model (batch norm in inference mode, no parameter gradients), a random start
/// in the L∞ ball of radius `eps` around the raw `[0, 1]` batch `x`, then `steps` signed-gradient
/// ascent steps of the loss of size `2.5 eps / steps`, each projected into the ball and `[0, 1]`.
pub fn adversarial_batch(model: &Classifier, config: &ModelConfig, loss: &Loss, x: Tensor<4>, labels: &[usize], eps: f32, steps: usize) -> Tensor<4> {
    use burn::tensor::Distribution;
    // An inference copy moved back onto the autodiff device: batch norm in inference mode and no
    // parameter gradients, while the training model itself stays untouched (freezing a clone
    // would share its parameters' gradient settings).
    let frozen = model.valid().fork(&x.device());
    let x0 = x.detach().inner();
    let alpha = 2.5 * eps / steps.max(1) as f32;
    let noise = Tensor::<4>::random(x0.shape(), Distribution::Uniform(-eps as f64, eps as f64), &x0.device());
    let mut adv = (x0.clone() + noise).clamp(0.0, 1.0);
    for _ in 0..steps {
        let a = Tensor::from_inner(adv.clone()).require_grad();
        let l = loss.forward(frozen.forward(normalise(a.clone(), config)), labels);
        let g = a.grad(&l.backward()).expect("the input of the loss has a gradient");
        adv = adv + g.sign() * alpha;
        adv = (x0.clone() + (adv - x0.clone()).clamp(-eps, eps)).clamp(0.0, 1.0);
    }
    Tensor::from_inner(adv)
}

/// Write the checkpoint into a fresh folder, then swap it in, so an interruption at any moment
/// leaves a complete checkpoint.
fn save_checkpoint(out: &Path, model: Classifier, meta: &ModelMeta, optim: &ModuleOptimizer, state: &TrainState) -> Result<()> {
    let run = RunDir::new(out);
    let (fresh, old) = run.checkpoint_swap();
    let current = run.checkpoint();
    let _ = std::fs::remove_dir_all(&fresh);
    checkpoint::save(&fresh, model, meta)?;
    optim.save(fresh.join("optimizer.bpk")).map_err(|e| anyhow::anyhow!("cannot save optimizer state: {e:?}"))?;
    write_json(&fresh.join("state.json"), state)?;
    let _ = std::fs::remove_dir_all(&old);
    if current.exists() {
        std::fs::rename(&current, &old)?;
    }
    std::fs::rename(&fresh, &current)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn write_history(out: &Path, history: &[EpochRecord]) -> Result<()> {
    let run = RunDir::new(out);
    dermrobust_core::report::write_csv(&run.history(), history)?;
    use dermrobust_core::report::plots::{line_plot, Series};
    let series = |name: &str, f: fn(&EpochRecord) -> f64| Series { name: name.into(), points: history.iter().map(|r| (r.epoch as f64, f(r))).collect(), dashed: false };
    let svg = line_plot("Training", "epoch", "value", &[series("train loss", |r| r.train_loss), series("validation loss", |r| r.val_loss), series("validation AUROC", |r| r.val_auroc), series("validation balanced accuracy", |r| r.val_balanced_accuracy)], false)?;
    dermrobust_core::report::atomic_write(&run.curves(), svg.as_bytes())
}

/// Whether the run in `out` trained to its end (all epochs, or stopped early), judged by its
/// last checkpoint; an interrupted run is not finished even though its best model exists.
pub fn training_finished(out: &Path) -> bool {
    read_json::<TrainState>(&RunDir::new(out).state()).is_ok_and(|s| s.stopped_early || s.epochs_done >= s.config.epochs)
}

