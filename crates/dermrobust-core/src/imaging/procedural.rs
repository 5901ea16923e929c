//! Procedural dermoscopy artefacts: hair, rulers with ticks and numbers, ink marks, air bubbles,
//! the dermoscope's vignette and dark corners, gel glare and colour-calibration patches.
//!
//! Each is a [`Procedural`] record with every parameter explicit (positions as fractions of the
//! image width and height, lengths as fractions of the width), so the record *is* the artefact:
//! `ImageOp::Artefact { artefact }` replays it bit for bit, and a seeded sampler
//! ([`crate::imaging::artefacts`]) only chooses the parameters. The synthetic generator
//! (`synth::render`) draws its hairs with [`paint_hair`] and its vignette with
//! [`Vignette::factor`], the functions [`Procedural::apply`] uses.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::Image;

/// Colour of the synthetic generator's hairs.
pub const HAIR_COLOUR: [f32; 3] = [0.16, 0.11, 0.08];
/// Surgical skin-marker colours: gentian violet, blue, black, green.
pub const INK_COLOURS: [[f32; 3]; 4] = [[0.40, 0.17, 0.52], [0.13, 0.22, 0.58], [0.08, 0.08, 0.10], [0.10, 0.42, 0.25]];

/// One hair: a quadratic Bezier curve `p0, p1, p2` (fractions of width and height), its width
/// (fraction of the image width; the core is half of it, the edge fades out to all of it) and
/// colour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HairStrand {
    pub p0: [f32; 2],
    pub p1: [f32; 2],
    pub p2: [f32; 2],
    pub width: f32,
    #[serde(default = "hair_colour")]
    pub colour: [f32; 3],
}

fn hair_colour() -> [f32; 3] {
    HAIR_COLOUR
}

/// A dark ring outside a circle about `(cx, cy)`: the light falls by `strength` between
/// `radius - inner` and `radius + outer` (fractions of the width). A radius near 0.5 is the
/// dermoscope's round field of view; near 0.7 only the corners darken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vignette {
    pub cx: f32,
    pub cy: f32,
    pub radius: f32,
    pub strength: f32,
    pub inner: f32,
    pub outer: f32,
}

impl Vignette {
    /// The dermoscope border the synthetic generator draws.
    pub fn dermoscope(radius: f32) -> Vignette {
        Vignette { cx: 0.5, cy: 0.5, radius, strength: 0.94, inner: 0.03, outer: 0.01 }
    }

    /// The light factor at `p` (fractions; the generator's pixel centres).
    pub fn factor(&self, p: [f32; 2]) -> f32 {
        let rr = ((p[0] - self.cx).powi(2) + (p[1] - self.cy).powi(2)).sqrt();
        1.0 - self.strength * smoothstep(self.radius - self.inner, self.radius + self.outer, rr)
    }
}

/// The shape of an ink mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InkShape {
    /// A filled disc of radius `size`.
    Dot,
    /// A ring of radius `size` and line width `width`.
    Circle,
    /// A line from `(x, y)` to `(x2, y2)` of width `width`.
    Line,
}

/// One ink mark (fractions of width and height for positions, of the width for lengths).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InkMark {
    pub shape: InkShape,
    pub x: f32,
    pub y: f32,
    #[serde(default)]
    pub x2: f32,
    #[serde(default)]
    pub y2: f32,
    pub size: f32,
    pub width: f32,
    pub colour: [f32; 3],
    pub opacity: f32,
}

/// One air bubble in the immersion gel: a dark refracting rim of width `rim` at `radius`, a
/// slightly brighter inside and a specular highlight up and left of the centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bubble {
    pub x: f32,
    pub y: f32,
    pub radius: f32,
    pub rim: f32,
    pub strength: f32,
}

