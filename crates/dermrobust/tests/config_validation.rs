//! Training and bench options outside their ranges are refused with the flag's name.

use dermrobust::commands::bench::BenchArgs;
use dermrobust::training::config::TrainConfig;

fn refused(edit: impl FnOnce(&mut TrainConfig)) -> String {
    let mut c = TrainConfig::default();
    edit(&mut c);
    format!("{:#}", c.validate().expect_err("the configuration should be refused"))
}

#[test]
fn defaults_are_valid() {
    TrainConfig::default().validate().unwrap();
    let mut c = TrainConfig::default();
    // Edge values that are allowed.
    c.dropout = 0.0;
    c.val_fraction = 0.0;
    c.test_fraction = 0.5;
    c.weight_decay = 0.0;
    c.focal_gamma = 0.0;
    c.image_size = 16;
    c.centre_crop = Some(1.0);
    c.max_batches = Some(1);
    c.clip_grad_norm = Some(0.5);
    c.validate().unwrap();
}

#[test]
fn each_bad_option_is_named_with_its_value() {
    let nan = f64::NAN;
    let cases: Vec<(Box<dyn FnOnce(&mut TrainConfig)>, &str)> = vec![
        (Box::new(|c| c.batch_size = 0), "--batch-size must be at least 1, got 0"),
        (Box::new(|c| c.epochs = 0), "--epochs must be at least 1, got 0"),
        (Box::new(|c| c.image_size = 8), "--image-size must be at least 16, got 8"),
        (Box::new(|c| c.dropout = 1.0), "--dropout must be in [0, 1), got 1"),
        (Box::new(|c| c.dropout = -0.1), "--dropout must be in [0, 1), got -0.1"),
        (Box::new(|c| c.lr = 0.0), "--lr must be a finite number greater than 0, got 0"),
        (Box::new(|c| c.lr = -0.01), "--lr must be a finite number greater than 0, got -0.01"),
        (Box::new(move |c| c.lr = nan), "--lr must be a finite number greater than 0, got NaN"),
        (Box::new(|c| c.lr = f64::INFINITY), "--lr must be a finite number greater than 0, got inf"),
        (Box::new(|c| c.width = 0.0), "--width must be a finite number greater than 0, got 0"),
        (Box::new(|c| c.val_fraction = 1.0), "--val-fraction must be in [0, 1), got 1"),
        (Box::new(|c| c.test_fraction = -0.2), "--test-fraction must be in [0, 1), got -0.2"),
        (
            Box::new(|c| {
                c.val_fraction = 0.5;
                c.test_fraction = 0.5;
            }),
            "--val-fraction + --test-fraction must be less than 1",
        ),
        (Box::new(|c| c.weight_decay = -1e-4), "--weight-decay must be a finite number of at least 0, got -0.0001"),
        (Box::new(|c| c.label_smoothing = 1.0), "--label-smoothing must be in [0, 1), got 1"),
        (Box::new(|c| c.focal_gamma = -2.0), "--focal-gamma must be a finite number of at least 0, got -2"),
        (Box::new(|c| c.momentum = 1.5), "--momentum must be in [0, 1), got 1.5"),
        (Box::new(|c| c.warmup = 1.0), "--warmup must be in [0, 1), got 1"),
        (Box::new(|c| c.step_epochs = 0), "--step-epochs must be at least 1, got 0"),
        (Box::new(|c| c.step_gamma = 0.0), "--step-gamma must be a finite number greater than 0, got 0"),
        (Box::new(|c| c.sgdr_cycle = 0), "--sgdr-cycle must be at least 1, got 0"),
        (Box::new(|c| c.sgdr_mult = 0), "--sgdr-mult must be at least 1, got 0"),
        (Box::new(|c| c.repeats = 0), "--repeats must be at least 1, got 0"),
        (Box::new(|c| c.max_batches = Some(0)), "--max-batches must be at least 1, got 0"),
        (Box::new(|c| c.centre_crop = Some(0.0)), "--centre-crop must be greater than 0 and at most 1, got 0"),
        (Box::new(|c| c.clip_grad_norm = Some(-1.0)), "--clip-grad-norm must be a finite number greater than 0, got -1"),
    ];
    for (edit, expected) in cases {
        let err = refused(edit);
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
    }
}

#[test]
fn several_problems_are_listed_together() {
    let err = refused(|c| {
        c.batch_size = 0;
        c.lr = 0.0;
    });
    assert!(err.contains("--batch-size") && err.contains("--lr") && err.lines().count() == 3, "{err}");
}

fn bench() -> BenchArgs {
    BenchArgs { arch: "resnet18".parse().unwrap(), width: 0.25, res: 32, batch: 4, iters: 3, classes: 2, anti_alias: false, json: true }
}

#[test]
fn bench_refuses_zero_iterations_and_empty_batches() {
    bench().validate().unwrap();
    let err = dermrobust::commands::bench::run(&BenchArgs { iters: 0, ..bench() }).unwrap_err().to_string();
    assert!(err.contains("--iters must be at least 1, got 0"), "{err}");
    let err = dermrobust::commands::bench::run(&BenchArgs { batch: 0, ..bench() }).unwrap_err().to_string();
    assert!(err.contains("--batch must be at least 1, got 0"), "{err}");
    assert!(BenchArgs { width: f64::NAN, ..bench() }.validate().unwrap_err().to_string().contains("--width"));
    assert!(BenchArgs { classes: 1, ..bench() }.validate().unwrap_err().to_string().contains("--classes"));
}
