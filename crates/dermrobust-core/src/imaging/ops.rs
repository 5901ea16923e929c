//! Named, parameterised, serialisable image operations: the single vocabulary used by training
//! augmentation, every robustness audit, adversarial searches and test-time augmentation.
//!
//! Each [`ImageOp`] serialises to JSON (`{"op":"rotate","degrees":10.0,...}`), so every result can
//! say exactly what was done to an image. Geometric operations also apply to masks.

use anyhow::Result;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::warp::{self, Affine, BorderFill};
use super::{colour, filter, io, Image};

/// Where a crop (or a zoom into a region) is anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    Centre,
}

impl Anchor {
    pub const CORNERS: [Anchor; 4] = [Anchor::TopLeft, Anchor::TopRight, Anchor::BottomLeft, Anchor::BottomRight];

    /// The anchor as a fraction of width and height.
    pub fn point(self) -> (f32, f32) {
        match self {
            Anchor::TopLeft => (0.0, 0.0),
            Anchor::TopRight => (1.0, 0.0),
            Anchor::BottomLeft => (0.0, 1.0),
            Anchor::BottomRight => (1.0, 1.0),
            Anchor::Centre => (0.5, 0.5),
        }
    }
}

/// One image operation. Positions and shifts are fractions of the image size, so an operation
/// means the same at every resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ImageOp {
    /// Rotate the content counter-clockwise by `degrees` about the image centre.
    Rotate {
        degrees: f32,
        #[serde(default)]
        fill: BorderFill,
    },
    /// Zoom by `factor` (> 1 enlarges, < 1 shrinks) keeping the point `(cx, cy)` fixed.
    Zoom {
        factor: f32,
        #[serde(default = "half")]
        cx: f32,
        #[serde(default = "half")]
        cy: f32,
        #[serde(default)]
        fill: BorderFill,
    },
    /// Move the content by `(dx, dy)` fractions of width and height.
    Translate {
        dx: f32,
        dy: f32,
        #[serde(default)]
        fill: BorderFill,
    },
    FlipHorizontal,
    FlipVertical,
    /// Crop `scale` of each side at `anchor` and resize back to the full size.
    Crop { anchor: Anchor, scale: f32 },
    /// Multiply intensities by `factor`.
    Brightness { factor: f32 },
    /// Scale the distance from the mean grey by `factor`.
    Contrast { factor: f32 },
    /// `x * gain[c] + offset[c]` per RGB channel.
    ColourBalance {
        #[serde(default = "unit_gain")]
        gain: [f32; 3],
        #[serde(default)]
        offset: [f32; 3],
    },
    /// `x^gamma`.
    Gamma { gamma: f32 },
    /// Blend with grey: 0 = grey, 1 = unchanged.
    Saturation { factor: f32 },
    /// Rotate hue by `shift` turns.
    Hue { shift: f32 },
    /// Gaussian blur, `sigma` as a fraction of the image width.
    GaussianBlur { sigma: f32 },
    /// Additive Gaussian noise of standard deviation `std`, reproducible from `seed`.
    GaussianNoise { std: f32, seed: u64 },
    /// JPEG re-compression at `quality` (1-100).
    Jpeg { quality: u8 },
    /// Several operations in order.
    Sequence { ops: Vec<ImageOp> },
}

fn half() -> f32 {
    0.5
}
fn unit_gain() -> [f32; 3] {
    [1.0; 3]
}

impl ImageOp {
    /// A short human-readable name with the parameters, e.g. `rotate(10)`.
    pub fn label(&self) -> String {
        match self {
            ImageOp::Rotate { degrees, .. } => format!("rotate({degrees})"),
            ImageOp::Zoom { factor, cx, cy, .. } if *cx == 0.5 && *cy == 0.5 => format!("zoom({factor})"),
            ImageOp::Zoom { factor, cx, cy, .. } => format!("zoom({factor}@{cx},{cy})"),
            ImageOp::Translate { dx, dy, .. } => format!("translate({dx},{dy})"),
            ImageOp::FlipHorizontal => "hflip".into(),
            ImageOp::FlipVertical => "vflip".into(),
            ImageOp::Crop { anchor, scale } => format!("crop({anchor:?},{scale})"),
            ImageOp::Brightness { factor } => format!("brightness({factor})"),
            ImageOp::Contrast { factor } => format!("contrast({factor})"),
            ImageOp::ColourBalance { gain, offset } => format!("colour(gain={gain:?},offset={offset:?})"),
            ImageOp::Gamma { gamma } => format!("gamma({gamma})"),
            ImageOp::Saturation { factor } => format!("saturation({factor})"),
            ImageOp::Hue { shift } => format!("hue({shift})"),
            ImageOp::GaussianBlur { sigma } => format!("blur({sigma})"),
            ImageOp::GaussianNoise { std, .. } => format!("noise({std})"),
            ImageOp::Jpeg { quality } => format!("jpeg({quality})"),
            ImageOp::Sequence { ops } if ops.is_empty() => "identity".into(),
            ImageOp::Sequence { ops } => ops.iter().map(ImageOp::label).collect::<Vec<_>>().join("+"),
        }
    }

