//! Black-box attacks on one differential-evolution optimiser (`dermrobust_core::optim`), as
//! Du-Harpur et al. ran them (github.com/thelynchlab/adversarial, `difev_adversarial.py`): each
//! candidate is a small parameter vector turned into an `ImageOp`; the search minimises the
//! audited classifier's probability of the class to leave (or the missing probability of the
//! class to reach); a generation's candidates are one batch of forward passes.
//!
//! Settings from `difev_adversarial.py` where the letter gives none: population 20 per dimension
//! (`popsize = 20`), `tol = 1e-5`, scipy's defaults otherwise (best1bin, mutation (0.5, 1),
//! recombination 0.7, Latin hypercube); the search stops when the decision has flipped with at
//! least 0.9 probability for the new class (`callback`: `pred_adv != pred_orig and p > 0.9`) or
//! after 20 further generations (`max_stage = 20`: the callback stops at stage 21); success is
//! judged on the final image (`a != b`), whatever its confidence.

use anyhow::{bail, Result};
use dermrobust_core::imaging::{BorderFill, Image, ImageOp, PixelValue};
use dermrobust_core::optim::{minimise, DeConfig};
use serde::{Deserialize, Serialize};

use super::attack::{judge, Attack, AttackContext, AttackOutcome, Goal, Victim};
use crate::evaluation::argmax;

/// What a candidate vector means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Search {
    /// Su et al.'s few-pixel attack: `count` pixels, each (column, row, r, g, b) (Du-Harpur: 3).
    Pixels { count: usize },
    /// A global colour balance: one gain per channel in `[low, high]` (Du-Harpur's `ColorAttack`:
    /// 0.9 to 1.1, applied as `pixel * gain` and clipped).
    Colour { low: f32, high: f32 },
    /// Rotation by up to `max_degrees` and translation by up to `max_shift` of the side in x and y
    /// (Du-Harpur's `RotationTranslationAttack`: 0-360 degrees, 0-50 px at 299 px), the border
    /// filled by reflection as in the brittleness suite.
    Geometry { max_degrees: f32, max_shift: f32 },
}

/// A black-box attack: a [`Search`] with the optimiser's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvolutionAttack {
    pub search: Search,
    /// Population size per dimension.
    pub popsize: usize,
    /// Generations after the first, at most.
    pub max_generations: usize,
    /// At most this many queries per image.
    pub max_queries: Option<usize>,
    /// The search stops early once the goal is met with at least this probability for the
    /// decided class.
    pub stop_confidence: f32,
}

impl EvolutionAttack {
    /// Du-Harpur et al.'s settings for `search`.
    pub fn du_harpur(search: Search) -> Self {
        EvolutionAttack { search, popsize: 20, max_generations: 21, max_queries: None, stop_confidence: 0.9 }
    }

