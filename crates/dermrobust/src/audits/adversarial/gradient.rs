//! White-box attacks: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018), in L-infinity or
//! L2, untargeted or targeted, as torchattacks implements them (`FGSM`, `PGD`, `PGDL2`), in pixel
//! units of the raw `[0, 1]` image, always clipped to `[0, 1]`. The adversarial image is recorded
//! as a dense perturbation (`ImageOp::AddDelta` over a `.npy` file) that replays exactly.

use anyhow::{bail, Context, Result};
use dermrobust_core::imaging::npy::write_npy;
use dermrobust_core::imaging::{Image, ImageOp};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::attack::{judge, Attack, AttackContext, AttackOutcome, Goal, LossGradient, Victim};

/// The norm a gradient attack's budget is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    Linf,
    L2,
}

impl Norm {
    fn name(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
        }
    }
}

/// Fast gradient sign method (L-infinity) or fast gradient method (L2): one step of size `eps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fgsm {
    pub eps: f32,
    pub norm: Norm,
}

/// Projected gradient descent: `steps` steps of size `alpha` from a random start in the
/// `eps`-ball (optional), projected back into the ball and `[0, 1]` after each; `restarts` more
/// random starts for images not yet fooled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pgd {
    pub eps: f32,
    pub alpha: f32,
    pub steps: usize,
    pub random_start: bool,
    pub restarts: usize,
    pub norm: Norm,
}

fn gradients<'a>(victim: &'a Victim) -> Result<&'a dyn LossGradient> {
    victim.gradients.context("gradient attacks need a differentiable model (a dermrobust model or run folder): this classifier gives no gradients (an ONNX model runs without them). Use the black-box attacks (pixels, colour, geometry) instead")
}

/// The step direction of a gradient for `norm`: its sign, or the gradient scaled to unit L2 norm.
fn direction(g: &Image, norm: Norm) -> Vec<f32> {
    match norm {
        Norm::Linf => g.data.iter().map(|v| if *v > 0.0 { 1.0 } else if *v < 0.0 { -1.0 } else { 0.0 }).collect(),
        Norm::L2 => {
            let n = g.data.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-10;
            g.data.iter().map(|v| v / n).collect()
        }
    }
}

/// Project `adv` into the `eps`-ball around `x` and into `[0, 1]`.
fn project(x: &Image, adv: &mut Image, eps: f32, norm: Norm) {
    match norm {
        Norm::Linf => {
            for (a, o) in adv.data.iter_mut().zip(&x.data) {
                *a = (o + (*a - o).clamp(-eps, eps)).clamp(0.0, 1.0);
            }
        }
        Norm::L2 => {
            let n = adv.data.iter().zip(&x.data).map(|(a, o)| (a - o) * (a - o)).sum::<f32>().sqrt();
            let factor = if n > eps { eps / n } else { 1.0 };
            for (a, o) in adv.data.iter_mut().zip(&x.data) {
                *a = (o + (*a - o) * factor).clamp(0.0, 1.0);
            }
        }
    }
}

/// Write `adv - x` as the record of a dense perturbation.
fn record(x: &Image, adv: &Image, ctx: &AttackContext, i: usize, name: &str) -> Result<ImageOp> {
    std::fs::create_dir_all(&ctx.delta_dir).with_context(|| format!("cannot create {}", ctx.delta_dir.display()))?;
    let safe: String = format!("{}_{}", ctx.ids[i], name).chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let file = ctx.delta_dir.join(format!("{safe}.npy"));
    let delta: Vec<f32> = adv.data.iter().zip(&x.data).map(|(a, o)| a - o).collect();
    write_npy(&file, &[x.channels, x.height, x.width], &delta)?;
    Ok(ImageOp::AddDelta { file })
}

fn labels_and_signs(goals: &[Goal]) -> (Vec<usize>, Vec<f32>) {
    goals.iter().map(|g| g.loss_class_and_sign()).unzip()
}

const CHUNK: usize = 32;

impl Attack for Fgsm {
    fn name(&self) -> String {
        format!("fgsm {} eps={}", self.norm.name(), self.eps)
    }
    fn kind(&self) -> &'static str {
        "gradient"
    }
    fn epsilon(&self) -> Option<f32> {
        Some(self.eps)
    }

    fn run(&self, victim: &Victim, images: &[Image], goals: &[Goal], ctx: &AttackContext) -> Result<Vec<AttackOutcome>> {
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            bail!("fgsm: epsilon must be positive, got {}", self.eps);
        }
        let grad = gradients(victim)?;
        let mut out = Vec::with_capacity(images.len());
        for (c, (xs, gs)) in images.chunks(CHUNK).zip(goals.chunks(CHUNK)).enumerate() {
            let (labels, signs) = labels_and_signs(gs);
            let g = grad.loss_gradient(xs, &labels)?;
            let mut ops = Vec::new();
            for (k, x) in xs.iter().enumerate() {
                let step = direction(&g[k], self.norm);
                let mut adv = x.clone();
                adv.data.iter_mut().zip(&step).for_each(|(a, d)| *a += signs[k] * self.eps * d);
                project(x, &mut adv, self.eps, self.norm);
                ops.push(record(x, &adv, ctx, c * CHUNK + k, &self.name())?);
            }
            out.extend(judge(victim, xs, ops, gs, &vec![1; xs.len()])?);
        }
        Ok(out)
    }
}

