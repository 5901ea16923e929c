//! Mishra et al.'s image-capture remedies as replayable image operations: gamma correction and
//! field-of-view reduction (a zoom centred on the lesion). Both are `ImageOp`s, recorded per image
//! in `explain_per_image.csv`'s `op` column so `dermrobust replay` rebuilds what the model saw.

use dermrobust_core::imaging::{BorderFill, Image, ImageOp};
use serde::{Deserialize, Serialize};

/// Where the field-of-view reduction finds the lesion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FovSource {
    /// The lesion mask where the image has one, else the automatic localisation.
    Mask,
    /// Always the automatic localisation (Otsu on a blurred luma image).
    Auto,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Remedies {
    /// Gamma correction `out = in^(1/gamma)` (Mishra: gamma 1.2-1.5).
    pub gamma: Option<f32>,
    pub fov: Option<FovSource>,
    /// The lesion's larger bounding-box side times this fills the zoomed view.
    pub fov_margin: f32,
    /// Never zoom in more than this.
    pub fov_max_zoom: f32,
}

impl Default for Remedies {
    fn default() -> Self {
        Remedies { gamma: None, fov: None, fov_margin: 1.25, fov_max_zoom: 3.0 }
    }
}

/// Bounding box `(x0, y0, x1, y1)` (inclusive) of the pixels where `inside` holds.
fn bbox(inside: &[bool], w: usize) -> Option<(usize, usize, usize, usize)> {
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
            if x > 0 { push(p - 1) }
            if x + 1 < w { push(p + 1) }
            if y > 0 { push(p - w) }
            if y + 1 < h { push(p + w) }
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
/// `max_zoom`). `None` for an empty mask.
pub fn fov_op(mask: &Image, margin: f32, max_zoom: f32) -> Option<ImageOp> {
    let inside: Vec<bool> = mask.data.iter().map(|&v| v > 0.5).collect();
    let (x0, y0, x1, y1) = bbox(&inside, mask.width)?;
    let (w, h) = (mask.width as f32, mask.height as f32);
    let cx = (x0 + x1 + 1) as f32 / 2.0 / w;
    let cy = (y0 + y1 + 1) as f32 / 2.0 / h;
    let extent = (((x1 - x0 + 1) as f32) / w).max(((y1 - y0 + 1) as f32) / h);
    let factor = (1.0 / (extent * margin)).clamp(1.0, max_zoom);
    Some(ImageOp::Warp {
        ops: vec![
            ImageOp::Translate { dx: 0.5 - cx, dy: 0.5 - cy, fill: BorderFill::Reflect },
            ImageOp::Zoom { factor, cx: 0.5, cy: 0.5, fill: BorderFill::Reflect },
        ],
        fill: BorderFill::Reflect,
    })
}

impl Remedies {
    pub fn any(&self) -> bool {
        self.gamma.is_some() || self.fov.is_some()
    }

    /// The operation for one image (with its mask, if any); `None` when no remedy applies.
    /// Also says where the lesion was found.
    pub fn op_for(&self, img: &Image, mask: Option<&Image>) -> (Option<ImageOp>, Option<&'static str>) {
        let mut ops = Vec::new();
        let mut source = None;
        if let Some(fov) = self.fov {
            let (m, s) = match (fov, mask) {
                (FovSource::Mask, Some(m)) if m.data.iter().any(|&v| v > 0.5) => (m.clone(), "mask"),
                _ => (auto_lesion_mask(img), "otsu"),
            };
            if let Some(op) = fov_op(&m, self.fov_margin, self.fov_max_zoom) {
                ops.push(op);
                source = Some(s);
            }
        }
        if let Some(g) = self.gamma {
            ops.push(ImageOp::Gamma { gamma: 1.0 / g });
        }
        match ops.len() {
            0 => (None, source),
            1 => (ops.pop(), source),
            _ => (Some(ImageOp::Sequence { ops }), source),
        }
    }
}
