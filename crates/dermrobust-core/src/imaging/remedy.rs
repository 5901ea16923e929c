//! Mishra et al.'s (2019) image-capture remedies as replayable image operations: gamma
//! correction (`out = in^(1/gamma)`, gamma 1.2-1.5) and field-of-view reduction (the view moved
//! and zoomed so that the lesion fills it). The lesion is found from its mask where there is one,
//! else by an automatic localisation (Otsu's threshold on a blurred luma image), and the result
//! says which. Every remedy is an [`ImageOp`], so a remedied image is rebuilt exactly from the
//! original and its recorded operation.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{BorderFill, Image, ImageOp};

/// Where the field-of-view reduction finds the lesion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FovSource {
    /// The lesion mask where the image has one, else the automatic localisation.
    Mask,
    /// Always the automatic localisation (Otsu on a blurred luma image).
    Auto,
}

impl fmt::Display for FovSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FovSource::Mask => "mask",
            FovSource::Auto => "auto",
        })
    }
}

impl FromStr for FovSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mask" => Ok(FovSource::Mask),
            "auto" | "otsu" => Ok(FovSource::Auto),
            other => Err(format!("unknown field-of-view source '{other}' (choose mask or auto)")),
        }
    }
}

/// How the lesion of one image was found for the field-of-view reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LesionFoundBy {
    Mask,
    /// Otsu's threshold on the blurred luma (no mask, or `--fov auto`).
    Otsu,
}

impl LesionFoundBy {
    pub fn name(self) -> &'static str {
        match self {
            LesionFoundBy::Mask => "mask",
            LesionFoundBy::Otsu => "otsu",
        }
    }
}

/// The capture remedy applied to every image before a model sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptureRemedy {
    /// Gamma correction `out = in^(1/gamma)` (Mishra: gamma 1.2-1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f32>,
    /// Field-of-view reduction, and where it finds the lesion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fov: Option<FovSource>,
    /// The lesion's larger bounding-box side times this fills the reduced view.
    #[serde(default = "default_margin")]
    pub fov_margin: f32,
    /// Never zoom in more than this.
    #[serde(default = "default_max_zoom")]
    pub fov_max_zoom: f32,
}

pub const DEFAULT_FOV_MARGIN: f32 = 1.25;
pub const DEFAULT_FOV_MAX_ZOOM: f32 = 3.0;

fn default_margin() -> f32 {
    DEFAULT_FOV_MARGIN
}

fn default_max_zoom() -> f32 {
    DEFAULT_FOV_MAX_ZOOM
}

impl Default for CaptureRemedy {
    fn default() -> Self {
        CaptureRemedy { gamma: None, fov: None, fov_margin: DEFAULT_FOV_MARGIN, fov_max_zoom: DEFAULT_FOV_MAX_ZOOM }
    }
}

/// The remedy applied to one image: the operation (`None` when nothing applies, e.g. an empty
/// lesion) and where the lesion was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedRemedy {
    pub op: Option<ImageOp>,
    pub lesion_found_by: Option<LesionFoundBy>,
}

impl CaptureRemedy {
    /// Whether it reads lesion masks (field of view from the mask).
    pub fn uses_masks(&self) -> bool {
        self.fov == Some(FovSource::Mask)
    }

    /// Check the parameters, naming the option of each bad one.
    pub fn validate(&self) -> Result<()> {
        if let Some(g) = self.gamma {
            if !(g.is_finite() && g > 0.0) {
                bail!("--gamma must be a positive number (Mishra et al. use 1.2-1.5), got {g}");
            }
        }
        if !(self.fov_margin.is_finite() && self.fov_margin >= 1.0) {
            bail!("--fov-margin must be at least 1 (the lesion's box times it fills the view), got {}", self.fov_margin);
        }
        if !(self.fov_max_zoom.is_finite() && self.fov_max_zoom >= 1.0) {
            bail!("the field of view's maximum zoom must be at least 1, got {}", self.fov_max_zoom);
        }
        Ok(())
    }

    /// One line for reports and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(fov) = self.fov {
            parts.push(format!(
                "field of view reduced to the lesion's box x {} (at most {}x zoom), lesion found {}",
                self.fov_margin,
                self.fov_max_zoom,
                match fov {
                    FovSource::Mask => "from its mask, else by Otsu on the blurred image",
                    FovSource::Auto => "by Otsu on the blurred image",
                }
            ));
        }
        if let Some(g) = self.gamma {
            parts.push(format!("gamma correction in^(1/{g})"));
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", then ")
        }
    }

    /// The operation for one image (with its mask, if any): the field-of-view reduction first,
    /// then gamma.
    pub fn op_for(&self, img: &Image, mask: Option<&Image>) -> AppliedRemedy {
        let mut ops = Vec::new();
        let mut found_by = None;
        if let Some(fov) = self.fov {
            let (m, by) = match (fov, mask) {
                (FovSource::Mask, Some(m)) if m.data.iter().any(|&v| v > 0.5) => (m.clone(), LesionFoundBy::Mask),
                _ => (auto_lesion_mask(img), LesionFoundBy::Otsu),
            };
            if let Some(op) = fov_op(&m, self.fov_margin, self.fov_max_zoom) {
                ops.push(op);
                found_by = Some(by);
            }
        }
        if let Some(g) = self.gamma {
            ops.push(ImageOp::Gamma { gamma: 1.0 / g });
        }
        let op = match ops.len() {
            0 => None,
            1 => ops.pop(),
            _ => Some(ImageOp::Sequence { ops }),
        };
        AppliedRemedy { op, lesion_found_by: found_by }
    }

    /// Apply the remedy to an image and its mask (the mask moved by the same geometry).
    pub fn apply(&self, img: &Image, mask: Option<&Image>) -> Result<(Image, Option<Image>, AppliedRemedy)> {
        let applied = self.op_for(img, mask);
        Ok(match &applied.op {
            Some(op) => (op.apply(img)?, mask.map(|m| op.apply_mask(m)).transpose()?, applied),
            None => (img.clone(), mask.cloned(), applied),
        })
    }
}

