//! Geometric transformations as one inverse-mapped affine warp with bilinear sampling.
//!
//! Rotation, zoom, translation, flips and corner crops are all affine maps, so they share this
//! single sampler; an image and its mask therefore always move together exactly.
//!
//! Coordinates are continuous with pixel centres at `x + 0.5`, so a 90-degree rotation of a
//! square image maps pixel centres onto pixel centres and four of them give back the original.

use serde::{Deserialize, Serialize};

use super::Image;

/// What a warp samples outside the source image.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "mode", content = "value")]
pub enum BorderFill {
    /// Mirror the image at its border (fastai's default for dermoscopy augmentation).
    #[default]
    Reflect,
    /// Repeat the outermost pixel.
    Edge,
    /// A constant value in every channel (0 = black).
    Constant(f32),
}

/// A 2x3 affine map `[a b c; d e f]` from output pixel coordinates to source coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub m: [f32; 6],
}

impl Affine {
    pub const IDENTITY: Affine = Affine { m: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0] };

    /// `self` after `other` (apply `other` first, then `self`).
    pub fn compose(&self, other: &Affine) -> Affine {
        let [a, b, c, d, e, f] = self.m;
        let [g, h, i, j, k, l] = other.m;
        Affine { m: [a * g + b * j, a * h + b * k, a * i + b * l + c, d * g + e * j, d * h + e * k, d * i + e * l + f] }
    }

    #[inline]
    pub fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        let [a, b, c, d, e, f] = self.m;
        (a * x + b * y + c, d * x + e * y + f)
    }

    /// Inverse map for a rotation of the content by `degrees` (counter-clockwise on screen) about
    /// the point `(cx, cy)` in pixels.
    pub fn rotation_about(degrees: f32, cx: f32, cy: f32) -> Affine {
        let t = (degrees as f64).to_radians();
        let (s, c) = (t.sin() as f32, t.cos() as f32);
        // Screen y points down, so a counter-clockwise content rotation samples with +angle.
        Affine { m: [c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy] }
    }

    /// Inverse map for zooming by `factor` (> 1 enlarges) keeping `(px, py)` fixed.
    pub fn zoom_about(factor: f32, px: f32, py: f32) -> Affine {
        let inv = 1.0 / factor;
        Affine { m: [inv, 0.0, px - inv * px, 0.0, inv, py - inv * py] }
    }

    /// Inverse map for moving the content by `(dx, dy)` pixels.
    pub fn translation(dx: f32, dy: f32) -> Affine {
        Affine { m: [1.0, 0.0, -dx, 0.0, 1.0, -dy] }
    }
}

/// Sample `src` through `inverse` (output pixel centre -> source position) into an image of the
/// same size.
pub fn warp(src: &Image, inverse: &Affine, fill: BorderFill) -> Image {
    let (w, h) = (src.width, src.height);
    let mut out = Image::filled(src.channels, w, h, 0.0);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = inverse.apply(x as f32 + 0.5, y as f32 + 0.5);
            // Back to index space where pixel i has its centre at i.
            let (fx, fy) = (sx - 0.5, sy - 0.5);
            for c in 0..src.channels {
                out.set(c, x, y, sample_bilinear(src, c, fx, fy, fill));
            }
        }
    }
    out
}

/// Bilinear sample of channel `c` at index-space position `(fx, fy)` (pixel `i` has its centre at
/// `i`), `fill` outside the image.
#[inline]
pub(crate) fn sample_bilinear(src: &Image, c: usize, fx: f32, fy: f32, fill: BorderFill) -> f32 {
    let x0 = fx.floor();
    let y0 = fy.floor();
    let (ax, ay) = (fx - x0, fy - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    // Snap tiny weights so exact pixel-centre mappings (90-degree rotations, flips) stay exact.
    let snap = |t: f32| if t < 1e-4 { 0.0 } else if t > 1.0 - 1e-4 { 1.0 } else { t };
    let (ax, ay) = (snap(ax), snap(ay));
    let mut acc = 0.0;
    for (dy, wy) in [(0, 1.0 - ay), (1, ay)] {
        if wy == 0.0 {
            continue;
        }
        for (dx, wx) in [(0, 1.0 - ax), (1, ax)] {
            if wx == 0.0 {
                continue;
            }
            acc += wx * wy * pixel_or_fill(src, c, x0 + dx, y0 + dy, fill);
        }
    }
    acc
}

#[inline]
fn pixel_or_fill(src: &Image, c: usize, x: i64, y: i64, fill: BorderFill) -> f32 {
    let (w, h) = (src.width as i64, src.height as i64);
    if (0..w).contains(&x) && (0..h).contains(&y) {
        return src.get(c, x as usize, y as usize);
    }
    match fill {
        BorderFill::Constant(v) => v,
        BorderFill::Edge => src.get(c, x.clamp(0, w - 1) as usize, y.clamp(0, h - 1) as usize),
        BorderFill::Reflect => src.get(c, reflect(x, w), reflect(y, h)),
    }
}

/// Mirror an index into `[0, n)` ("symmetric" padding: the border pixel is repeated once).
#[inline]
fn reflect(i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

/// Exact horizontal mirror (no resampling).
pub fn flip_horizontal(src: &Image) -> Image {
    let mut out = src.clone();
    for c in 0..src.channels {
        for y in 0..src.height {
            for x in 0..src.width {
                out.set(c, x, y, src.get(c, src.width - 1 - x, y));
            }
        }
    }
    out
}

/// Exact vertical mirror (no resampling).
pub fn flip_vertical(src: &Image) -> Image {
    let mut out = src.clone();
    for c in 0..src.channels {
        for y in 0..src.height {
            for x in 0..src.width {
                out.set(c, x, y, src.get(c, x, src.height - 1 - y));
            }
        }
    }
    out
}
