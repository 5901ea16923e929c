//! Training end to end on small synthetic data: it learns, a killed run resumes, divergence is
//! caught, the learning-rate range test suggests a rate.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dermrobust::training::config::{AugmentPreset, LossKind, ScheduleKind};
use dermrobust::training::{prepare_data, train_one, TrainConfig};

fn small_config(cache: &Path) -> TrainConfig {
    TrainConfig {
        data: "synthetic:n=240,seed=5,photos=2,size=48".parse().unwrap(),
        width: 0.125,
        image_size: 32,
        epochs: 8,
        batch_size: 16,
        lr: 0.02,
        schedule: ScheduleKind::OneCycle,
        augment: AugmentPreset::Standard,
        cache_dir: Some(cache.to_path_buf()),
        ..TrainConfig::default()
    }
}

#[test]
fn a_small_model_learns_synthetic_lesions() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_config(&tmp.path().join("cache"));
    let data = prepare_data(&cfg, tmp.path(), true).unwrap();
    let result = train_one(&cfg, &data, tmp.path(), false, true).unwrap();
    let test = result.test.expect("test metrics");
    // Four classes: chance AUROC is 0.5; the ABCD signal is strong enough for well above it.
    assert!(test.macro_auroc.unwrap().estimate > 0.75, "macro AUROC {:?}", test.macro_auroc);
    for f in ["model/model.bpk", "model/model.json", "checkpoint/state.json", "checkpoint/optimizer.bpk", "history.csv", "training_curves.svg", "metrics.json", "predictions.csv", "split.json"] {
        assert!(tmp.path().join(f).is_file(), "{f} missing");
    }
    let history = std::fs::read_to_string(tmp.path().join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + cfg.epochs);
    // predictions.csv has one row per test image and probabilities that sum to one.
    let mut rows = csv::Reader::from_path(tmp.path().join("predictions.csv")).unwrap();
    let n = rows.records().map(|r| {
        let r = r.unwrap();
        let s: f64 = (4..r.len()).map(|i| r[i].parse::<f64>().unwrap()).sum();
        assert!((s - 1.0).abs() < 1e-3);
    }).count();
    assert_eq!(n, data.test.len());
}

#[test]
fn focal_loss_sgdr_oversampling_and_discriminative_rates_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small_config(&tmp.path().join("cache"));
    cfg.epochs = 3;
    cfg.loss = LossKind::Focal;
    cfg.schedule = ScheduleKind::Sgdr;
    cfg.oversample = true;
    cfg.discriminative_lr = true;
    cfg.freeze_epochs = 1;
    cfg.augment = AugmentPreset::Strong;
    cfg.class_weights = dermrobust::training::config::ClassWeighting::Balanced;
    cfg.clip_grad_norm = Some(1.0);
    let data = prepare_data(&cfg, tmp.path(), true).unwrap();
    let r = train_one(&cfg, &data, tmp.path(), false, true).unwrap();
    // This recipe learns (chance is 0.5), and SGDR restarts its learning rate: the rate at the
    // end of the first cycle is below the one after the restart.
    assert!(r.best_val_auroc > 0.55, "validation AUROC {} (chance: 0.5)", r.best_val_auroc);
    let history = std::fs::read_to_string(tmp.path().join("history.csv")).unwrap();
    let lrs: Vec<f64> = history.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    assert!(lrs.windows(2).any(|w| w[1] > w[0]), "no warm restart in {lrs:?}");
}

#[test]
fn divergence_stops_with_a_message_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small_config(&tmp.path().join("cache"));
    cfg.epochs = 3;
    cfg.schedule = ScheduleKind::Step;
    cfg.step_epochs = 1;
    cfg.step_gamma = 1e12; // epoch 2 trains at lr 1e10: the loss overflows
    let data = prepare_data(&cfg, tmp.path(), true).unwrap();
    let err = format!("{:#}", train_one(&cfg, &data, tmp.path(), false, true).err().expect("training must fail"));
    assert!(err.contains("diverged") && err.contains("after epoch 1"), "{err}");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["epochs_done"], 1);
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "train", "--quiet", "--data", "synthetic:n=240,seed=5,photos=2,size=48", "--width", "0.125", "--image-size", "32",
            "--epochs", "5", "--batch-size", "16", "--lr", "0.02", "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(out.display().to_string());
        a.push("--cache-dir".into());
        a.push(tmp.path().join("cache").display().to_string());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let exe = env!("CARGO_BIN_EXE_dermrobust");
    let mut child = Command::new(exe).args(args(&[])).spawn().unwrap();
    let state = out.join("checkpoint/state.json");
    let started = Instant::now();
    while !state.is_file() {
        assert!(started.elapsed() < Duration::from_secs(300), "no checkpoint after 5 minutes");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training ended ({status}) before it could be interrupted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL mid-run
    child.wait().unwrap();
    let done_before: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let done_before = done_before["epochs_done"].as_u64().unwrap();
    assert!(done_before < 5, "the run finished before it was killed");
    assert!(!dermrobust::training::trainer::training_finished(&out), "an interrupted run is not finished");
    let output = Command::new(exe).args(args(&["--resume"])).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(state["epochs_done"], 5);
    assert_eq!(state["history"].as_array().unwrap().len(), 5, "history keeps the epochs before the kill");
    assert!(out.join("metrics.json").is_file());
    assert!(dermrobust::training::trainer::training_finished(&out));
    // Resuming with other options is refused.
    let output = Command::new(exe).args(args(&["--resume", "--seed", "9"])).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("configuration differs"));
}