    /// True if the operation moves pixels (and so must be applied to masks too).
    pub fn is_geometric(&self) -> bool {
        match self {
            ImageOp::Rotate { .. }
            | ImageOp::Zoom { .. }
            | ImageOp::Translate { .. }
            | ImageOp::FlipHorizontal
            | ImageOp::FlipVertical
            | ImageOp::Crop { .. } => true,
            ImageOp::Sequence { ops } => ops.iter().any(ImageOp::is_geometric),
            _ => false,
        }
    }

    /// Apply to an image (any number of channels for geometric operations, RGB for colour ones).
    pub fn apply(&self, img: &Image) -> Result<Image> {
        Ok(match self {
            ImageOp::Rotate { fill, .. } | ImageOp::Zoom { fill, .. } | ImageOp::Translate { fill, .. } => {
                warp::warp(img, &self.affine(img).expect("affine op"), *fill)
            }
            ImageOp::Crop { .. } => warp::warp(img, &self.affine(img).expect("affine op"), BorderFill::Edge),
            ImageOp::FlipHorizontal => warp::flip_horizontal(img),
            ImageOp::FlipVertical => warp::flip_vertical(img),
            ImageOp::Brightness { factor } => colour::brightness(img, *factor),
            ImageOp::Contrast { factor } => colour::contrast(img, *factor),
            ImageOp::ColourBalance { gain, offset } => colour::colour_balance(img, *gain, *offset),
            ImageOp::Gamma { gamma } => colour::gamma(img, *gamma),
            ImageOp::Saturation { factor } => colour::saturation(img, *factor),
            ImageOp::Hue { shift } => colour::hue(img, *shift),
            ImageOp::GaussianBlur { sigma } => filter::gaussian_blur(img, sigma * img.width as f32),
            ImageOp::GaussianNoise { std, seed } => filter::gaussian_noise(img, *std, *seed),
            ImageOp::Jpeg { quality } => io::jpeg_roundtrip(img, *quality)?,
            ImageOp::Sequence { ops } => {
                let mut out = img.clone();
                for op in ops {
                    out = op.apply(&out)?;
                }
                out
            }
        })
    }

    /// Apply to a mask: geometric operations move it exactly as they move the image (with a
    /// zero border), photometric ones leave it unchanged.
    pub fn apply_mask(&self, mask: &Image) -> Result<Image> {
        Ok(match self {
            ImageOp::Rotate { .. } | ImageOp::Zoom { .. } | ImageOp::Translate { .. } | ImageOp::Crop { .. } => {
                warp::warp(mask, &self.affine(mask).expect("affine op"), BorderFill::Constant(0.0))
            }
            ImageOp::FlipHorizontal | ImageOp::FlipVertical => self.apply(mask)?,
            ImageOp::Sequence { ops } => {
                let mut out = mask.clone();
                for op in ops {
                    out = op.apply_mask(&out)?;
                }
                out
            }
            _ => mask.clone(),
        })
    }

    /// The inverse sampling map of an affine operation, in pixels of `img`.
    fn affine(&self, img: &Image) -> Option<Affine> {
        let (w, h) = (img.width as f32, img.height as f32);
        Some(match *self {
            ImageOp::Rotate { degrees, .. } => Affine::rotation_about(degrees, w / 2.0, h / 2.0),
            ImageOp::Zoom { factor, cx, cy, .. } => Affine::zoom_about(factor, cx * w, cy * h),
            ImageOp::Translate { dx, dy, .. } => Affine::translation(dx * w, dy * h),
            ImageOp::Crop { anchor, scale } => {
                let (px, py) = anchor.point();
                Affine::zoom_about(1.0 / scale, px * w, py * h)
            }
            _ => return None,
        })
    }

    /// Apply to many images in parallel.
    pub fn apply_batch(&self, images: &[Image]) -> Result<Vec<Image>> {
        images.par_iter().map(|img| self.apply(img)).collect()
    }
}
