//! Test-time augmentation: a classifier that averages its inner classifier's probabilities
//! over deterministic views of each image, optionally blended with the unmodified image
//! (fastai's TTA, which Maron et al. used), with the view sets a user can choose.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use dermrobust_core::imaging::{Anchor, BorderFill, Image, ImageOp};
use rayon::prelude::*;
use serde::Deserialize;

use super::ImageClassifier;

/// Side of fastai's TTA corner crops (a zoom of 1.35 into each corner).
pub const MARON_TTA_SCALE: f32 = 1.0 / 1.35;
/// fastai's `Learner.TTA(beta=0.4)` weight of the unmodified image, which Maron et al. used.
pub const FASTAI_TTA_BETA: f32 = 0.4;

/// Test-time augmentation: the mean probability over deterministic views of each image,
/// optionally blended with the prediction on the unmodified image.
pub struct WithTta<C: ImageClassifier> {
    pub inner: C,
    pub views: Vec<ImageOp>,
    /// Weight of the unmodified image's prediction: `w * p(x) + (1 - w) * mean(p(views))`;
    /// 0 is the plain mean of the views.
    pub original_weight: f32,
}

impl<C: ImageClassifier> WithTta<C> {
    /// Maron et al.'s TTA as fastai computes it: 8 flip x corner-zoom views, blended 0.6/0.4
    /// with the unmodified image.
    pub fn maron(inner: C) -> Self {
        WithTta { inner, views: maron_tta_views(MARON_TTA_SCALE), original_weight: FASTAI_TTA_BETA }
    }
}

/// Maron et al.'s 8 views (fastai TTA): no flip / horizontal flip x zoom into each of the 4
/// corners (a crop of `scale` of each side, resized back).
pub fn maron_tta_views(scale: f32) -> Vec<ImageOp> {
    let mut views = Vec::new();
    for flip in [false, true] {
        for anchor in Anchor::CORNERS {
            let crop = ImageOp::Crop { anchor, scale };
            views.push(if flip { ImageOp::Sequence { ops: vec![ImageOp::FlipHorizontal, crop] } } else { crop });
        }
    }
    views
}

/// Which views test-time augmentation averages (`--tta-views`).
#[derive(Clone, Debug, PartialEq)]
pub enum TtaViews {
    /// Maron et al.'s 8: no flip / horizontal flip x a zoom into each of the 4 corners.
    Maron,
    /// The 4 flips: none, horizontal, vertical, both (= rotation by 180 degrees).
    Flips,
    /// The 8 symmetries of the square: rotations by 0, 90, 180, 270 degrees, each with and
    /// without a horizontal flip (dermoscopy images have no natural orientation).
    Dihedral,
    /// A TOML file of `[[view]]` tables, each an image operation as in a suite's `op`.
    File(PathBuf),
}

impl FromStr for TtaViews {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "maron" => TtaViews::Maron,
            "flips" => TtaViews::Flips,
            "dihedral" => TtaViews::Dihedral,
            path if path.ends_with(".toml") => TtaViews::File(PathBuf::from(path)),
            other => return Err(format!("unknown view set '{other}' (maron, flips, dihedral, or a .toml file)")),
        })
    }
}

impl TtaViews {
    /// The views; `scale` is the corner-crop side of the Maron set.
    pub fn views(&self, scale: f32) -> Result<Vec<ImageOp>> {
        Ok(match self {
            TtaViews::Maron => maron_tta_views(scale),
            TtaViews::Flips => flip_views(),
            TtaViews::Dihedral => dihedral_views(),
            TtaViews::File(path) => load_views(path)?,
        })
    }
}

/// No flip, horizontal, vertical and both flips.
pub fn flip_views() -> Vec<ImageOp> {
    vec![
        ImageOp::Sequence { ops: vec![] },
        ImageOp::FlipHorizontal,
        ImageOp::FlipVertical,
        ImageOp::Sequence { ops: vec![ImageOp::FlipHorizontal, ImageOp::FlipVertical] },
    ]
}

/// The 8 symmetries of the square. Rotations by 90 and 270 degrees go through the affine warp,
/// which is exact for square images (pixel centres map onto pixel centres).
pub fn dihedral_views() -> Vec<ImageOp> {
    let rotations = [0.0, 90.0, 180.0, 270.0];
    let mut views = Vec::new();
    for flip in [false, true] {
        for degrees in rotations {
            let mut ops = Vec::new();
            if flip {
                ops.push(ImageOp::FlipHorizontal);
            }
            if degrees != 0.0 {
                ops.push(ImageOp::Rotate { degrees, fill: BorderFill::Reflect });
            }
            views.push(ImageOp::Sequence { ops });
        }
    }
    views
}

/// Views from a TOML file of `[[view]]` tables (`op = "flip_horizontal"`, `op = "rotate"` with
/// `degrees = 90`, ...).
pub fn load_views(path: &Path) -> Result<Vec<ImageOp>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ViewFile {
        view: Vec<ImageOp>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read TTA views {}", path.display()))?;
    let file: ViewFile = toml::from_str(&text).with_context(|| format!("{}: not a list of [[view]] image operations", path.display()))?;
    if file.view.is_empty() {
        bail!("{}: no [[view]] given", path.display());
    }
    for (i, v) in file.view.iter().enumerate() {
        v.validate().with_context(|| format!("{}: view {}", path.display(), i + 1))?;
    }
    Ok(file.view)
}