#[test]
fn lr_range_test_writes_a_curve_and_a_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_config(&tmp.path().join("cache"));
    dermrobust::commands::lr_find::run(&cfg, tmp.path(), 1e-4, 10.0, 100, true).unwrap();
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("lr_find.json")).unwrap()).unwrap();
    let lr = result["suggested_lr"].as_f64().unwrap();
    // The suggestion lies where the loss falls: below the learning rate of the lowest loss, with
    // a smoothed loss lower than at the start of the range.
    let points = result["points"].as_array().unwrap();
    let loss_at = |p: &serde_json::Value| p["smoothed_loss"].as_f64().unwrap();
    let lowest = points.iter().min_by(|a, b| loss_at(a).total_cmp(&loss_at(b))).unwrap();
    assert!(lr < lowest["lr"].as_f64().unwrap(), "suggested {lr} is past the minimum at {}", lowest["lr"]);
    // The range test found a valley: the smoothed loss falls below where it started.
    assert!(loss_at(lowest) < loss_at(&points[0]), "no descent anywhere in the range");
    assert!(std::fs::read_to_string(tmp.path().join("lr_find.svg")).unwrap().contains("<svg"));
}

#[test]
fn toml_configuration_merges_with_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(&file, "epochs = 7\nlr = 0.3\narch = \"vgg16-gap\"\ndata = \"synthetic:n=50\"\nclip_grad_norm = 2.5\n").unwrap();
    use clap::{CommandFactory, FromArgMatches, Parser};
    #[derive(Parser)]
    struct W {
        #[command(flatten)]
        c: TrainConfig,
    }
    let m = W::command().get_matches_from(["x", "--lr", "0.1"]);
    let mut c = W::from_arg_matches(&m).unwrap().c;
    c.merge_toml(&file, &m).unwrap();
    assert_eq!(c.epochs, 7);
    assert_eq!(c.lr, 0.1, "the flag wins over the file");
    assert_eq!(c.arch.to_string(), "vgg16-gap");
    assert_eq!(c.clip_grad_norm, Some(2.5));
    std::fs::write(&file, "epochz = 7\n").unwrap();
    assert!(c.merge_toml(&file, &m).unwrap_err().to_string().contains("unknown option 'epochz'"));
}

#[test]
fn early_stopping_and_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small_config(&tmp.path().join("cache"));
    cfg.schedule = ScheduleKind::Constant;
    cfg.lr = 1e-12; // weights (nearly) stay; only batch-norm statistics move, so AUROC soon plateaus
    cfg.patience = 1;
    let data = prepare_data(&cfg, tmp.path(), true).unwrap();
    let r = train_one(&cfg, &data, &tmp.path().join("stop"), false, true).unwrap();
    let history = std::fs::read_to_string(tmp.path().join("stop/history.csv")).unwrap();
    let epochs_run = history.lines().count() - 1;
    assert_eq!(epochs_run, (r.best_epoch + cfg.patience).min(cfg.epochs), "runs exactly `patience` epochs past the best");
    assert!(epochs_run < cfg.epochs, "a model that cannot learn stops early ({epochs_run} epochs, best {})", r.best_epoch);
    // An early-stopped run counts as finished, and resuming it trains no further.
    assert!(dermrobust::training::trainer::training_finished(&tmp.path().join("stop")));
    train_one(&cfg, &data, &tmp.path().join("stop"), true, true).unwrap();
    let history = std::fs::read_to_string(tmp.path().join("stop/history.csv")).unwrap();
    assert_eq!(history.lines().count() - 1, epochs_run);

    let mut cfg = small_config(&tmp.path().join("cache"));
    cfg.epochs = 2;
    cfg.repeats = 2;
    let results = dermrobust::commands::train::run(&cfg, &tmp.path().join("rep"), false, true).unwrap();
    assert_eq!(results.len(), 2);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("rep/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"], 2);
    assert_eq!(summary["seeds"], serde_json::json!([1, 2]));
    let (mean, std) = (summary["test_macro_auroc"][0].as_f64().unwrap(), summary["test_macro_auroc"][1].as_f64().unwrap());
    let a: Vec<f64> = results.iter().map(|r| r.test.as_ref().unwrap().macro_auroc.unwrap().estimate).collect();
    assert!((mean - (a[0] + a[1]) / 2.0).abs() < 1e-12);
    assert!((std - (a[0] - a[1]).abs() / 2f64.sqrt()).abs() < 1e-9);
    assert!(tmp.path().join("rep/run1/model/model.json").is_file() && tmp.path().join("rep/manifest.json").is_file());
}

