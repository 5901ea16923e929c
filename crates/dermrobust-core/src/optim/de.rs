//! Differential evolution (Storn & Price 1997) as scipy's `differential_evolution` runs it with
//! `strategy='best1bin'`, `init='latinhypercube'` and `updating='deferred'` (the mode scipy uses
//! with `workers > 1`, as Du-Harpur et al. ran it): each generation's trial population is built
//! first and evaluated as one batch, which is what makes an attack on a neural network fast (one
//! batched forward pass per generation).
//!
//! Per generation: one mutation factor `F` dithered uniformly in `mutation`; for every member `i`,
//! the mutant `best + F (x_r1 - x_r2)` (r1 != r2 != i), binomial crossover with probability
//! `recombination` (at least one coordinate from the mutant), coordinates outside the bounds
//! re-drawn uniformly; a trial replaces its parent when its value is lower. The search stops when
//! `stop` says so after a generation (an attack's success), when the population's values
//! converge (`std <= atol + tol |mean|`), or after `max_generations`.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Settings of the optimiser. Defaults are scipy's (`popsize=15`, `mutation=(0.5, 1)`,
/// `recombination=0.7`, `tol=0.01`, `maxiter=1000`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeConfig {
    /// Population size as a multiple of the number of dimensions (scipy's `popsize`); at least 5
    /// members.
    pub popsize: usize,
    /// Generations after the initial population, at most (scipy's `maxiter`).
    pub max_generations: usize,
    /// Range of the dithered mutation factor `F`.
    pub mutation: (f64, f64),
    /// Crossover probability.
    pub recombination: f64,
    /// Relative convergence tolerance.
    pub tol: f64,
    /// Absolute convergence tolerance.
    pub atol: f64,
    /// Stop after this many function evaluations at most (a query budget); `None`: no limit.
    pub max_evaluations: Option<usize>,
    pub seed: u64,
}

impl Default for DeConfig {
    fn default() -> Self {
        DeConfig { popsize: 15, max_generations: 1000, mutation: (0.5, 1.0), recombination: 0.7, tol: 0.01, atol: 0.0, max_evaluations: None, seed: 0 }
    }
}

/// Why the search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeStop {
    /// The caller's stop condition held (e.g. the attack succeeded).
    Stopped,
    /// The population's values converged.
    Converged,
    /// `max_generations` or the evaluation budget ran out.
    Budget,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeResult {
    /// The best point found, in the caller's units.
    pub x: Vec<f64>,
    /// Its value.
    pub fun: f64,
    /// Function evaluations made (queries).
    pub evaluations: usize,
    /// Generations after the initial population.
    pub generations: usize,
    pub stop: DeStop,
}

impl DeConfig {
    pub fn validate(&self) -> Result<()> {
        if self.popsize == 0 {
            bail!("differential evolution: popsize must be at least 1");
        }
        let (lo, hi) = self.mutation;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi && hi <= 2.0) {
            bail!("differential evolution: mutation must be 0 <= low <= high <= 2, got ({lo}, {hi})");
        }
        if !(0.0..=1.0).contains(&self.recombination) {
            bail!("differential evolution: recombination must be in [0, 1], got {}", self.recombination);
        }
        if !(self.tol >= 0.0 && self.atol >= 0.0) {
            bail!("differential evolution: tolerances must be non-negative");
        }
        if self.max_evaluations == Some(0) {
            bail!("differential evolution: the evaluation budget must be at least 1");
        }
        Ok(())
    }
}