    fn bounds(&self, img: &Image) -> Vec<(f64, f64)> {
        match self.search {
            // Column and row are floored, so the upper bound is the width (height) itself.
            Search::Pixels { count } => (0..count).flat_map(|_| [(0.0, img.width as f64), (0.0, img.height as f64), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0)]).collect(),
            Search::Colour { low, high } => vec![(low as f64, high as f64); 3],
            Search::Geometry { max_degrees, max_shift } => vec![(0.0, max_degrees as f64), (0.0, max_shift as f64), (0.0, max_shift as f64)],
        }
    }

    /// The image operation a candidate stands for.
    pub fn op(&self, x: &[f64], img: &Image) -> ImageOp {
        match self.search {
            Search::Pixels { count } => ImageOp::SetPixels {
                at_size: [img.width, img.height],
                pixels: (0..count)
                    .map(|p| {
                        let v = &x[p * 5..p * 5 + 5];
                        PixelValue { x: (v[0] as usize).min(img.width - 1), y: (v[1] as usize).min(img.height - 1), rgb: [v[2] as f32, v[3] as f32, v[4] as f32] }
                    })
                    .collect(),
            },
            Search::Colour { .. } => ImageOp::ColourBalance { gain: [x[0] as f32, x[1] as f32, x[2] as f32], offset: [0.0; 3] },
            // PIL's order in the reference: translate, then rotate about the centre.
            Search::Geometry { .. } => ImageOp::Warp {
                ops: vec![
                    ImageOp::Translate { dx: x[1] as f32, dy: x[2] as f32, fill: BorderFill::Reflect },
                    ImageOp::Rotate { degrees: x[0] as f32, fill: BorderFill::Reflect },
                ],
                fill: BorderFill::Reflect,
            },
        }
    }

    fn validate(&self) -> Result<()> {
        match self.search {
            Search::Pixels { count } if count == 0 => bail!("pixel attack: at least one pixel"),
            Search::Colour { low, high } if !(low > 0.0 && low < high && high.is_finite()) => bail!("colour attack: gains need 0 < low < high, got {low}..{high}"),
            Search::Geometry { max_degrees, max_shift } if !(max_degrees > 0.0 && max_degrees <= 360.0 && (0.0..=1.0).contains(&max_shift)) => {
                bail!("geometry attack: rotation in (0, 360] degrees and shift in [0, 1] of the side, got {max_degrees} and {max_shift}")
            }
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.stop_confidence) {
            bail!("black-box attack: the stop confidence must be in [0, 1], got {}", self.stop_confidence);
        }
        Ok(())
    }
}

impl Attack for EvolutionAttack {
    fn name(&self) -> String {
        match self.search {
            Search::Pixels { count } => format!("pixels x{count}"),
            Search::Colour { low, high } => format!("colour {low}-{high}"),
            Search::Geometry { max_degrees, max_shift } => format!("geometry {max_degrees}deg shift {max_shift:.3}"),
        }
    }
    fn kind(&self) -> &'static str {
        "black-box"
    }

    fn run(&self, victim: &Victim, images: &[Image], goals: &[Goal], ctx: &AttackContext) -> Result<Vec<AttackOutcome>> {
        self.validate()?;
        let mut ops = Vec::with_capacity(images.len());
        let mut queries = Vec::with_capacity(images.len());
        for (i, (img, goal)) in images.iter().zip(goals).enumerate() {
            let config = DeConfig { popsize: self.popsize, max_generations: self.max_generations, tol: 1e-5, max_evaluations: self.max_queries, seed: ctx.seed.wrapping_add(i as u64), ..DeConfig::default() };
            let mut checks = 0usize;
            let mut check_error = None;
            let result = minimise(
                &self.bounds(img),
                &config,
                |batch| {
                    let perturbed: Vec<Image> = batch.iter().map(|x| self.op(x, img).apply(img)).collect::<Result<_>>()?;
                    Ok(victim.classifier.predict(&perturbed)?.iter().map(|p| goal.objective(p)).collect())
                },
                // Du-Harpur's callback: ask the classifier about the best candidate once per
                // generation (one query) and stop on a confident success.
                |x, _| {
                    checks += 1;
                    match self.op(x, img).apply(img).and_then(|p| victim.classifier.predict(&[p])) {
                        Ok(p) => goal.achieved(&p[0]) && p[0][argmax(&p[0])] >= self.stop_confidence,
                        Err(e) => {
                            check_error = Some(e);
                            true
                        }
                    }
                },
            )?;
            if let Some(e) = check_error {
                return Err(e);
            }
            ops.push(self.op(&result.x, img));
            queries.push(result.evaluations + checks);
            let _ = ctx;
        }
        let mut out = judge(victim, images, ops, goals, &queries)?;
        for o in &mut out {
            match (&self.search, &o.op) {
                (Search::Pixels { count }, _) => o.size.pixels = Some(*count),
                (Search::Geometry { .. }, ImageOp::Warp { ops, .. }) => {
                    if let (Some(ImageOp::Translate { dx, dy, .. }), Some(ImageOp::Rotate { degrees, .. })) = (ops.first(), ops.get(1)) {
                        let side = images[0].width as f32;
                        o.size.degrees = Some(*degrees);
                        o.size.shift_px = Some((dx * dx + dy * dy).sqrt() * side);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}