/// Bounding box `(x0, y0, x1, y1)` (inclusive) of the pixels where `inside` holds.
pub fn bounding_box(inside: &[bool], w: usize) -> Option<(usize, usize, usize, usize)> {
    let mut b: Option<(usize, usize, usize, usize)> = None;
    for (p, _) in inside.iter().enumerate().filter(|(_, v)| **v) {
        let (x, y) = (p % w, p / w);
        b = Some(match b {
            None => (x, y, x, y),
            Some((a, c, d, e)) => (a.min(x), c.min(y), d.max(x), e.max(y)),
        });
    }
    b
}

/// Otsu's threshold of values in [0, 1] (256 bins).
pub fn otsu(values: &[f32]) -> f32 {
    let mut hist = [0f64; 256];
    for &v in values {
        hist[(v.clamp(0.0, 1.0) * 255.0).round() as usize] += 1.0;
    }
    let total: f64 = hist.iter().sum();
    let sum_all: f64 = hist.iter().enumerate().map(|(i, h)| i as f64 * h).sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0.0, 0.0, -1.0, 0usize);
    for (t, &h) in hist.iter().enumerate() {
        w0 += h;
        sum0 += t as f64 * h;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let between = w0 * w1 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    (best_t as f32 + 0.5) / 255.0
}

/// Automatic lesion localisation: Otsu's threshold on the luma blurred with sigma 2% of the
/// side; the lesion is the largest 4-connected dark component that does not touch the image
/// border (dark corners and vignetting do), or the largest dark component if all touch it.
pub fn auto_lesion_mask(img: &Image) -> Image {
    let luma = ImageOp::GaussianBlur { sigma: 0.02 }.apply(&img.luma()).unwrap_or_else(|_| img.luma());
    let t = otsu(&luma.data);
    let (w, h) = (luma.width, luma.height);
    let dark: Vec<bool> = luma.data.iter().map(|&v| v < t).collect();
    let mut label = vec![usize::MAX; w * h];
    let mut comps: Vec<(Vec<usize>, bool)> = Vec::new();
    for start in 0..w * h {
        if !dark[start] || label[start] != usize::MAX {
            continue;
        }
        let id = comps.len();
        let (mut stack, mut pixels, mut touches) = (vec![start], Vec::new(), false);
        label[start] = id;
        while let Some(p) = stack.pop() {
            pixels.push(p);
            let (x, y) = (p % w, p / w);
            touches |= x == 0 || y == 0 || x == w - 1 || y == h - 1;
            let mut push = |q: usize| {
                if dark[q] && label[q] == usize::MAX {
                    label[q] = id;
                    stack.push(q);
                }
            };
            if x > 0 {
                push(p - 1)
            }
            if x + 1 < w {
                push(p + 1)
            }
            if y > 0 {
                push(p - w)
            }
            if y + 1 < h {
                push(p + w)
            }
        }
        comps.push((pixels, touches));
    }
    let pick = comps.iter().filter(|c| !c.1).max_by_key(|c| c.0.len()).or_else(|| comps.iter().max_by_key(|c| c.0.len()));
    let mut mask = Image::filled(1, w, h, 0.0);
    if let Some((pixels, _)) = pick {
        pixels.iter().for_each(|&p| mask.data[p] = 1.0);
    }
    mask
}

/// The field-of-view reduction for a lesion mask: move the lesion's bounding-box centre to the
/// image centre, then zoom so that `margin` x its larger side fills the view (at least 1, at most
/// `max_zoom`). The lesion's box stays inside the view: centred, it spans at most the whole
/// side before the zoom and at most `1 / margin` of it after. `None` for an empty mask.
pub fn fov_op(mask: &Image, margin: f32, max_zoom: f32) -> Option<ImageOp> {
    let inside: Vec<bool> = mask.data.iter().map(|&v| v > 0.5).collect();
    let (x0, y0, x1, y1) = bounding_box(&inside, mask.width)?;
    let (w, h) = (mask.width as f32, mask.height as f32);
    let cx = (x0 + x1 + 1) as f32 / 2.0 / w;
    let cy = (y0 + y1 + 1) as f32 / 2.0 / h;
    let extent = (((x1 - x0 + 1) as f32) / w).max(((y1 - y0 + 1) as f32) / h);
    let factor = (1.0 / (extent * margin)).clamp(1.0, max_zoom.max(1.0));
    Some(ImageOp::Warp {
        ops: vec![
            ImageOp::Translate { dx: 0.5 - cx, dy: 0.5 - cy, fill: BorderFill::Reflect },
            ImageOp::Zoom { factor, cx: 0.5, cy: 0.5, fill: BorderFill::Reflect },
        ],
        fill: BorderFill::Reflect,
    })
}
