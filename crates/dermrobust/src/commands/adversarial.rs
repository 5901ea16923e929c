//! `dermrobust audit adversarial`: parse the attack options and run the adversarial audit.

use anyhow::{bail, Result};

use super::AuditModelArgs;
use crate::audits::adversarial::{gradient_sources, sweep, Adversarial, Attack, EvolutionAttack, Fgsm, Norm, Pgd, Search, TargetImages};

#[derive(clap::Args, Clone)]
pub struct AdversarialArgs {
    #[command(flatten)]
    pub common: AuditModelArgs,
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
    #[arg(long, value_enum, default_value_t = TargetImages::CorrectPositive)]
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
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl AdversarialArgs {
    fn attacks(&self) -> Result<(Vec<Box<dyn Attack>>, serde_json::Value)> {
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

pub fn run(a: &AdversarialArgs, quiet: bool) -> Result<()> {
    let subject = a.common.subject()?;
    let (attacks, attack_settings) = a.attacks()?;
    let needs_gradients = attacks.iter().any(|x| x.kind() == "gradient");
    let gradients = if needs_gradients { gradient_sources(&subject)? } else { vec![] };
    if needs_gradients && gradients.iter().any(Option::is_none) {
        bail!("{}", crate::evaluation::gradients::no_gradients_message(&subject.models[0], "the gradient attacks (fgsm, pgd)"));
    }
    let (_, info) = crate::evaluation::load_model(&subject.models[0])?;
    let target_class = match &a.target_class {
        Some(name) => Some(info.classes.iter().position(|c| c == name).ok_or_else(|| anyhow::anyhow!("--target-class {name} is not one of the model's classes {:?}", info.classes))?),
        None => None,
    };
    let audit = Adversarial {
        attacks,
        images: a.images,
        target_class,
        sweeps: if a.no_sweeps { vec![] } else { sweep::settings(a.sweep_offset, a.sweep_offset_step, a.sweep_angle_step) },
        gradients,
        delta_dir: std::path::absolute(&a.common.out)?.join("perturbations"),
        seed: a.seed,
        attack_settings,
    };
    let outcome = subject.run(&audit, &a.common.out, a.common.resume, quiet)?;
    for m in &outcome.results {
        println!("{}: {} of {} images attacked", m.model, m.targets, m.images);
        for r in &m.attacks {
            println!(
                "  {:<28} {:>4}/{:<4} {:>6}  median queries {}",
                r.attack,
                r.successes,
                r.attempted,
                r.success_rate.map_or("–".into(), |c| format!("{:.1}%", 100.0 * c.estimate)),
                r.median_queries.map_or("–".into(), |q| format!("{q:.0}"))
            );
        }
        if let Some(base) = m.sweeps.first() {
            let worst = m.sweeps.iter().max_by_key(|s| s.false_negatives).unwrap_or(base);
            println!("  sweeps: {} false negatives unperturbed; most under '{}': {}", base.false_negatives, worst.setting, worst.false_negatives);
        }
    }
    println!("wrote {}/adversarial.json, adversarial_per_image.csv and report.html", a.common.out.display());
    Ok(())
}
