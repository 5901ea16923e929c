//! The adversarial audit's options, shared by `audit adversarial` and `experiment --audit
//! adversarial`, and how they become an [`Adversarial`] audit.

use std::path::Path;

use anyhow::{bail, Result};

use super::{gradient_sources, sweep, Adversarial, Attack, EvolutionAttack, Fgsm, LossGradient, Norm, Pgd, Search, TargetImages};

#[derive(clap::Args, Clone, Debug)]
pub struct AttackOptions {
    /// Attacks, comma-separated: fgsm, pgd (white-box, need a differentiable model), pixels,
    /// colour, geometry (black-box differential evolution, any model).
    #[arg(long, value_delimiter = ',', default_value = "fgsm,pgd,pixels,colour,geometry")]
    pub attacks: Vec<String>,
    /// Budgets of the gradient attacks, in [0, 1] pixel units (L∞: the largest change of a pixel
    /// value; L2: the norm over the whole image), comma-separated: one FGSM and one PGD per value.
    #[arg(long, value_delimiter = ',', default_value = "0.001,0.002,0.004,0.008,0.016")]
    pub eps: Vec<f32>,
    /// The norm of the gradient attacks' budgets.
    #[arg(long, value_enum, default_value_t = Norm::Linf)]
    pub norm: Norm,
    /// PGD steps.
    #[arg(long, default_value_t = 10)]
    pub pgd_steps: usize,
    /// PGD step size as a fraction of epsilon (torchattacks' default alpha = 2/255 for eps = 8/255
    /// is 0.25).
    #[arg(long, default_value_t = 0.25)]
    pub pgd_step_fraction: f32,
    /// Extra PGD random restarts for images not fooled yet.
    #[arg(long, default_value_t = 0)]
    pub pgd_restarts: usize,
    /// Start PGD at the clean image instead of a random point of the ball.
    #[arg(long)]
    pub no_random_start: bool,
    /// Which images are attacked.
    #[arg(long = "attack-images", value_enum, default_value_t = TargetImages::CorrectPositive)]
    pub images: TargetImages,
    /// A targeted attack towards this class (e.g. nv); default: untargeted (away from the
    /// original decision).
    #[arg(long)]
    pub target_class: Option<String>,
    /// Pixels changed by the few-pixel attack (Du-Harpur: 3).
    #[arg(long, default_value_t = 3)]
    pub pixels: usize,
    /// Range of the colour attack's per-channel gains (Du-Harpur: 0.9 to 1.1).
    #[arg(long, value_delimiter = ',', default_value = "0.9,1.1")]
    pub colour_gain: Vec<f32>,
    /// Largest rotation of the geometry attack, in degrees (Du-Harpur: 360).
    #[arg(long, default_value_t = 360.0)]
    pub max_degrees: f32,
    /// Largest translation of the geometry attack as a fraction of the side in each direction
    /// (Du-Harpur: 50 px of 299).
    #[arg(long, default_value_t = 50.0 / 299.0)]
    pub max_shift: f32,
    /// Differential-evolution population per dimension (Du-Harpur: 20).
    #[arg(long, default_value_t = 20)]
    pub popsize: usize,
    /// Differential-evolution generations after the first, at most (Du-Harpur: 21).
    #[arg(long, default_value_t = 21)]
    pub generations: usize,
    /// Query budget per image of the black-box attacks.
    #[arg(long)]
    pub max_queries: Option<usize>,
    /// Black-box searches stop early once the decision has flipped with at least this
    /// probability (Du-Harpur: 0.9).
    #[arg(long, default_value_t = 0.9)]
    pub stop_confidence: f32,
    /// Skip the colour-offset and rotation sweeps over all images.
    #[arg(long)]
    pub no_sweeps: bool,
    /// Largest colour offset of the sweeps, in units of 255 (Du-Harpur: 20), and its step.
    #[arg(long, default_value_t = 20)]
    pub sweep_offset: i32,
    #[arg(long, default_value_t = 5)]
    pub sweep_offset_step: i32,
    /// Rotation step of the sweeps in degrees (Du-Harpur: 15).
    #[arg(long, default_value_t = 15.0)]
    pub sweep_angle_step: f32,
    /// Seed of the attacks' random starts and searches.
    #[arg(long, default_value_t = 0)]
    pub attack_seed: u64,
}

