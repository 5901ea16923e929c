//! Named, parameterised, serialisable image operations: the single vocabulary used by training
//! augmentation, every robustness audit, adversarial searches and test-time augmentation.
//!
//! Each [`ImageOp`] serialises to JSON (`{"op":"rotate","degrees":10.0,...}`), so every result can
//! say exactly what was done to an image. Geometric operations also apply to masks.
//!
//! Every operation checks its parameters ([`ImageOp::validate`]) before it touches an image, so a
//! zoom by 0 or a NaN gamma is an error naming the operation and the value, never NaN pixels.
//!
//! Consecutive geometric operations can be merged into one [`ImageOp::Warp`] by
//! [`compose_affine`], which resamples the image once instead of once per operation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::procedural::Procedural;
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

/// One pixel set by [`ImageOp::SetPixels`]: integer pixel coordinates (column `x`, row `y`, from
/// the top left) and an RGB value in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PixelValue {
    pub x: usize,
    pub y: usize,
    pub rgb: [f32; 3],
}

/// How [`ImageOp::Stamp`] combines its template with the image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StampMode {
    /// The artefact is the per-channel difference between the template (the region photographed
    /// *with* the artefact) and `without` (the same region without it, same size), added to the
    /// image and clipped: how the bubble and ruler templates of Katsch et al. are used.
    Difference { without: PathBuf },
    /// The template is a per-channel difference: a value `v` in `[0, 1]` adds
    /// `(v - 128/255) * 255/127` (clamped to `[-1, 1]`), so 8-bit 128 (or 16-bit 32896) adds
    /// nothing, 255 adds 1 and 1 subtracts 1. The template's alpha channel, where it has one,
    /// scales the difference. The sum is clipped to `[0, 1]`.
    Add,
    /// Pixels whose three channels are all at least `white_threshold` are the template's
    /// background and are keyed out; the rest (times the template's own alpha, where it has
    /// one) is alpha-blended over the image with `opacity`.
    KeyedBlend { white_threshold: f32, opacity: f32 },
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
    /// Set individual pixels (the few-pixel attack of Su et al.). Coordinates are pixels of an
    /// image of size `at_size = [width, height]`; applying to an image of another size is an
    /// error naming both sizes.
    SetPixels { at_size: [usize; 2], pixels: Vec<PixelValue> },
    /// Paste an artefact template (a PNG file, read when the operation is applied; an alpha
    /// channel is honoured) centred at `(x, y)` (fractions of width and height), `scale` times
    /// the image width wide (the template keeps its aspect ratio), rotated counter-clockwise by
    /// `degrees` about its centre, mirrored left-right first if `flip`. See [`StampMode`].
    Stamp {
        template: PathBuf,
        x: f32,
        y: f32,
        scale: f32,
        #[serde(default)]
        degrees: f32,
        #[serde(default)]
        flip: bool,
        mode: StampMode,
    },
    /// A procedural artefact (hair, ruler, ink, bubbles, vignette, glare, calibration patches)
    /// with every parameter explicit: see [`Procedural`].
    Artefact { artefact: Procedural },
    /// Geometric operations (rotate, zoom, translate, crop, flips) merged into one affine map and
    /// applied with a single resampling, sampling outside the image with `fill` (the members'
    /// own fills are not used). Made by [`compose_affine`].
    Warp {
        ops: Vec<ImageOp>,
        #[serde(default)]
        fill: BorderFill,
    },
    /// Add a dense perturbation read from a `float32` `.npy` file of shape `[3, height, width]`
    /// (e.g. an FGSM/PGD adversarial delta in `[0, 1]` pixel units), then clip to `[0, 1]`.
    AddDelta { file: PathBuf },
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
            ImageOp::SetPixels { at_size, pixels } => format!("pixels({}@{}x{})", pixels.len(), at_size[0], at_size[1]),
            ImageOp::Stamp { template, x, y, scale, .. } => {
                let name = template.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                format!("stamp({name}@{x},{y}x{scale})")
            }
            ImageOp::Warp { ops, .. } => format!("warp({})", ops.iter().map(ImageOp::label).collect::<Vec<_>>().join("+")),
            ImageOp::Artefact { artefact } => artefact.label(),
            ImageOp::AddDelta { file } => format!("delta({})", file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        }
    }

    /// The operation's name as it is written in JSON and TOML (`"op"`).
    pub fn name(&self) -> &'static str {
        match self {
            ImageOp::Rotate { .. } => "rotate",
            ImageOp::Zoom { .. } => "zoom",
            ImageOp::Translate { .. } => "translate",
            ImageOp::FlipHorizontal => "flip_horizontal",
            ImageOp::FlipVertical => "flip_vertical",
            ImageOp::Crop { .. } => "crop",
            ImageOp::Brightness { .. } => "brightness",
            ImageOp::Contrast { .. } => "contrast",
            ImageOp::ColourBalance { .. } => "colour_balance",
            ImageOp::Gamma { .. } => "gamma",
            ImageOp::Saturation { .. } => "saturation",
            ImageOp::Hue { .. } => "hue",
            ImageOp::GaussianBlur { .. } => "gaussian_blur",
            ImageOp::GaussianNoise { .. } => "gaussian_noise",
            ImageOp::Jpeg { .. } => "jpeg",
            ImageOp::Sequence { .. } => "sequence",
            ImageOp::SetPixels { .. } => "set_pixels",
            ImageOp::Stamp { .. } => "stamp",
            ImageOp::Warp { .. } => "warp",
            ImageOp::Artefact { .. } => "artefact",
            ImageOp::AddDelta { .. } => "add_delta",
        }
    }

    /// Check every parameter. The error names the operation, the parameter and the bad value,
    /// e.g. `image operation zoom: factor must be a finite number greater than 0, got 0`.
    /// [`ImageOp::apply`] and [`ImageOp::apply_mask`] call this first.
    pub fn validate(&self) -> Result<()> {
        let op = self.name();
        let finite = |what: &str, v: f32| -> Result<()> {
            if !v.is_finite() {
                bail!("image operation {op}: {what} must be a finite number, got {v}");
            }
            Ok(())
        };
        let within = |what: &str, v: f32, lo: f32, hi: f32| -> Result<()> {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                bail!("image operation {op}: {what} must be between {lo} and {hi}, got {v}");
            }
            Ok(())
        };
        let at_least = |what: &str, v: f32, lo: f32| -> Result<()> {
            if !(v.is_finite() && v >= lo) {
                bail!("image operation {op}: {what} must be a finite number of at least {lo}, got {v}");
            }
            Ok(())
        };
        let positive = |what: &str, v: f32| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                bail!("image operation {op}: {what} must be a finite number greater than 0, got {v}");
            }
            Ok(())
        };
        let fill_ok = |fill: &BorderFill| -> Result<()> {
            if let BorderFill::Constant(v) = fill {
                within("the constant border fill", *v, 0.0, 1.0)?;
            }
            Ok(())
        };
        match self {
            ImageOp::Rotate { degrees, fill } => {
                finite("degrees", *degrees)?;
                fill_ok(fill)?;
            }
            ImageOp::Zoom { factor, cx, cy, fill } => {
                positive("factor", *factor)?;
                within("cx", *cx, 0.0, 1.0)?;
                within("cy", *cy, 0.0, 1.0)?;
                fill_ok(fill)?;
            }
            ImageOp::Translate { dx, dy, fill } => {
                within("dx", *dx, -1.0, 1.0)?;
                within("dy", *dy, -1.0, 1.0)?;
                fill_ok(fill)?;
            }
            ImageOp::FlipHorizontal | ImageOp::FlipVertical => {}
            ImageOp::Crop { scale, .. } => {
                if !(scale.is_finite() && *scale > 0.0 && *scale <= 1.0) {
                    bail!("image operation {op}: scale must be greater than 0 and at most 1, got {scale}");
                }
            }
            ImageOp::Brightness { factor } | ImageOp::Contrast { factor } | ImageOp::Saturation { factor } => {
                at_least("factor", *factor, 0.0)?
            }
            ImageOp::ColourBalance { gain, offset } => {
                for c in 0..3 {
                    at_least(&format!("gain[{c}]"), gain[c], 0.0)?;
                    within(&format!("offset[{c}]"), offset[c], -1.0, 1.0)?;
                }
            }
            ImageOp::Gamma { gamma } => positive("gamma", *gamma)?,
            ImageOp::Hue { shift } => within("shift (turns)", *shift, -1.0, 1.0)?,
            ImageOp::GaussianBlur { sigma } => within("sigma (a fraction of the width)", *sigma, 0.0, 1.0)?,
            ImageOp::GaussianNoise { std, .. } => within("std", *std, 0.0, 1.0)?,
            ImageOp::Jpeg { quality } => {
                if !(1..=100).contains(quality) {
                    bail!("image operation {op}: quality must be between 1 and 100, got {quality}");
                }
            }
            ImageOp::Sequence { ops } => {
                for (i, inner) in ops.iter().enumerate() {
                    inner.validate().map_err(|e| anyhow::anyhow!("step {} of a sequence: {e:#}", i + 1))?;
                }
            }
            ImageOp::SetPixels { at_size: [w, h], pixels } => {
                if *w == 0 || *h == 0 {
                    bail!("image operation {op}: at_size must be at least 1x1 pixels, got {w}x{h}");
                }
                for (i, p) in pixels.iter().enumerate() {
                    if p.x >= *w || p.y >= *h {
                        bail!("image operation {op}: pixel {i} at ({}, {}) lies outside the {w}x{h} image", p.x, p.y);
                    }
                    for c in 0..3 {
                        within(&format!("pixel {i} rgb[{c}]"), p.rgb[c], 0.0, 1.0)?;
                    }
                }
            }
            ImageOp::Artefact { artefact } => artefact.validate()?,
            ImageOp::Stamp { template, x, y, scale, degrees, mode, .. } => {
                if template.as_os_str().is_empty() {
                    bail!("image operation {op}: template must name a PNG file");
                }
                within("x", *x, 0.0, 1.0)?;
                within("y", *y, 0.0, 1.0)?;
                if !(scale.is_finite() && *scale > 0.0 && *scale <= 4.0) {
                    bail!("image operation {op}: scale (template width / image width) must be greater than 0 and at most 4, got {scale}");
                }
                finite("degrees", *degrees)?;
                match mode {
                    StampMode::KeyedBlend { white_threshold, opacity } => {
                        if !(white_threshold.is_finite() && *white_threshold > 0.0 && *white_threshold <= 1.0) {
                            bail!("image operation {op}: white_threshold must be greater than 0 and at most 1, got {white_threshold}");
                        }
                        within("opacity", *opacity, 0.0, 1.0)?;
                    }
                    StampMode::Difference { without } if without.as_os_str().is_empty() => {
                        bail!("image operation {op}: the difference mode's 'without' must name a PNG file")
                    }
                    _ => {}
                }
            }
            ImageOp::Warp { ops, fill } => {
                fill_ok(fill)?;
                for (i, inner) in ops.iter().enumerate() {
                    if !inner.is_affine() {
                        bail!("image operation {op}: step {} ({}) is not a geometric operation a warp can merge", i + 1, inner.label());
                    }
                    inner.validate().map_err(|e| anyhow::anyhow!("step {} of a warp: {e:#}", i + 1))?;
                }
            }
            ImageOp::AddDelta { file } => {
                if file.as_os_str().is_empty() {
                    bail!("image operation {op}: 'file' must name a .npy file");
                }
            }
        }
        Ok(())
    }

    /// True for the operations whose effect is one affine map: rotate, zoom, translate, crop and
    /// the flips (and a [`ImageOp::Warp`] of them).
    pub fn is_affine(&self) -> bool {
        matches!(
            self,
            ImageOp::Rotate { .. }
                | ImageOp::Zoom { .. }
                | ImageOp::Translate { .. }
                | ImageOp::Crop { .. }
                | ImageOp::FlipHorizontal
                | ImageOp::FlipVertical
                | ImageOp::Warp { .. }
        )
    }

    /// True if the operation moves pixels (and so must be applied to masks too).
    pub fn is_geometric(&self) -> bool {
        match self {
            ImageOp::Rotate { .. }
            | ImageOp::Zoom { .. }
            | ImageOp::Translate { .. }
            | ImageOp::FlipHorizontal
            | ImageOp::FlipVertical
            | ImageOp::Crop { .. }
            | ImageOp::Warp { .. } => true,
            ImageOp::Sequence { ops } => ops.iter().any(ImageOp::is_geometric),
            _ => false,
        }
    }

    /// Apply to an image (any number of channels for geometric operations, RGB for colour ones).
    pub fn apply(&self, img: &Image) -> Result<Image> {
        self.validate()?;
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
            ImageOp::Warp { fill, .. } => warp::warp(img, &self.affine(img).expect("affine op"), *fill),
            ImageOp::SetPixels { at_size, pixels } => set_pixels(img, *at_size, pixels)?,
            ImageOp::Artefact { artefact } => artefact.apply(img)?,
            ImageOp::AddDelta { file } => add_delta(img, file)?,
            ImageOp::Stamp { template, x, y, scale, degrees, flip, mode } => {
                stamp(img, template, (*x, *y), *scale, *degrees, *flip, mode)?
            }
        })
    }

    /// Apply to a mask: geometric operations move it exactly as they move the image (with a
    /// zero border), photometric ones leave it unchanged.
    pub fn apply_mask(&self, mask: &Image) -> Result<Image> {
        self.validate()?;
        Ok(match self {
            ImageOp::Rotate { .. }
            | ImageOp::Zoom { .. }
            | ImageOp::Translate { .. }
            | ImageOp::Crop { .. }
            | ImageOp::Warp { .. } => {
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

    /// The inverse sampling map (output pixel position -> source position, in pixels of `img`) of
    /// an affine operation; `None` for the others. For a [`ImageOp::Warp`] it is the composition
    /// of its members' maps.
    pub fn affine(&self, img: &Image) -> Option<Affine> {
        let (w, h) = (img.width as f32, img.height as f32);
        Some(match *self {
            ImageOp::FlipHorizontal => Affine { m: [-1.0, 0.0, w, 0.0, 1.0, 0.0] },
            ImageOp::FlipVertical => Affine { m: [1.0, 0.0, 0.0, 0.0, -1.0, h] },
            ImageOp::Warp { ref ops, .. } => {
                // Applying A then B samples the source at A^-1(B^-1(p)).
                let mut total = Affine::IDENTITY;
                for op in ops {
                    total = total.compose(&op.affine(img)?);
                }
                total
            }
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

/// Merge every run of consecutive geometric operations (rotate, zoom, translate, crop, flips) into
/// one [`ImageOp::Warp`], so that the run is resampled once; other operations stay where they are
/// and nested sequences are flattened (applying the result equals applying `ops` in order, up to
/// resampling and border handling).
///
/// A run's border fill is its members' common fill (a crop counts as `Edge`; flips take any), and
/// a member with a different fill starts a new run. A run of one operation is left as it is.
pub fn compose_affine(ops: &[ImageOp]) -> Vec<ImageOp> {
    fn flatten(ops: &[ImageOp], out: &mut Vec<ImageOp>) {
        for op in ops {
            match op {
                ImageOp::Sequence { ops } => flatten(ops, out),
                ImageOp::Warp { ops: inner, fill } => {
                    // An existing warp joins a run with the same fill.
                    for o in inner {
                        out.push(with_fill(o, *fill));
                    }
                }
                other => out.push(other.clone()),
            }
        }
    }
    fn with_fill(op: &ImageOp, f: BorderFill) -> ImageOp {
        match op.clone() {
            ImageOp::Rotate { degrees, .. } => ImageOp::Rotate { degrees, fill: f },
            ImageOp::Zoom { factor, cx, cy, .. } => ImageOp::Zoom { factor, cx, cy, fill: f },
            ImageOp::Translate { dx, dy, .. } => ImageOp::Translate { dx, dy, fill: f },
            other => other,
        }
    }
    fn fill_of(op: &ImageOp) -> Option<BorderFill> {
        match op {
            ImageOp::Rotate { fill, .. } | ImageOp::Zoom { fill, .. } | ImageOp::Translate { fill, .. } => Some(*fill),
            ImageOp::Crop { .. } => Some(BorderFill::Edge),
            _ => None,
        }
    }
    let mut flat = Vec::new();
    flatten(ops, &mut flat);
    let mut out = Vec::new();
    let mut run: Vec<ImageOp> = Vec::new();
    let mut run_fill: Option<BorderFill> = None;
    let finish = |run: &mut Vec<ImageOp>, run_fill: &mut Option<BorderFill>, out: &mut Vec<ImageOp>| {
        match run.len() {
            0 => {}
            1 => out.push(run.pop().unwrap()),
            _ => out.push(ImageOp::Warp { ops: std::mem::take(run), fill: run_fill.unwrap_or_default() }),
        }
        *run_fill = None;
    };
    for op in flat {
        if !op.is_affine() {
            finish(&mut run, &mut run_fill, &mut out);
            out.push(op);
            continue;
        }
        if let (Some(f), Some(current)) = (fill_of(&op), run_fill)
            && f != current
        {
            finish(&mut run, &mut run_fill, &mut out);
        }
        if run_fill.is_none() {
            run_fill = fill_of(&op);
        }
        run.push(op);
    }
    finish(&mut run, &mut run_fill, &mut out);
    out
}

fn add_delta(img: &Image, file: &std::path::Path) -> Result<Image> {
    let (shape, delta) = super::npy::read_npy(file)?;
    if shape != [img.channels, img.height, img.width] {
        bail!("image operation add_delta: {} holds a {shape:?} perturbation but the image is [{}, {}, {}]", file.display(), img.channels, img.height, img.width);
    }
    let mut out = img.clone();
    out.data.iter_mut().zip(&delta).for_each(|(p, d)| *p = (*p + d).clamp(0.0, 1.0));
    Ok(out)
}

fn set_pixels(img: &Image, at_size: [usize; 2], pixels: &[PixelValue]) -> Result<Image> {
    if [img.width, img.height] != at_size {
        bail!(
            "image operation set_pixels: its pixels are for a {}x{} image but the image is {}x{}",
            at_size[0],
            at_size[1],
            img.width,
            img.height
        );
    }
    if img.channels != 3 {
        bail!("image operation set_pixels needs an RGB image, got {} channels", img.channels);
    }
    let mut out = img.clone();
    for p in pixels {
        for c in 0..3 {
            out.set(c, p.x, p.y, p.rgb[c]);
        }
    }
    Ok(out)
}

/// A stamp template as read from its file: RGB and alpha planes.
type Template = Arc<(Image, Image)>;

/// Path -> (file length, modification time, template).
type TemplateCache = Mutex<HashMap<PathBuf, (u64, Option<std::time::SystemTime>, Template)>>;

/// Templates already read, keyed by path and checked against the file's length and time, so
/// that an audit stamping thousands of images reads the file once.
fn load_template(path: &Path) -> Result<Template> {
    static CACHE: OnceLock<TemplateCache> = OnceLock::new();
    let meta = std::fs::metadata(path)
        .with_context(|| format!("image operation stamp: cannot read the template file {}", path.display()))?;
    let stamp = (meta.len(), meta.modified().ok());
    let cache = CACHE.get_or_init(Default::default);
    if let Some((len, time, t)) = cache.lock().unwrap().get(path)
        && (*len, *time) == stamp
    {
        return Ok(t.clone());
    }
    let t: Template = Arc::new(
        io::read_rgb_alpha(path).with_context(|| format!("image operation stamp: cannot read the template file {}", path.display()))?,
    );
    let mut map = cache.lock().unwrap();
    if map.len() >= 64 {
        map.clear();
    }
    map.insert(path.to_path_buf(), (stamp.0, stamp.1, t.clone()));
    Ok(t)
}

fn stamp(img: &Image, path: &Path, centre: (f32, f32), scale: f32, degrees: f32, flip: bool, mode: &StampMode) -> Result<Image> {
    if img.channels != 3 {
        bail!("image operation stamp needs an RGB image, got {} channels", img.channels);
    }
    let template = load_template(path)?;
    let (rgb, alpha) = (&template.0, &template.1);
    let baseline = match mode {
        StampMode::Difference { without } => {
            let b = load_template(without)?;
            if (b.0.width, b.0.height) != (rgb.width, rgb.height) {
                bail!(
                    "image operation stamp: {} is {}x{} but {} is {}x{}; a difference needs two images of one size",
                    path.display(),
                    rgb.width,
                    rgb.height,
                    without.display(),
                    b.0.width,
                    b.0.height
                );
            }
            Some(b)
        }
        _ => None,
    };
    // Premultiplied effect planes: what is added (Add, Difference) or blended in (KeyedBlend),
    // and coverage.
    let (tw, th) = (rgb.width, rgb.height);
    let plane = tw * th;
    let mut effect = Image::filled(3, tw, th, 0.0);
    let mut cover = alpha.clone();
    for i in 0..plane {
        let px = [rgb.data[i], rgb.data[plane + i], rgb.data[2 * plane + i]];
        let a = match *mode {
            StampMode::Add | StampMode::Difference { .. } => alpha.data[i],
            StampMode::KeyedBlend { white_threshold, .. } => {
                if px.iter().all(|&v| v >= white_threshold) {
                    0.0
                } else {
                    alpha.data[i]
                }
            }
        };
        cover.data[i] = a;
        for (c, v) in px.iter().enumerate() {
            effect.data[c * plane + i] = match (mode, &baseline) {
                (StampMode::Difference { .. }, Some(b)) => (v - b.0.data[c * plane + i]) * a,
                (StampMode::Add, _) | (StampMode::Difference { .. }, None) => {
                    ((v - 128.0 / 255.0) * (255.0 / 127.0)).clamp(-1.0, 1.0) * a
                }
                (StampMode::KeyedBlend { .. }, _) => v * a,
            };
        }
    }
    // Resize the template to its size on the image (antialiased), then place it with one
    // bilinear sample per output pixel.
    let (w, h) = (img.width as f32, img.height as f32);
    let target_w = scale * w;
    let target_h = target_w * th as f32 / tw as f32;
    let (sw, sh) = ((target_w.round() as usize).max(1), (target_h.round() as usize).max(1));
    let effect = match mode {
        StampMode::KeyedBlend { .. } => effect.resized(sw, sh),
        // Differences are signed and the resampler clamps to [0, 1]: resize (d + 1) / 2, which
        // the filter's convex weights keep inside [0, 1], and map back.
        _ => {
            let mut shifted = effect;
            shifted.data.iter_mut().for_each(|v| *v = (*v + 1.0) / 2.0);
            let mut back = shifted.resized(sw, sh);
            back.data.iter_mut().for_each(|v| *v = 2.0 * *v - 1.0);
            back
        }
    };
    let cover = cover.resized(sw, sh);
    let (kx, ky) = (sw as f32 / target_w, sh as f32 / target_h);
    let (cx, cy) = (centre.0 * w, centre.1 * h);
    let t = (degrees as f64).to_radians();
    let (sin, cos) = (t.sin() as f32, t.cos() as f32);
    let radius = 0.5 * (target_w * target_w + target_h * target_h).sqrt() + 2.0;
    let x_range = ((cx - radius).floor().max(0.0) as usize)..((cx + radius).ceil().min(w) as usize);
    let y_range = ((cy - radius).floor().max(0.0) as usize)..((cy + radius).ceil().min(h) as usize);
    let zero = BorderFill::Constant(0.0);
    let mut out = img.clone();
    for py in y_range {
        for px in x_range.clone() {
            let (u, v) = (px as f32 + 0.5 - cx, py as f32 + 0.5 - cy);
            // The content turns counter-clockwise on screen (y down): sample with +angle.
            let (ru, rv) = (cos * u - sin * v, sin * u + cos * v);
            let mut tx = ru * kx + sw as f32 / 2.0;
            let ty = rv * ky + sh as f32 / 2.0;
            if flip {
                tx = sw as f32 - tx;
            }
            let a = warp::sample_bilinear(&cover, 0, tx - 0.5, ty - 0.5, zero);
            if a <= 0.0 {
                continue;
            }
            for c in 0..3 {
                let e = warp::sample_bilinear(&effect, c, tx - 0.5, ty - 0.5, zero);
                let v = out.get(c, px, py);
                let new = match *mode {
                    StampMode::Add | StampMode::Difference { .. } => v + e,
                    StampMode::KeyedBlend { opacity, .. } => v * (1.0 - opacity * a) + opacity * e,
                };
                out.set(c, px, py, new.clamp(0.0, 1.0));
            }
        }
    }
    Ok(out)
}
