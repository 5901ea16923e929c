//! The differential-evolution optimiser against scipy's on standard test functions
//! (`tools/reference/de_reference.py`, scipy with the same strategy, initialisation and deferred
//! updating): it finds the known optima as often and with a comparable number of evaluations;
//! each generation is one batch; the stop condition and the query budget are honoured.

use dermrobust_core::optim::{minimise, DeConfig, DeStop};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    problems: Vec<Problem>,
}

#[derive(Deserialize)]
struct Problem {
    function: String,
    bounds: Vec<(f64, f64)>,
    optimum: f64,
    success_rate: f64,
    median_evaluations: f64,
}

fn function(name: &str) -> fn(&[f64]) -> f64 {
    match name {
        "sphere" => |x| x.iter().map(|v| v * v).sum(),
        "rosenbrock" => |x| x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum(),
        "rastrigin" => |x| 10.0 * x.len() as f64 + x.iter().map(|v| v * v - 10.0 * (2.0 * std::f64::consts::PI * v).cos()).sum::<f64>(),
        "ackley" => |x| {
            let n = x.len() as f64;
            let s1 = x.iter().map(|v| v * v).sum::<f64>() / n;
            let s2 = x.iter().map(|v| (2.0 * std::f64::consts::PI * v).cos()).sum::<f64>() / n;
            -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
        },
        other => panic!("unknown function {other}"),
    }
}

#[test]
fn finds_the_optima_like_scipy() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/de_reference.json");
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for p in &reference.problems {
        let f = function(&p.function);
        let mut evaluations = Vec::new();
        let mut successes = 0;
        for seed in 0..20 {
            let config = DeConfig { seed, ..DeConfig::default() };
            let r = minimise(&p.bounds, &config, |batch| Ok(batch.iter().map(|x| f(x)).collect()), |_, _| false).unwrap();
            assert!(r.x.iter().zip(&p.bounds).all(|(v, (lo, hi))| v >= lo && v <= hi), "{}: left the bounds", p.function);
            assert!((f(&r.x) - r.fun).abs() < 1e-12);
            evaluations.push(r.evaluations as f64);
            successes += usize::from((r.fun - p.optimum).abs() < 1e-4);
        }
        evaluations.sort_by(f64::total_cmp);
        let median = evaluations[evaluations.len() / 2];
        let rate = successes as f64 / 20.0;
        let what = format!("{} in {} dimensions: success {rate} (scipy {}), median evaluations {median} (scipy {})", p.function, p.bounds.len(), p.success_rate, p.median_evaluations);
        println!("{what}");
        assert!(rate >= p.success_rate - 0.15, "{what}");
        assert!(median <= 1.6 * p.median_evaluations && median >= p.median_evaluations / 1.6, "{what}");
    }
}

#[test]
fn each_generation_is_one_batch_and_stop_and_budget_hold() {
    let bounds = vec![(-5.0, 5.0); 3];
    let mut batch_sizes = Vec::new();
    let config = DeConfig { popsize: 10, seed: 1, ..DeConfig::default() };
    // Stop as soon as the best value is below 1: the search stops there, early.
    let r = minimise(
        &bounds,
        &config,
        |batch| {
            batch_sizes.push(batch.len());
            Ok(batch.iter().map(|x| x.iter().map(|v| v * v).sum()).collect())
        },
        |_, best| best < 1.0,
    )
    .unwrap();
    assert_eq!(r.stop, DeStop::Stopped);
    assert!(r.fun < 1.0);
    assert!(batch_sizes.iter().all(|&b| b == 30), "{batch_sizes:?}");
    assert_eq!(r.evaluations, batch_sizes.iter().sum::<usize>());
    assert_eq!(r.generations + 1, batch_sizes.len());
    // A query budget: never more evaluations than allowed.
    let budget = DeConfig { popsize: 10, seed: 1, max_evaluations: Some(100), ..DeConfig::default() };
    let r = minimise(&bounds, &budget, |b| Ok(b.iter().map(|x| x[0].abs()).collect()), |_, _| false).unwrap();
    assert_eq!(r.stop, DeStop::Budget);
    assert!(r.evaluations <= 100, "{}", r.evaluations);
    // The same seed gives the same search.
    let again = minimise(&bounds, &budget, |b| Ok(b.iter().map(|x| x[0].abs()).collect()), |_, _| false).unwrap();
    assert_eq!(r, again);
}

#[test]
fn bad_settings_are_errors() {
    let f = |b: &[Vec<f64>]| Ok(b.iter().map(|_| 0.0).collect());
    assert!(minimise(&[], &DeConfig::default(), f, |_, _| false).is_err());
    assert!(minimise(&[(1.0, 0.0)], &DeConfig::default(), f, |_, _| false).is_err());
    assert!(minimise(&[(0.0, f64::INFINITY)], &DeConfig::default(), f, |_, _| false).is_err());
    assert!(minimise(&[(0.0, 1.0)], &DeConfig { recombination: 1.5, ..DeConfig::default() }, f, |_, _| false).is_err());
    assert!(minimise(&[(0.0, 1.0)], &DeConfig { popsize: 0, ..DeConfig::default() }, f, |_, _| false).is_err());
}