/// Batches carry the lesion masks, moved by the same augmentation as their images: under random
/// rotations, zooms and flips the (dark) lesion stays inside its mask. The same batch without
/// augmentation gives the set's own masks.
#[test]
fn batches_carry_masks_moved_with_their_images() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_config(&tmp.path().join("cache"));
    let data = dermrobust::training::prepare_data_with_masks(&cfg, tmp.path(), true, true).unwrap();
    assert!(data.set.has_masks());
    let indices: Vec<usize> = data.train[..16].to_vec();
    let plain = dermrobust::training::batch::build(&data.set, &indices, AugmentPreset::None, 1, 0);
    let masks = plain.masks.as_ref().expect("masks in the batch");
    let plane = 32 * 32;
    for (k, &i) in indices.iter().enumerate() {
        assert_eq!(&masks[k * plane..(k + 1) * plane], data.set.mask(i).unwrap().data.as_slice());
    }
    let moved = dermrobust::training::batch::build(&data.set, &indices, AugmentPreset::Strong, 3, 0);
    let masks = moved.masks.as_ref().unwrap();
    assert!(moved.has_mask.iter().all(|&m| m));
    let mut changed = 0;
    for k in 0..indices.len() {
        let mask = &masks[k * plane..(k + 1) * plane];
        if mask != data.set.mask(indices[k]).unwrap().data.as_slice() {
            changed += 1;
        }
        // Mean luminance inside and outside the mask.
        let luma = |p: usize| (0..3).map(|c| moved.pixels[(k * 3 + c) * plane + p]).sum::<f32>() / 3.0;
        let (mut inside, mut n_in, mut outside, mut n_out) = (0.0, 0, 0.0, 0);
        for p in 0..plane {
            if mask[p] > 0.5 {
                inside += luma(p);
                n_in += 1;
            } else if mask[p] < 0.01 {
                outside += luma(p);
                n_out += 1;
            }
        }
        if n_in > 10 && n_out > 10 {
            assert!(inside / (n_in as f32) < outside / (n_out as f32), "image {k}: the lesion left its mask");
        }
    }
    assert!(changed > 8, "augmentation moved only {changed} of 16 masks");
}

/// A loss term added to training sees the batch's masks and its value enters the training loss.
#[test]
fn extra_loss_terms_see_masks_and_enter_the_loss() {
    use burn::prelude::*;
    use dermrobust::models::ModelOutput;
    use dermrobust::training::loss::{BatchTargets, LossTerm};
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Constant {
        calls: AtomicUsize,
    }
    impl LossTerm for Constant {
        fn name(&self) -> String {
            "constant".into()
        }
        fn needs_masks(&self) -> bool {
            true
        }
        fn forward(&self, output: &ModelOutput, targets: &BatchTargets) -> Tensor<1> {
            let masks = targets.masks.clone().expect("masks");
            assert_eq!(masks.dims()[0], targets.labels.len());
            assert_eq!(output.logits.dims()[0], targets.labels.len());
            self.calls.fetch_add(1, Ordering::SeqCst);
            // 3 + 0 x mean(mask): a constant that the training loss must show.
            (masks.mean() * 0.0 + 3.0).reshape([1])
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = small_config(&tmp.path().join("cache"));
    cfg.epochs = 1;
    let plain = prepare_data(&cfg, tmp.path(), true).unwrap();
    let term: Vec<Box<dyn LossTerm>> = vec![Box::new(Constant { calls: AtomicUsize::new(0) })];
    let err = dermrobust::training::train_one_with_terms(&cfg, &plain, &tmp.path().join("no-masks"), false, true, &term).err().unwrap();
    assert!(err.to_string().contains("needs lesion masks"), "{err}");
    let data = dermrobust::training::prepare_data_with_masks(&cfg, tmp.path(), true, true).unwrap();
    dermrobust::training::train_one_with_terms(&cfg, &data, &tmp.path().join("run"), false, true, &term).unwrap();
    let history = std::fs::read_to_string(tmp.path().join("run/history.csv")).unwrap();
    let train_loss: f64 = history.lines().nth(1).unwrap().split(',').nth(2).unwrap().parse().unwrap();
    assert!(train_loss > 3.0, "training loss {train_loss} lacks the term");
}