/// A procedural artefact with every parameter explicit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Procedural {
    Hair {
        strands: Vec<HairStrand>,
    },
    /// A ruler strip centred at `(x, y)`, `length` long and `width` wide, turned by `degrees`
    /// (counter-clockwise), with a tick every `spacing` (long every 5th, numbered every 10th),
    /// drawn in `colour` on `background` (blended with `background_opacity`).
    Ruler {
        x: f32,
        y: f32,
        length: f32,
        width: f32,
        degrees: f32,
        spacing: f32,
        colour: [f32; 3],
        background: [f32; 3],
        background_opacity: f32,
        /// Number of the first tick (the numbers shown are (first + i) / 10).
        #[serde(default)]
        first: u32,
    },
    Ink {
        marks: Vec<InkMark>,
    },
    Bubbles {
        bubbles: Vec<Bubble>,
    },
    Vignette(Vignette),
    /// Specular glare of the gel: an elliptical bright spot (screen blend with white).
    Glare {
        x: f32,
        y: f32,
        rx: f32,
        ry: f32,
        degrees: f32,
        strength: f32,
    },
    /// A grid of colour-calibration squares of side `patch` with top-left corner at `(x, y)`,
    /// `columns` per row, separated by a thin dark gap.
    CalibrationPatches {
        x: f32,
        y: f32,
        patch: f32,
        columns: usize,
        colours: Vec<[f32; 3]>,
    },
}