/// Minimise a function over a box. `evaluate` gets a batch of points (in the caller's units) and
/// returns their values; `stop` is asked after every generation with the best point and value.
pub fn minimise<F, S>(bounds: &[(f64, f64)], config: &DeConfig, mut evaluate: F, mut stop: S) -> Result<DeResult>
where
    F: FnMut(&[Vec<f64>]) -> Result<Vec<f64>>,
    S: FnMut(&[f64], f64) -> bool,
{
    config.validate()?;
    let dims = bounds.len();
    if dims == 0 {
        bail!("differential evolution needs at least one dimension");
    }
    if let Some((i, b)) = bounds.iter().enumerate().find(|(_, (lo, hi))| !(lo.is_finite() && hi.is_finite() && lo <= hi)) {
        bail!("differential evolution: bound {i} {b:?} is not a finite interval");
    }
    let n = (config.popsize * dims).max(5);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let scale = |unit: &[f64]| -> Vec<f64> { unit.iter().zip(bounds).map(|(u, (lo, hi))| lo + u * (hi - lo)).collect() };
    let mut evaluations = 0usize;
    let mut eval_batch = |unit: &[Vec<f64>], evaluations: &mut usize| -> Result<Vec<f64>> {
        let points: Vec<Vec<f64>> = unit.iter().map(|u| scale(u)).collect();
        let values = evaluate(&points)?;
        if values.len() != points.len() {
            bail!("differential evolution: {} values for {} points", values.len(), points.len());
        }
        *evaluations += points.len();
        // NaN is no better than anything.
        Ok(values.into_iter().map(|v| if v.is_nan() { f64::INFINITY } else { v }).collect())
    };

    // Latin hypercube initialisation: one point per stratum in every dimension.
    let mut population: Vec<Vec<f64>> = vec![vec![0.0; dims]; n];
    for d in 0..dims {
        let mut strata: Vec<usize> = (0..n).collect();
        strata.shuffle(&mut rng);
        for (member, &s) in population.iter_mut().zip(&strata) {
            member[d] = (s as f64 + rng.random::<f64>()) / n as f64;
        }
    }
    let mut energies = eval_batch(&population, &mut evaluations)?;
    promote_best(&mut population, &mut energies);

    let mut generations = 0;
    let over_budget = |e: usize| config.max_evaluations.is_some_and(|m| e + n > m);
    let finish = |population: &[Vec<f64>], energies: &[f64], evaluations, generations, stop| DeResult { x: scale(&population[0]), fun: energies[0], evaluations, generations, stop };
    if stop(&scale(&population[0]), energies[0]) {
        return Ok(finish(&population, &energies, evaluations, generations, DeStop::Stopped));
    }
    while generations < config.max_generations && !over_budget(evaluations) {
        let f = if config.mutation.0 == config.mutation.1 { config.mutation.0 } else { rng.random_range(config.mutation.0..config.mutation.1) };
        let trials: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let (r1, r2) = two_others(&mut rng, n, i);
                let fill_point = rng.random_range(0..dims);
                (0..dims)
                    .map(|d| {
                        let v = if d == fill_point || rng.random::<f64>() < config.recombination { population[0][d] + f * (population[r1][d] - population[r2][d]) } else { population[i][d] };
                        if (0.0..=1.0).contains(&v) { v } else { rng.random::<f64>() }
                    })
                    .collect()
            })
            .collect();
        let trial_energies = eval_batch(&trials, &mut evaluations)?;
        for (i, (t, e)) in trials.into_iter().zip(trial_energies).enumerate() {
            if e < energies[i] {
                population[i] = t;
                energies[i] = e;
            }
        }
        promote_best(&mut population, &mut energies);
        generations += 1;
        if stop(&scale(&population[0]), energies[0]) {
            return Ok(finish(&population, &energies, evaluations, generations, DeStop::Stopped));
        }
        if converged(&energies, config) {
            return Ok(finish(&population, &energies, evaluations, generations, DeStop::Converged));
        }
    }
    Ok(finish(&population, &energies, evaluations, generations, DeStop::Budget))
}

/// Two distinct members other than `i`.
fn two_others(rng: &mut ChaCha8Rng, n: usize, i: usize) -> (usize, usize) {
    let pick = |rng: &mut ChaCha8Rng, avoid: &[usize]| loop {
        let k = rng.random_range(0..n);
        if !avoid.contains(&k) {
            return k;
        }
    };
    let r1 = pick(rng, &[i]);
    let r2 = pick(rng, &[i, r1]);
    (r1, r2)
}

/// Move the lowest value to the front (the `best` of best1bin).
fn promote_best(population: &mut [Vec<f64>], energies: &mut [f64]) {
    let best = energies.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
    population.swap(0, best);
    energies.swap(0, best);
}

fn converged(energies: &[f64], config: &DeConfig) -> bool {
    if energies.iter().any(|e| !e.is_finite()) {
        return false;
    }
    let n = energies.len() as f64;
    let mean = energies.iter().sum::<f64>() / n;
    let sd = (energies.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / n).sqrt();
    sd <= config.atol + config.tol * mean.abs()
}
