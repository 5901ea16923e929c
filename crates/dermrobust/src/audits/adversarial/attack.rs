//! The attack interface every adversarial attack implements, like torchattacks' `Attack`: a
//! victim (the audited classifier, and its gradients where it has them), images and goals in;
//! for each image a replayable record of the perturbation and what it did out.

use std::path::PathBuf;

use anyhow::Result;
use dermrobust_core::imaging::{mean_delta_e, Image, ImageOp};
use serde::{Deserialize, Serialize};

use crate::evaluation::gradients::{DifferentiableClassifier, GradTarget};
use crate::evaluation::{argmax, ImageClassifier};

/// What an attack tries to do to one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "goal", content = "class")]
pub enum Goal {
    /// Move the decision away from this class (the image's original prediction).
    Untargeted(usize),
    /// Move the decision to this class.
    Targeted(usize),
}

impl Goal {
    /// Whether the decision on probabilities `p` meets the goal.
    pub fn achieved(&self, p: &[f32]) -> bool {
        match *self {
            Goal::Untargeted(c) => argmax(p) != c,
            Goal::Targeted(c) => argmax(p) == c,
        }
    }

    /// The value a black-box search minimises: the probability of the class to leave, or the
    /// missing probability of the class to reach.
    pub fn objective(&self, p: &[f32]) -> f64 {
        match *self {
            Goal::Untargeted(c) => p[c] as f64,
            Goal::Targeted(c) => 1.0 - p[c] as f64,
        }
    }

    /// The class whose cross-entropy a gradient attack follows, and the direction: up (away from
    /// the class) or down (towards it).
    pub fn loss_class_and_sign(&self) -> (usize, f32) {
        match *self {
            Goal::Untargeted(c) => (c, 1.0),
            Goal::Targeted(c) => (c, -1.0),
        }
    }
}

/// Gradients of the cross-entropy with respect to the raw input, for gradient attacks. A
/// differentiable model gives them directly; test-time augmentation gives the expectation over
/// its views ([`super::eot::ExpectationOverViews`]).
pub trait LossGradient: Send + Sync {
    /// d CE(image, label) / d image, per image.
    fn loss_gradient(&self, images: &[Image], labels: &[usize]) -> Result<Vec<Image>>;
}

impl<T: DifferentiableClassifier> LossGradient for T {
    fn loss_gradient(&self, images: &[Image], labels: &[usize]) -> Result<Vec<Image>> {
        Ok(self.input_gradient(images, &GradTarget::Loss(labels.to_vec()))?.gradients)
    }
}

/// The model under attack: the audited classifier (ensemble, TTA and decision rule included),
/// which judges every attack, and its gradients where it has them.
pub struct Victim<'a> {
    pub classifier: &'a dyn ImageClassifier,
    pub gradients: Option<&'a dyn LossGradient>,
}

/// Where attacks write what their records need (dense perturbations as `.npy` files), and how
/// they are seeded.
pub struct AttackContext {
    pub delta_dir: PathBuf,
    /// An identifier per image, for file names.
    pub ids: Vec<String>,
    pub seed: u64,
}

/// How large a perturbation is, in the units a reader can judge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerturbationSize {
    /// Largest change of any pixel value, in `[0, 1]` units.
    pub linf: f32,
    /// Euclidean norm of the change over all pixel values, in `[0, 1]` units.
    pub l2: f32,
    /// Mean CIEDE2000 colour difference over pixels.
    pub delta_e: f32,
    /// Rotation, for geometric attacks.
    pub degrees: Option<f32>,
    /// Shift in pixels of the model input, for geometric attacks.
    pub shift_px: Option<f32>,
    /// Pixels changed, for few-pixel attacks.
    pub pixels: Option<usize>,
}

impl PerturbationSize {
    /// The size of the change from `original` to `perturbed`.
    pub fn between(original: &Image, perturbed: &Image) -> Self {
        let (mut linf, mut sq) = (0f32, 0f64);
        for (a, b) in original.data.iter().zip(&perturbed.data) {
            let d = (a - b).abs();
            linf = linf.max(d);
            sq += (d as f64) * (d as f64);
        }
        PerturbationSize { linf, l2: sq.sqrt() as f32, delta_e: mean_delta_e(original, perturbed) as f32, ..Default::default() }
    }
}

/// What an attack did to one image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttackOutcome {
    /// The perturbation, replayable from the original image.
    pub op: ImageOp,
    /// The audited classifier's probabilities on the replayed perturbed image.
    pub probabilities: Vec<f32>,
    pub success: bool,
    /// Queries (forward passes asked of the classifier) for black-box attacks; gradient steps for
    /// gradient attacks.
    pub queries: usize,
    pub size: PerturbationSize,
}

/// One adversarial attack (torchattacks' `Attack`): the same inputs and outputs for every kind.
pub trait Attack: Send + Sync {
    /// The name of the condition in tables (e.g. `fgsm linf eps=0.008`).
    fn name(&self) -> String;
    /// `gradient` or `black-box`.
    fn kind(&self) -> &'static str;
    /// The perturbation budget on a common axis for plots (epsilon), where there is one.
    fn epsilon(&self) -> Option<f32> {
        None
    }
    /// Attack `images` (at the model's input size) with one goal each.
    fn run(&self, victim: &Victim, images: &[Image], goals: &[Goal], ctx: &AttackContext) -> Result<Vec<AttackOutcome>>;
}

/// Apply each op to its original, ask the audited classifier (one batch), and record the
/// outcomes: every recorded result is exactly what replaying its record gives.
pub fn judge(victim: &Victim, originals: &[Image], ops: Vec<ImageOp>, goals: &[Goal], queries: &[usize]) -> Result<Vec<AttackOutcome>> {
    let perturbed: Vec<Image> = originals.iter().zip(&ops).map(|(img, op)| op.apply(img)).collect::<Result<_>>()?;
    let probabilities = victim.classifier.predict(&perturbed)?;
    Ok(ops
        .into_iter()
        .zip(probabilities)
        .enumerate()
        .map(|(i, (op, p))| AttackOutcome { success: goals[i].achieved(&p), size: PerturbationSize::between(&originals[i], &perturbed[i]), op, probabilities: p, queries: queries[i] })
        .collect())
}