impl Procedural {
    pub fn kind(&self) -> &'static str {
        match self {
            Procedural::Hair { .. } => "hair",
            Procedural::Ruler { .. } => "ruler",
            Procedural::Ink { .. } => "ink",
            Procedural::Bubbles { .. } => "bubbles",
            Procedural::Vignette(_) => "vignette",
            Procedural::Glare { .. } => "glare",
            Procedural::CalibrationPatches { .. } => "calibration_patches",
        }
    }

    pub fn label(&self) -> String {
        match self {
            Procedural::Hair { strands } => format!("hair({})", strands.len()),
            Procedural::Ruler { x, y, degrees, .. } => format!("ruler({x:.2},{y:.2},{degrees:.0}deg)"),
            Procedural::Ink { marks } => format!("ink({})", marks.len()),
            Procedural::Bubbles { bubbles } => format!("bubbles({})", bubbles.len()),
            Procedural::Vignette(v) => format!("vignette({:.2})", v.radius),
            Procedural::Glare { x, y, .. } => format!("glare({x:.2},{y:.2})"),
            Procedural::CalibrationPatches { colours, .. } => format!("patches({})", colours.len()),
        }
    }

    /// Check every parameter (called by `ImageOp::validate`).
    pub fn validate(&self) -> Result<()> {
        let kind = self.kind();
        let check = |what: &str, v: f32, lo: f32, hi: f32| -> Result<()> {
            if !(v.is_finite() && v >= lo && v <= hi) {
                bail!("image operation artefact ({kind}): {what} must be between {lo} and {hi}, got {v}");
            }
            Ok(())
        };
        let colour = |what: &str, c: &[f32; 3]| -> Result<()> {
            for (i, v) in c.iter().enumerate() {
                check(&format!("{what}[{i}]"), *v, 0.0, 1.0)?;
            }
            Ok(())
        };
        match self {
            Procedural::Hair { strands } => {
                for (i, s) in strands.iter().enumerate() {
                    for (name, p) in [("p0", s.p0), ("p1", s.p1), ("p2", s.p2)] {
                        check(&format!("strand {i} {name}[0]"), p[0], -2.0, 3.0)?;
                        check(&format!("strand {i} {name}[1]"), p[1], -2.0, 3.0)?;
                    }
                    check(&format!("strand {i} width"), s.width, 1e-5, 0.5)?;
                    colour(&format!("strand {i} colour"), &s.colour)?;
                }
            }
            Procedural::Ruler { x, y, length, width, degrees, spacing, colour: c, background, background_opacity, .. } => {
                check("x", *x, -1.0, 2.0)?;
                check("y", *y, -1.0, 2.0)?;
                check("length", *length, 1e-4, 4.0)?;
                check("width", *width, 1e-4, 1.0)?;
                check("degrees", *degrees, -3600.0, 3600.0)?;
                check("spacing", *spacing, 1e-3, 1.0)?;
                colour("colour", c)?;
                colour("background", background)?;
                check("background_opacity", *background_opacity, 0.0, 1.0)?;
            }
            Procedural::Ink { marks } => {
                for (i, m) in marks.iter().enumerate() {
                    check(&format!("mark {i} x"), m.x, -1.0, 2.0)?;
                    check(&format!("mark {i} y"), m.y, -1.0, 2.0)?;
                    check(&format!("mark {i} x2"), m.x2, -1.0, 2.0)?;
                    check(&format!("mark {i} y2"), m.y2, -1.0, 2.0)?;
                    check(&format!("mark {i} size"), m.size, 0.0, 2.0)?;
                    check(&format!("mark {i} width"), m.width, 0.0, 1.0)?;
                    colour(&format!("mark {i} colour"), &m.colour)?;
                    check(&format!("mark {i} opacity"), m.opacity, 0.0, 1.0)?;
                }
            }
            Procedural::Bubbles { bubbles } => {
                for (i, b) in bubbles.iter().enumerate() {
                    check(&format!("bubble {i} x"), b.x, -1.0, 2.0)?;
                    check(&format!("bubble {i} y"), b.y, -1.0, 2.0)?;
                    check(&format!("bubble {i} radius"), b.radius, 1e-4, 1.0)?;
                    check(&format!("bubble {i} rim"), b.rim, 1e-4, 1.0)?;
                    check(&format!("bubble {i} strength"), b.strength, 0.0, 1.0)?;
                }
            }
            Procedural::Vignette(v) => {
                check("cx", v.cx, -1.0, 2.0)?;
                check("cy", v.cy, -1.0, 2.0)?;
                check("radius", v.radius, 0.0, 2.0)?;
                check("strength", v.strength, 0.0, 1.0)?;
                check("inner", v.inner, 0.0, 1.0)?;
                check("outer", v.outer, 0.0, 1.0)?;
                if v.inner + v.outer <= 0.0 {
                    bail!("image operation artefact (vignette): inner + outer must be greater than 0");
                }
            }
            Procedural::Glare { x, y, rx, ry, degrees, strength } => {
                check("x", *x, -1.0, 2.0)?;
                check("y", *y, -1.0, 2.0)?;
                check("rx", *rx, 1e-4, 2.0)?;
                check("ry", *ry, 1e-4, 2.0)?;
                check("degrees", *degrees, -3600.0, 3600.0)?;
                check("strength", *strength, 0.0, 1.0)?;
            }
            Procedural::CalibrationPatches { x, y, patch, columns, colours } => {
                check("x", *x, -1.0, 2.0)?;
                check("y", *y, -1.0, 2.0)?;
                check("patch", *patch, 1e-3, 1.0)?;
                if *columns == 0 || colours.is_empty() {
                    bail!("image operation artefact (calibration_patches): needs at least one column and one colour");
                }
                for (i, c) in colours.iter().enumerate() {
                    colour(&format!("colour {i}"), c)?;
                }
            }
        }
        Ok(())
    }

    /// Draw the artefact on an RGB image (parameters already validated).
    pub fn apply(&self, img: &Image) -> Result<Image> {
        if img.channels != 3 {
            bail!("image operation artefact ({}) needs an RGB image, got {} channels", self.kind(), img.channels);
        }
        let mut out = img.clone();
        let (w, h) = (img.width, img.height);
        // Positions in fractions of the width on both axes (y scaled by h / w, exactly 1 for a
        // square image), the generator's pixel centres.
        let k = h as f32 / w as f32;
        let at = |x: usize, y: usize| [(x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32 * k];
        match self {
            Procedural::Hair { strands } => {
                let scaled: Vec<HairStrand> = strands
                    .iter()
                    .map(|s| HairStrand { p0: [s.p0[0], s.p0[1] * k], p1: [s.p1[0], s.p1[1] * k], p2: [s.p2[0], s.p2[1] * k], width: s.width, colour: s.colour })
                    .collect();
                for y in 0..h {
                    for x in 0..w {
                        let c = [out.get(0, x, y), out.get(1, x, y), out.get(2, x, y)];
                        let c = paint_hair(c, at(x, y), &scaled);
                        for (ch, v) in c.iter().enumerate() {
                            out.set(ch, x, y, v.clamp(0.0, 1.0));
                        }
                    }
                }
            }
            Procedural::Vignette(v) => {
                let v = Vignette { cy: v.cy * k, ..v.clone() };
                for y in 0..h {
                    for x in 0..w {
                        let f = v.factor(at(x, y));
                        for ch in 0..3 {
                            out.set(ch, x, y, (out.get(ch, x, y) * f).clamp(0.0, 1.0));
                        }
                    }
                }
            }
            Procedural::Glare { x: gx, y: gy, rx, ry, degrees, strength } => {
                let (s, c) = degrees.to_radians().sin_cos();
                let (gx, gy) = (*gx, gy * k);
                for y in 0..h {
                    for x in 0..w {
                        let p = at(x, y);
                        let (dx, dy) = (p[0] - gx, p[1] - gy);
                        let (u, v) = (c * dx - s * dy, s * dx + c * dy);
                        let g = strength * (-(u * u / (rx * rx) + v * v / (ry * ry))).exp();
                        for ch in 0..3 {
                            let val = out.get(ch, x, y);
                            out.set(ch, x, y, (val + g * (1.0 - val)).clamp(0.0, 1.0));
                        }
                    }
                }
            }
            Procedural::Bubbles { bubbles } => {
                for b in bubbles {
                    let (bx, by) = (b.x, b.y * k);
                    let reach = b.radius + 3.0 * b.rim;
                    for (x, y) in pixel_box(w, h, k, [bx - reach, by - reach, bx + reach, by + reach]) {
                        let p = at(x, y);
                        let d = ((p[0] - bx).powi(2) + (p[1] - by).powi(2)).sqrt();
                        let rim = (-((d - b.radius) / b.rim).powi(2)).exp();
                        let inside = 1.0 - smoothstep(b.radius - b.rim, b.radius, d);
                        let (hx, hy) = (bx - 0.35 * b.radius, by - 0.35 * b.radius);
                        let hd = ((p[0] - hx).powi(2) + (p[1] - hy).powi(2)).sqrt();
                        let highlight = (-(hd / (0.22 * b.radius)).powi(2)).exp();
                        for ch in 0..3 {
                            let mut v = out.get(ch, x, y);
                            v *= 1.0 - 0.6 * b.strength * rim;
                            v += 0.08 * b.strength * inside * (1.0 - v);
                            v += 0.9 * b.strength * highlight * (1.0 - v);
                            out.set(ch, x, y, v.clamp(0.0, 1.0));
                        }
                    }
                }
            }
            Procedural::Ink { marks } => {
                for m in marks {
                    let (mx, my, mx2, my2) = (m.x, m.y * k, m.x2, m.y2 * k);
                    let reach = m.size + m.width;
                    let bbox = match m.shape {
                        InkShape::Line => [mx.min(mx2) - m.width, my.min(my2) - m.width, mx.max(mx2) + m.width, my.max(my2) + m.width],
                        _ => [mx - reach, my - reach, mx + reach, my + reach],
                    };
                    blend_shape(&mut out, k, bbox, m.opacity, |p| {
                        let inside = match m.shape {
                            InkShape::Dot => (p[0] - mx).powi(2) + (p[1] - my).powi(2) <= m.size * m.size,
                            InkShape::Circle => (((p[0] - mx).powi(2) + (p[1] - my).powi(2)).sqrt() - m.size).abs() <= m.width / 2.0,
                            InkShape::Line => segment_distance(p, [mx, my], [mx2, my2]) <= m.width / 2.0,
                        };
                        inside.then_some(m.colour)
                    });
                }
            }
            Procedural::Ruler { x: rx, y: ry, length, width, degrees, spacing, colour, background, background_opacity, first } => {
                let (rx, ry) = (*rx, ry * k);
                let (s, c) = degrees.to_radians().sin_cos();
                let reach = 0.5 * (length * length + width * width).sqrt();
                let tick = (0.14 * spacing).max(0.35 / w as f32);
                let glyph_h = 0.22 * width;
                let glyph_w = glyph_h * 0.6;
                // Background first (its own opacity), then ticks and numbers opaque.
                blend_shape(&mut out, k, [rx - reach, ry - reach, rx + reach, ry + reach], *background_opacity, |p| {
                    let (dx, dy) = (p[0] - rx, p[1] - ry);
                    // Ruler frame: a along the ruler (screen counter-clockwise turn), b across.
                    let (a, b) = (c * dx - s * dy, s * dx + c * dy);
                    (a.abs() <= length / 2.0 && b.abs() <= width / 2.0).then_some(*background)
                });
                blend_shape(&mut out, k, [rx - reach, ry - reach, rx + reach, ry + reach], 1.0, |p| {
                    let (dx, dy) = (p[0] - rx, p[1] - ry);
                    let (a, b) = (c * dx - s * dy, s * dx + c * dy);
                    if a.abs() > length / 2.0 || b.abs() > width / 2.0 {
                        return None;
                    }
                    let along = a + length / 2.0;
                    let down = b + width / 2.0;
                    let i = (along / spacing).round();
                    let index = *first as i64 + i as i64;
                    let tick_len = if index % 10 == 0 {
                        0.55
                    } else if index % 5 == 0 {
                        0.42
                    } else {
                        0.28
                    } * width;
                    if (along - i * spacing).abs() <= tick / 2.0 && down <= tick_len {
                        return Some(*colour);
                    }
                    // Numbers under every 10th tick: the glyph of (index / 10) mod 10.
                    let ten = ((along / spacing + *first as f32) / 10.0).round() * 10.0 - *first as f32;
                    let centre = ten * spacing;
                    let (gx, gy) = (along - (centre - glyph_w / 2.0), down - 0.62 * width);
                    if (0.0..glyph_w).contains(&gx) && (0.0..glyph_h).contains(&gy) {
                        let digit = ((*first as i64 + ten as i64) / 10).rem_euclid(10) as usize;
                        let (col, row) = ((gx / glyph_w * 3.0) as usize, (gy / glyph_h * 5.0) as usize);
                        if glyph(digit, col.min(2), row.min(4)) {
                            return Some(*colour);
                        }
                    }
                    None
                });
            }
            Procedural::CalibrationPatches { x: px, y: py, patch, columns, colours } => {
                let (px, py) = (*px, py * k);
                let gap = 0.12 * patch;
                let rows = colours.len().div_ceil(*columns);
                let bbox = [px, py, px + *columns as f32 * patch, py + rows as f32 * patch];
                blend_shape(&mut out, k, bbox, 1.0, |p| {
                    let (u, v) = (p[0] - px, p[1] - py);
                    if u < 0.0 || v < 0.0 {
                        return None;
                    }
                    let (col, row) = ((u / patch) as usize, (v / patch) as usize);
                    if col >= *columns || row >= rows {
                        return None;
                    }
                    let (fu, fv) = (u - col as f32 * patch, v - row as f32 * patch);
                    if fu < gap || fv < gap {
                        return Some([0.12, 0.12, 0.12]);
                    }
                    colours.get(row * columns + col).copied().or(Some([0.12, 0.12, 0.12]))
                });
            }
        }
        Ok(out)
    }
}

