//! Gradients of a test-time-augmented classifier: the expectation over its views (Athalye et al.
//! 2018's EOT), weighted as the TTA weights them. A view that permutes pixels (flips, quarter
//! turns of a square image) has an exact adjoint, its inverse, so the gradient of the loss of a
//! view is the inverse view of the gradient at the viewed image.

use anyhow::{bail, Result};
use dermrobust_core::imaging::{Image, ImageOp};

use super::attack::LossGradient;
use crate::evaluation::Tta;

/// A differentiable classifier seen through test-time augmentation.
pub struct ExpectationOverViews<G: LossGradient> {
    pub inner: G,
    /// (view, its inverse, weight).
    views: Vec<(ImageOp, ImageOp, f32)>,
}

/// The inverse of a view that permutes pixels, or `None`.
fn inverse(op: &ImageOp) -> Option<ImageOp> {
    match op {
        ImageOp::FlipHorizontal | ImageOp::FlipVertical => Some(op.clone()),
        ImageOp::Rotate { degrees, fill } if (degrees / 90.0).fract() == 0.0 => Some(ImageOp::Rotate { degrees: -degrees, fill: *fill }),
        ImageOp::Sequence { ops } => ops.iter().rev().map(inverse).collect::<Option<Vec<_>>>().map(|ops| ImageOp::Sequence { ops }),
        _ => None,
    }
}

impl<G: LossGradient> ExpectationOverViews<G> {
    /// The expectation over `tta`'s views (and the unmodified image with its weight).
    pub fn new(inner: G, tta: &Tta) -> Result<Self> {
        let n = tta.views.len().max(1) as f32;
        let mut views = Vec::new();
        if tta.original_weight > 0.0 {
            views.push((ImageOp::Sequence { ops: vec![] }, ImageOp::Sequence { ops: vec![] }, tta.original_weight));
        }
        for v in &tta.views {
            let Some(inv) = inverse(v) else {
                bail!(
                    "gradient attacks through test-time augmentation need views that permute pixels (flips, quarter turns), so that the expectation over the views has an exact gradient; the view {} resamples the image. Use --tta-views flips or dihedral, or the black-box attacks",
                    v.label()
                );
            };
            views.push((v.clone(), inv, (1.0 - tta.original_weight) / n));
        }
        Ok(ExpectationOverViews { inner, views })
    }
}

impl<G: LossGradient> LossGradient for ExpectationOverViews<G> {
    fn loss_gradient(&self, images: &[Image], labels: &[usize]) -> Result<Vec<Image>> {
        let mut sum: Vec<Image> = images.iter().map(|i| Image::filled(i.channels, i.width, i.height, 0.0)).collect();
        for (view, inv, w) in &self.views {
            let viewed: Vec<Image> = images.iter().map(|i| view.apply(i)).collect::<Result<_>>()?;
            for (acc, g) in sum.iter_mut().zip(self.inner.loss_gradient(&viewed, labels)?) {
                // The adjoint of a permutation is its inverse (no clipping: gradients are signed).
                let back = inv.apply(&g)?;
                acc.data.iter_mut().zip(&back.data).for_each(|(a, b)| *a += w * b);
            }
        }
        Ok(sum)
    }
}