impl Pgd {
    fn validate(&self) -> Result<()> {
        if !(self.eps > 0.0 && self.eps.is_finite() && self.alpha > 0.0 && self.alpha.is_finite()) {
            bail!("pgd: epsilon and step size must be positive, got eps {} alpha {}", self.eps, self.alpha);
        }
        if self.steps == 0 {
            bail!("pgd: steps must be at least 1");
        }
        Ok(())
    }

    /// A random start in the ball around `x` (uniform in L-infinity; torchattacks' PGDL2 start:
    /// a Gaussian direction scaled to a uniform radius).
    fn start(&self, x: &Image, rng: &mut rand_chacha::ChaCha8Rng) -> Image {
        let mut adv = x.clone();
        if !self.random_start {
            return adv;
        }
        match self.norm {
            Norm::Linf => adv.data.iter_mut().for_each(|a| *a += rng.random_range(-self.eps..=self.eps)),
            Norm::L2 => {
                let d: Vec<f32> = (0..adv.data.len()).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
                let n = d.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                let r: f32 = rng.random_range(0.0..1.0);
                adv.data.iter_mut().zip(&d).for_each(|(a, v)| *a += v / n * r * self.eps);
            }
        }
        adv.data.iter_mut().for_each(|a| *a = a.clamp(0.0, 1.0));
        adv
    }
}

impl Attack for Pgd {
    fn name(&self) -> String {
        format!("pgd {} eps={}", self.norm.name(), self.eps)
    }
    fn kind(&self) -> &'static str {
        "gradient"
    }
    fn epsilon(&self) -> Option<f32> {
        Some(self.eps)
    }

    fn run(&self, victim: &Victim, images: &[Image], goals: &[Goal], ctx: &AttackContext) -> Result<Vec<AttackOutcome>> {
        self.validate()?;
        let grad = gradients(victim)?;
        let mut out: Vec<AttackOutcome> = Vec::with_capacity(images.len());
        for (c, (xs, gs)) in images.chunks(CHUNK).zip(goals.chunks(CHUNK)).enumerate() {
            let (labels, signs) = labels_and_signs(gs);
            let mut best: Vec<Option<AttackOutcome>> = vec![None; xs.len()];
            let mut steps_used = vec![0usize; xs.len()];
            for restart in 0..=self.restarts {
                // Only the images not fooled yet get another random start.
                let todo: Vec<usize> = (0..xs.len()).filter(|&k| !best[k].as_ref().is_some_and(|b| b.success)).collect();
                if todo.is_empty() {
                    break;
                }
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed ^ ((c as u64) << 32) ^ restart as u64);
                let originals: Vec<Image> = todo.iter().map(|&k| xs[k].clone()).collect();
                let mut adv: Vec<Image> = originals.iter().map(|x| self.start(x, &mut rng)).collect();
                let sub_labels: Vec<usize> = todo.iter().map(|&k| labels[k]).collect();
                for _ in 0..self.steps {
                    let g = grad.loss_gradient(&adv, &sub_labels)?;
                    for (j, &k) in todo.iter().enumerate() {
                        let step = direction(&g[j], self.norm);
                        adv[j].data.iter_mut().zip(&step).for_each(|(a, d)| *a += signs[k] * self.alpha * d);
                        project(&originals[j], &mut adv[j], self.eps, self.norm);
                    }
                }
                let ops = todo.iter().enumerate().map(|(j, &k)| record(&originals[j], &adv[j], ctx, c * CHUNK + k, &self.name())).collect::<Result<Vec<_>>>()?;
                todo.iter().for_each(|&k| steps_used[k] += self.steps);
                let sub_goals: Vec<Goal> = todo.iter().map(|&k| gs[k]).collect();
                let queries: Vec<usize> = todo.iter().map(|&k| steps_used[k]).collect();
                for (outcome, &k) in judge(victim, &originals, ops, &sub_goals, &queries)?.into_iter().zip(&todo) {
                    best[k] = Some(outcome);
                }
            }
            out.extend(best.into_iter().map(|b| b.expect("every image attacked once")));
        }
        Ok(out)
    }
}