/// 3x5 digit glyphs, one row of three bits per line.
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b001, 0b001, 0b001],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

fn glyph(digit: usize, col: usize, row: usize) -> bool {
    DIGITS[digit][row] & (0b100 >> col) != 0
}

/// Pixels whose centres may fall in `bbox` (fractions of the width on both axes).
fn pixel_box(w: usize, h: usize, k: f32, bbox: [f32; 4]) -> impl Iterator<Item = (usize, usize)> {
    let (wf, hf) = (w as f32, h as f32);
    let x0 = (bbox[0] * wf - 1.0).floor().clamp(0.0, wf) as usize;
    let x1 = (bbox[2] * wf + 1.0).ceil().clamp(0.0, wf) as usize;
    let y0 = (bbox[1] / k * hf - 1.0).floor().clamp(0.0, hf) as usize;
    let y1 = (bbox[3] / k * hf + 1.0).ceil().clamp(0.0, hf) as usize;
    (y0..y1).flat_map(move |y| (x0..x1).map(move |x| (x, y)))
}

/// Blend a shape over the pixels of `bbox`: `colour_at` gives the shape's colour at a point (or
/// `None` outside it); each pixel takes the mean colour and the coverage of 4x4 sub-samples, and
/// becomes `c (1 - a opacity) + colour a opacity`.
fn blend_shape(img: &mut Image, k: f32, bbox: [f32; 4], opacity: f32, colour_at: impl Fn([f32; 2]) -> Option<[f32; 3]>) {
    const SS: usize = 4;
    let (w, h) = (img.width, img.height);
    for (x, y) in pixel_box(w, h, k, bbox) {
        let mut sum = [0.0f32; 3];
        let mut hits = 0usize;
        for sy in 0..SS {
            for sx in 0..SS {
                let p = [(x as f32 + (sx as f32 + 0.5) / SS as f32) / w as f32, (y as f32 + (sy as f32 + 0.5) / SS as f32) / h as f32 * k];
                if let Some(c) = colour_at(p) {
                    hits += 1;
                    for ch in 0..3 {
                        sum[ch] += c[ch];
                    }
                }
            }
        }
        if hits == 0 {
            continue;
        }
        let a = hits as f32 / (SS * SS) as f32 * opacity;
        for ch in 0..3 {
            let mean = sum[ch] / hits as f32;
            let v = img.get(ch, x, y);
            img.set(ch, x, y, (v * (1.0 - a) + mean * a).clamp(0.0, 1.0));
        }
    }
}