impl AttackOptions {
    /// The attacks these options describe, and their settings as JSON.
    pub fn attacks(&self) -> Result<(Vec<Box<dyn Attack>>, serde_json::Value)> {
        let mut attacks: Vec<Box<dyn Attack>> = Vec::new();
        let mut settings = Vec::new();
        if self.eps.iter().any(|e| !(*e > 0.0 && *e <= 1.0)) {
            bail!("--eps values must be in (0, 1], got {:?}", self.eps);
        }
        if !(self.pgd_step_fraction > 0.0 && self.pgd_step_fraction <= 1.0) {
            bail!("--pgd-step-fraction must be in (0, 1], got {}", self.pgd_step_fraction);
        }
        if self.popsize == 0 || self.generations == 0 {
            bail!("--popsize and --generations must be at least 1");
        }
        if self.colour_gain.len() != 2 {
            bail!("--colour-gain takes two values LOW,HIGH, got {:?}", self.colour_gain);
        }
        let evolution = |search: Search| EvolutionAttack { search, popsize: self.popsize, max_generations: self.generations, max_queries: self.max_queries, stop_confidence: self.stop_confidence };
        for name in &self.attacks {
            match name.as_str() {
                "fgsm" => {
                    for &eps in &self.eps {
                        let a = Fgsm { eps, norm: self.norm };
                        settings.push(serde_json::json!({ "fgsm": a }));
                        attacks.push(Box::new(a));
                    }
                }
                "pgd" => {
                    for &eps in &self.eps {
                        let a = Pgd { eps, alpha: eps * self.pgd_step_fraction, steps: self.pgd_steps, random_start: !self.no_random_start, restarts: self.pgd_restarts, norm: self.norm };
                        settings.push(serde_json::json!({ "pgd": a }));
                        attacks.push(Box::new(a));
                    }
                }
                "pixels" | "colour" | "color" | "geometry" => {
                    let search = match name.as_str() {
                        "pixels" => Search::Pixels { count: self.pixels },
                        "geometry" => Search::Geometry { max_degrees: self.max_degrees, max_shift: self.max_shift },
                        _ => Search::Colour { low: self.colour_gain[0], high: self.colour_gain[1] },
                    };
                    let a = evolution(search);
                    settings.push(serde_json::json!({ "evolution": a }));
                    attacks.push(Box::new(a));
                }
                other => bail!("unknown attack '{other}' (choose fgsm, pgd, pixels, colour, geometry)"),
            }
        }
        if attacks.is_empty() && self.no_sweeps {
            bail!("nothing to do: no attack and --no-sweeps");
        }
        Ok((attacks, serde_json::Value::Array(settings)))
    }
}


impl AttackOptions {
    /// The audit for classifiers with `classes`, whose gradients are `gradients` (one per
    /// classifier; empty when no attack needs them), writing perturbations under `out`.
    pub fn audit(&self, classes: &[String], gradients: Vec<Option<Box<dyn LossGradient>>>, out: &Path) -> Result<Adversarial> {
        let (attacks, attack_settings) = self.attacks()?;
        let target_class = match &self.target_class {
            Some(name) => Some(classes.iter().position(|c| c == name).ok_or_else(|| anyhow::anyhow!("--target-class {name} is not one of the model's classes {classes:?}"))?),
            None => None,
        };
        Ok(Adversarial {
            attacks,
            images: self.images,
            target_class,
            sweeps: if self.no_sweeps { vec![] } else { sweep::settings(self.sweep_offset, self.sweep_offset_step, self.sweep_angle_step) },
            gradients: std::sync::Mutex::new(gradients),
            delta_dir: std::sync::Mutex::new(std::path::absolute(out)?.join("perturbations")),
            seed: self.attack_seed,
            attack_settings,
        })
    }

    /// Whether any chosen attack needs gradients.
    pub fn needs_gradients(&self) -> bool {
        self.attacks.iter().any(|a| a == "fgsm" || a == "pgd")
    }

    /// The audit of `subject`'s models, with their gradients where an attack needs them.
    pub fn audit_for(&self, subject: &crate::audits::AuditSubject, out: &Path) -> Result<Adversarial> {
        let gradients = if self.needs_gradients() { gradient_sources(&subject.models, subject.ensemble, subject.tta.as_ref())? } else { vec![] };
        if self.needs_gradients() && gradients.iter().any(Option::is_none) {
            bail!("{}", crate::evaluation::gradients::no_gradients_message(&subject.models[0], "the gradient attacks (fgsm, pgd)"));
        }
        let (_, info) = crate::evaluation::load_model(&subject.models[0])?;
        self.audit(&info.classes, gradients, out)
    }
}