impl<C: ImageClassifier> ImageClassifier for WithTta<C> {
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }

    fn input_size(&self) -> usize {
        self.inner.input_size()
    }

    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let mut sum: Vec<Vec<f32>> = vec![vec![0.0; self.classes().len()]; images.len()];
        for view in &self.views {
            let viewed: Vec<Image> = images.par_iter().map(|img| view.apply(img)).collect::<Result<_>>()?;
            for (acc, p) in sum.iter_mut().zip(self.inner.predict(&viewed)?) {
                acc.iter_mut().zip(p).for_each(|(a, v)| *a += v);
            }
        }
        let n = self.views.len().max(1) as f32;
        let mut mean: Vec<Vec<f32>> = sum.into_iter().map(|v| v.into_iter().map(|x| x / n).collect()).collect();
        if self.original_weight > 0.0 {
            let w = self.original_weight;
            for (m, p) in mean.iter_mut().zip(self.inner.predict(images)?) {
                m.iter_mut().zip(p).for_each(|(a, o)| *a = w * o + (1.0 - w) * *a);
            }
        }
        Ok(mean)
    }

    fn describe(&self) -> String {
        let blend = if self.original_weight > 0.0 { format!(", original weighted {}", self.original_weight) } else { String::new() };
        format!("{} + TTA ({} views{blend})", self.inner.describe(), self.views.len())
    }

    fn views(&self) -> usize {
        self.inner.views() * (self.views.len() + usize::from(self.original_weight > 0.0))
    }
}


/// A chosen test-time augmentation: the views and the weight of the unmodified image. It
/// serialises into audit keys and result files, so a result says which TTA made it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Tta {
    pub views: Vec<ImageOp>,
    pub original_weight: f32,
}

impl Tta {
    /// A TTA of `views`, the unmodified image weighted `original_weight` (in [0, 1]).
    pub fn new(views: Vec<ImageOp>, original_weight: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&original_weight) {
            bail!("--tta-original-weight must be between 0 and 1, not {original_weight}");
        }
        if views.is_empty() && original_weight < 1.0 {
            bail!("a test-time augmentation needs at least one view");
        }
        for v in &views {
            v.validate().context("a test-time augmentation view (check --tta-scale or the views file)")?;
        }
        Ok(Tta { views, original_weight })
    }

    /// One sentence for reports.
    pub fn description(&self) -> String {
        let what = if self.views == maron_tta_views(MARON_TTA_SCALE) {
            "Maron et al.'s 8 views (no/horizontal flip x zoom 1.35 into each corner)".to_string()
        } else {
            format!("{} views ({})", self.views.len(), self.views.iter().map(|v| v.label()).collect::<Vec<_>>().join(", "))
        };
        match self.original_weight {
            w if w == FASTAI_TTA_BETA => format!("test-time augmentation over {what}, blended 0.6/0.4 with the unmodified image as fastai does"),
            w if w == 0.0 => format!("test-time augmentation: the mean over {what}"),
            w => format!("test-time augmentation over {what}, the unmodified image weighted {w}"),
        }
    }

    /// `inner` with this TTA.
    pub fn wrap(&self, inner: Box<dyn ImageClassifier>) -> Box<dyn ImageClassifier> {
        Box::new(WithTta { inner, views: self.views.clone(), original_weight: self.original_weight })
    }
}

/// Test-time augmentation options (shared by `evaluate` and `audit`).
#[derive(clap::Args, Clone, Debug)]
pub struct TtaArgs {
    /// Test-time augmentation: average the prediction over deterministic views of each image
    /// (default: Maron et al.'s, as fastai computes it).
    #[arg(long)]
    pub tta: bool,
    #[command(flatten)]
    pub how: TtaViewArgs,
}

/// Which TTA (shared by `evaluate`, `audit` and `experiment`).
#[derive(clap::Args, Clone, Debug)]
pub struct TtaViewArgs {
    /// The TTA views: `maron` (8: no/horizontal flip x zoom into each of the 4 corners), `flips`
    /// (4), `dihedral` (8: rotations by 0/90/180/270 degrees x no/horizontal flip), or a TOML file
    /// of `[[view]]` tables, each an image operation (e.g. `op = "rotate"`, `degrees = 90`).
    #[arg(long, default_value = "maron")]
    pub tta_views: TtaViews,
    /// Side of the corner crops of the `maron` views (fastai: 1/1.35).
    #[arg(long, default_value_t = MARON_TTA_SCALE)]
    pub tta_scale: f32,
    /// Weight of the unmodified image in the TTA blend (fastai: 0.4; 0 = plain mean of the views).
    #[arg(long, default_value_t = FASTAI_TTA_BETA)]
    pub tta_original_weight: f32,
}

impl TtaViewArgs {
    /// The TTA these options describe (a bad views file is an error naming it).
    pub fn tta(&self) -> Result<Tta> {
        Tta::new(self.tta_views.views(self.tta_scale)?, self.tta_original_weight)
    }
}

impl TtaArgs {
    /// The TTA asked for, if any.
    pub fn chosen(&self) -> Result<Option<Tta>> {
        if self.tta { self.how.tta().map(Some) } else { Ok(None) }
    }
}