fn segment_distance(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (qx, qy) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    (qx * qx + qy * qy).sqrt()
}

/// Hermite smoothstep between `e0` and `e1`.
pub fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// `a + (b - a) t` per channel.
pub fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// Distance from `p` to a hair's quadratic Bezier curve (sampled as a polyline of 24 pieces).
pub fn curve_distance(p: [f32; 2], c: &HairStrand) -> f32 {
    let at = |t: f32| {
        let u = 1.0 - t;
        [u * u * c.p0[0] + 2.0 * u * t * c.p1[0] + t * t * c.p2[0], u * u * c.p0[1] + 2.0 * u * t * c.p1[1] + t * t * c.p2[1]]
    };
    let mut best = f32::MAX;
    let mut prev = at(0.0);
    for i in 1..=24 {
        let next = at(i as f32 / 24.0);
        let (dx, dy) = (next[0] - prev[0], next[1] - prev[1]);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 { (((p[0] - prev[0]) * dx + (p[1] - prev[1]) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
        let (qx, qy) = (prev[0] + t * dx - p[0], prev[1] + t * dy - p[1]);
        best = best.min((qx * qx + qy * qy).sqrt());
        prev = next;
    }
    best
}

/// The colour `c` at `p` with `strands` drawn over it, one after another.
pub fn paint_hair(mut c: [f32; 3], p: [f32; 2], strands: &[HairStrand]) -> [f32; 3] {
    for hair in strands {
        let dist = curve_distance(p, hair);
        let a = 1.0 - smoothstep(hair.width * 0.5, hair.width, dist);
        c = mix(c, hair.colour, a);
    }
    c
}
