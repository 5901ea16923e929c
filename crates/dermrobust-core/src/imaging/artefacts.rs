//! Inserting artefacts into dermoscopic images the way Katsch et al. (2022) did, and more.
//!
//! - [`TemplateLibrary`]: real artefact templates described by a `meta.json` in the layout of
//!   github.com/thisismexp/artefact_insertion (`artefacts[]` with `class`, `subclass`,
//!   `preprocessor` ("difference" for with/without pairs) and `artefact_folder`). Any folder in
//!   that layout works.
//! - [`Artefact`]: what to insert: a template class of a library (`bubble`, `ruler`, `marking`,
//!   or any class the user's `meta.json` names) or a procedural kind (`hair`, `ink`,
//!   `ruler-drawn`, `bubbles-drawn`, `vignette`, `glare`, `patches`).
//! - [`Placement`]: where: `katsch` (the authors' per-class rules, the default), `anywhere`,
//!   `outside` (never changes a lesion pixel) and `edge` (centred on the lesion border).
//! - [`Inserter::draw`]: one seeded draw for one image (with its lesion mask, if any) giving an
//!   [`ImageOp`] that replays exactly; [`exact_share`]: exactly k of n images.
//!
//! Placement rules taken from the authors' code (src/types.py, src/common.py) where the paper is
//! silent: positions are drawn from a Beta(1.5, 1.5) x Beta(1.5, 1.5) density over the image,
//! multiplied by one minus the lesion mask blurred with sigma 15 px of 600 (2.5% of the width);
//! bubbles and ink spots: several instances of one source image (each kept with probability 0.9
//! resp. 0.7 and duplicated with probability 0.8), placed without overlapping each other (10
//! tries each, else left out); horizontal rulers: rotated by -20..20 degrees, in the bottom third
//! and middle third of the image; vertical rulers: any rotation, up to 25 tries to avoid the
//! lesion, then placed anyway; circle markings: at the lesion's centre of mass (the image centre
//! without a mask), resized 0.8-1.4 with probability 0.8 and rotated with probability 0.9; every
//! other template flipped with probability 0.5, resized 0.5-1.5 with probability 0.5 and rotated
//! with probability 0.5. Template sizes are pixels of the 600 px wide HAM10000 originals
//! (`reference_width`), so a template covers the same fraction of the lesion photograph at any
//! model resolution.
//!
//! Without a mask the lesion is taken to be the central disc of radius a quarter of the width
//! (the authors' fallback for vertical rulers, used here for every rule that needs a lesion).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::procedural::{Bubble, HairStrand, InkMark, InkShape, Procedural, Vignette, HAIR_COLOUR, INK_COLOURS};
use super::{filter, Image, ImageOp, StampMode};

/// Width in pixels of the photographs the templates were cut from (HAM10000: 600 x 450).
pub const REFERENCE_WIDTH: f32 = 600.0;

/// One template image (or with/without pair) of a library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateInstance {
    pub with: PathBuf,
    /// The same region without the artefact, for difference templates.
    pub without: Option<PathBuf>,
    pub width: u32,
    pub height: u32,
}

/// One `meta.json` entry: the templates cut from one source photograph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateEntry {
    pub name: String,
    pub class: String,
    pub subclass: Option<String>,
    pub instances: Vec<TemplateInstance>,
}

/// Artefact templates read from a folder with a `meta.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateLibrary {
    pub dir: PathBuf,
    pub entries: Vec<TemplateEntry>,
    /// Width of the source photographs the template sizes refer to.
    pub reference_width: f32,
}

#[derive(Deserialize)]
struct MetaFile {
    artefacts: Vec<MetaEntry>,
}

#[derive(Deserialize)]
struct MetaEntry {
    class: String,
    subclass: Option<String>,
    preprocessor: Option<String>,
    name: Option<String>,
    artefact_folder: String,
}

impl TemplateLibrary {
    /// Read `dir/meta.json` and find each entry's PNGs. Difference entries pair `X_with_NN.png`
    /// with `X_without_NN.png` (also `X_NN_with.png` / `X_NN_without.png`); other entries use
    /// every PNG as a stamp on a white background. Paths are made absolute so that recorded
    /// operations replay from anywhere.
    pub fn load(dir: &Path) -> Result<TemplateLibrary> {
        let dir = dir.canonicalize().with_context(|| format!("artefact templates: cannot open the folder {}", dir.display()))?;
        let meta_path = dir.join("meta.json");
        let text = std::fs::read_to_string(&meta_path).with_context(|| format!("artefact templates: cannot read {}", meta_path.display()))?;
        let meta: MetaFile = serde_json::from_str(&text).with_context(|| format!("{}: not a meta.json with an 'artefacts' list", meta_path.display()))?;
        let mut entries = Vec::new();
        for (i, e) in meta.artefacts.iter().enumerate() {
            let folder = dir.join(&e.artefact_folder);
            let mut pngs: Vec<PathBuf> = std::fs::read_dir(&folder)
                .with_context(|| format!("{}: entry {} names the folder {}, which cannot be read", meta_path.display(), i + 1, folder.display()))?
                .filter_map(|f| f.ok().map(|f| f.path()))
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")))
                .collect();
            pngs.sort();
            let difference = e.preprocessor.as_deref() == Some("difference");
            let name_of = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
            let mut instances = Vec::new();
            for p in &pngs {
                let name = name_of(p);
                if difference {
                    if name.contains("without") || !name.contains("with") {
                        continue;
                    }
                    let partner = p.with_file_name(name.replacen("with", "without", 1));
                    if !partner.exists() {
                        bail!("{}: {} has no '{}' partner", meta_path.display(), p.display(), name_of(&partner));
                    }
                    let (w, h) = image::image_dimensions(p).with_context(|| format!("cannot read {}", p.display()))?;
                    let (w2, h2) = image::image_dimensions(&partner).with_context(|| format!("cannot read {}", partner.display()))?;
                    if (w, h) != (w2, h2) {
                        bail!("{} is {w}x{h} but {} is {w2}x{h2}", p.display(), partner.display());
                    }
                    instances.push(TemplateInstance { with: p.clone(), without: Some(partner), width: w, height: h });
                } else {
                    let (w, h) = image::image_dimensions(p).with_context(|| format!("cannot read {}", p.display()))?;
                    instances.push(TemplateInstance { with: p.clone(), without: None, width: w, height: h });
                }
            }
            if instances.is_empty() {
                bail!("{}: entry {} ({}) has no template images in {}", meta_path.display(), i + 1, e.class, folder.display());
            }
            entries.push(TemplateEntry { name: e.name.clone().unwrap_or_else(|| e.artefact_folder.clone()), class: e.class.clone(), subclass: e.subclass.clone(), instances });
        }
        if entries.is_empty() {
            bail!("{}: no artefacts listed", meta_path.display());
        }
        Ok(TemplateLibrary { dir, entries, reference_width: REFERENCE_WIDTH })
    }

    /// The template classes, in first-seen order.
    pub fn classes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.entries {
            if !out.contains(&e.class) {
                out.push(e.class.clone());
            }
        }
        out
    }

    pub fn instances(&self) -> usize {
        self.entries.iter().map(|e| e.instances.len()).sum()
    }
}

/// The procedural kinds by name.
pub const PROCEDURAL_KINDS: [&str; 7] = ["hair", "ink", "ruler-drawn", "bubbles-drawn", "vignette", "glare", "patches"];

/// What to insert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", content = "name", rename_all = "snake_case")]
pub enum Artefact {
    /// A class of a template library (`bubble`, `ruler`, `marking`, ...).
    Template(String),
    /// One of [`PROCEDURAL_KINDS`].
    Procedural(String),
}

impl Artefact {
    /// A procedural kind by its name, or a class of `library`.
    pub fn parse(name: &str, library: Option<&TemplateLibrary>) -> Result<Artefact> {
        if PROCEDURAL_KINDS.contains(&name) {
            return Ok(Artefact::Procedural(name.to_string()));
        }
        match library {
            Some(l) if l.classes().iter().any(|c| c == name) => Ok(Artefact::Template(name.to_string())),
            Some(l) => bail!("unknown artefact '{name}': the procedural kinds are {}; the templates in {} have the classes {}", PROCEDURAL_KINDS.join(", "), l.dir.display(), l.classes().join(", ")),
            None => bail!("unknown artefact '{name}': the procedural kinds are {} (template classes need --templates DIR)", PROCEDURAL_KINDS.join(", ")),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Artefact::Template(n) | Artefact::Procedural(n) => n,
        }
    }
}

/// Where artefacts go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The authors' rules per class (see the module documentation).
    #[default]
    Katsch,
    /// Anywhere in the image (uniform centre).
    Anywhere,
    /// Outside the lesion: no lesion pixel changes (checked on the result; the artefact shrinks
    /// by 0.6 up to three times when it does not fit, else the image stays clean).
    Outside,
    /// Centred on a pixel of the lesion border.
    Edge,
}

impl std::str::FromStr for Placement {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "katsch" => Placement::Katsch,
            "anywhere" => Placement::Anywhere,
            "outside" => Placement::Outside,
            "edge" => Placement::Edge,
            _ => bail!("unknown placement '{s}' (katsch, anywhere, outside, edge)"),
        })
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Placement::Katsch => "katsch",
            Placement::Anywhere => "anywhere",
            Placement::Outside => "outside",
            Placement::Edge => "edge",
        })
    }
}

/// Exactly `round(share * n)` of `n` items (a seeded choice). Shares of one seed are nested:
/// the items of a smaller share are among those of a larger one.
pub fn exact_share(n: usize, share: f64, seed: u64) -> Vec<bool> {
    let k = ((share.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_a27e_fac7));
    let mut chosen = vec![false; n];
    for &i in &order[..k] {
        chosen[i] = true;
    }
    chosen
}

/// The lesion as a `[0, 1]` plane at the image's size: the mask, or the fallback disc.
fn lesion_plane(w: usize, h: usize, mask: Option<&Image>) -> Result<Vec<f32>> {
    if let Some(m) = mask {
        if (m.width, m.height) != (w, h) {
            bail!("the mask is {}x{} but the image is {w}x{h}", m.width, m.height);
        }
        return Ok(m.data[..w * h].iter().map(|v| if *v > 0.5 { 1.0 } else { 0.0 }).collect());
    }
    let r = 0.25 * w as f32;
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 + 0.5 - w as f32 / 2.0, y as f32 + 0.5 - h as f32 / 2.0);
            if dx * dx + dy * dy < r * r {
                out[y * w + x] = 1.0;
            }
        }
    }
    Ok(out)
}

/// Beta(1.5, 1.5) density at `t` in (0, 1) (unnormalised).
fn beta15(t: f32) -> f32 {
    (t * (1.0 - t)).max(0.0).sqrt()
}

/// The authors' position density: Beta x Beta times one minus the blurred lesion.
fn katsch_density(w: usize, h: usize, lesion: &[f32], avoid: bool) -> Vec<f32> {
    let blurred = if avoid { filter::gaussian_blur(&Image::new(1, w, h, lesion.to_vec()), 0.025 * w as f32).data } else { vec![0.0; w * h] };
    let max = blurred.iter().cloned().fold(0.0f32, f32::max).max(1e-6);
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let b = beta15((x as f32 + 0.5) / w as f32) * beta15((y as f32 + 0.5) / h as f32);
            out[y * w + x] = b * (1.0 - blurred[y * w + x] / max);
        }
    }
    out
}

/// A pixel drawn from `weights` (fractions of the width and height of its centre); `None` if
/// every weight is 0.
fn sample<R: Rng>(weights: &[f32], w: usize, h: usize, rng: &mut R) -> Option<(f32, f32)> {
    let total: f64 = weights.iter().map(|v| *v as f64).sum();
    if total <= 0.0 {
        return None;
    }
    let mut u = rng.random::<f64>() * total;
    for (i, v) in weights.iter().enumerate() {
        u -= *v as f64;
        if u <= 0.0 && *v > 0.0 {
            return Some((((i % w) as f32 + 0.5) / w as f32, ((i / w) as f32 + 0.5) / h as f32));
        }
    }
    let i = weights.iter().rposition(|v| *v > 0.0)?;
    Some((((i % w) as f32 + 0.5) / w as f32, ((i / w) as f32 + 0.5) / h as f32))
}

/// Lesion pixels with a non-lesion 4-neighbour (or the image border).
fn border_weights(w: usize, h: usize, lesion: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            if lesion[y * w + x] < 0.5 {
                continue;
            }
            let outside = |xx: i64, yy: i64| xx < 0 || yy < 0 || xx >= w as i64 || yy >= h as i64 || lesion[yy as usize * w + xx as usize] < 0.5;
            let (xi, yi) = (x as i64, y as i64);
            if outside(xi - 1, yi) || outside(xi + 1, yi) || outside(xi, yi - 1) || outside(xi, yi + 1) {
                out[y * w + x] = 1.0;
            }
        }
    }
    out
}

fn centre_of_mass(w: usize, h: usize, lesion: &[f32]) -> (f32, f32) {
    let (mut sx, mut sy, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..h {
        for x in 0..w {
            let v = lesion[y * w + x] as f64;
            sx += v * (x as f64 + 0.5);
            sy += v * (y as f64 + 0.5);
            n += v;
        }
    }
    if n == 0.0 {
        (0.5, 0.5)
    } else {
        ((sx / n) as f32 / w as f32, (sy / n) as f32 / h as f32)
    }
}

/// True if `op` changes no pixel of `lesion` in `img`.
fn spares_lesion(op: &ImageOp, img: &Image, lesion: &[f32]) -> Result<bool> {
    let out = op.apply(img)?;
    let plane = img.width * img.height;
    for (i, l) in lesion.iter().enumerate() {
        if *l > 0.5 && (0..3).any(|c| out.data[c * plane + i] != img.data[c * plane + i]) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One template copy to place: instance, scale (fraction of the image width), rotation, flip.
struct Piece {
    inst: TemplateInstance,
    scale: f32,
    degrees: f32,
    flip: bool,
}

/// Inserts artefacts of one kind into images.
#[derive(Clone, Debug)]
pub struct Inserter {
    pub library: Option<TemplateLibrary>,
    pub placement: Placement,
}

/// One draw: the operation (a stamp, a sequence of stamps or a procedural artefact) or `None`
/// when nothing could be placed under the placement rule.
pub type Insertion = Option<ImageOp>;

impl Inserter {
    /// Draw an insertion of `artefact` for `img` (lesion `mask`, if any) with `rng`.
    pub fn draw<R: Rng>(&self, artefact: &Artefact, img: &Image, mask: Option<&Image>, rng: &mut R) -> Result<Insertion> {
        let (w, h) = (img.width, img.height);
        let lesion = lesion_plane(w, h, mask)?;
        let mut scale = 1.0f32;
        let rounds = if self.placement == Placement::Outside { 4 } else { 1 };
        for _ in 0..rounds {
            for _ in 0..if self.placement == Placement::Outside { 25 } else { 1 } {
                let op = match artefact {
                    Artefact::Template(class) => self.template_op(class, img, &lesion, scale, rng)?,
                    Artefact::Procedural(kind) => self.procedural_op(kind, w, h, &lesion, scale, rng)?,
                };
                let Some(op) = op else { continue };
                if self.placement != Placement::Outside || spares_lesion(&op, img, &lesion)? {
                    return Ok(Some(op));
                }
            }
            scale *= 0.6;
        }
        Ok(None)
    }

    /// A centre for a piece under the placement rule (`katsch_avoid`: use the lesion-avoiding
    /// density in katsch mode).
    fn centre<R: Rng>(&self, w: usize, h: usize, lesion: &[f32], rng: &mut R) -> Option<(f32, f32)> {
        match self.placement {
            Placement::Anywhere => Some((rng.random::<f32>(), rng.random::<f32>())),
            Placement::Edge => sample(&border_weights(w, h, lesion), w, h, rng),
            Placement::Katsch | Placement::Outside => sample(&katsch_density(w, h, lesion, true), w, h, rng),
        }
    }

    fn template_op<R: Rng>(&self, class: &str, img: &Image, lesion: &[f32], scale: f32, rng: &mut R) -> Result<Option<ImageOp>> {
        let lib = self.library.as_ref().context("template artefacts need a template library (--templates DIR)")?;
        let candidates: Vec<&TemplateEntry> = lib.entries.iter().filter(|e| e.class == class).collect();
        let entry = *candidates.choose(rng).with_context(|| format!("no template of class '{class}' in {}", lib.dir.display()))?;
        let (w, h) = (img.width, img.height);
        let sub = entry.subclass.as_deref().unwrap_or("");
        // (keep probability, duplicate probability) of each instance, as in the authors' code.
        let (keep, duplicate) = match (class, sub) {
            ("bubble", _) => (0.9, 0.8),
            ("marking", "spot") => (0.7, 0.8),
            ("marking", "circle") | ("ruler", _) => (1.0, 0.0),
            _ => (0.5, 0.5),
        };
        let mut chosen: Vec<&TemplateInstance> = entry.instances.iter().filter(|_| rng.random::<f64>() < keep).collect();
        if chosen.is_empty() {
            chosen.push(&entry.instances[0]);
        }
        let extra: Vec<&TemplateInstance> = chosen.iter().copied().filter(|_| rng.random::<f64>() < duplicate).collect();
        chosen.extend(extra);
        let (flip_p, resize_p, resize, rotate_p, rotate): (f64, f64, (f32, f32), f64, (f32, f32)) = match (class, sub) {
            ("marking", "circle") => (0.5, 0.8, (0.8, 1.4), 0.9, (0.0, 359.0)),
            ("ruler", "horizontal") => (0.0, 0.5, (0.5, 1.5), 1.0, (-20.0, 20.0)),
            ("ruler", _) => (0.5, 0.5, (0.5, 1.5), 1.0, (0.0, 359.0)),
            _ => (0.5, 0.5, (0.5, 1.5), 0.5, (0.0, 359.0)),
        };
        let pieces: Vec<Piece> = chosen
            .into_iter()
            .map(|inst| {
                let mut degrees = 0.0;
                let mut flip = false;
                if rng.random::<f64>() < flip_p {
                    // np.flip on a random axis: left-right, or top-bottom (= left-right + 180).
                    flip = true;
                    if rng.random::<bool>() {
                        degrees += 180.0;
                    }
                }
                let mut s = inst.width as f32 / lib.reference_width;
                if rng.random::<f64>() < resize_p {
                    s *= rng.random_range(resize.0..=resize.1);
                }
                if rng.random::<f64>() < rotate_p {
                    degrees += rng.random_range(rotate.0..=rotate.1).round();
                }
                Piece { inst: inst.clone(), scale: (s * scale).min(4.0), degrees: degrees % 360.0, flip }
            })
            .collect();
        let mut ops = Vec::new();
        let mut placed: Vec<(f32, f32, f32)> = Vec::new();
        for p in pieces {
            let radius = 0.5 * p.scale * (1.0 + (p.inst.height as f32 / p.inst.width as f32).powi(2)).sqrt();
            let centre = match (self.placement, class, sub) {
                (Placement::Katsch, "marking", "circle") => Some(centre_of_mass(w, h, lesion)),
                (Placement::Katsch, "ruler", "horizontal") => {
                    let mut d = katsch_density(w, h, lesion, true);
                    restrict_bottom_middle(&mut d, w, h);
                    if d.iter().all(|v| *v <= 0.0) {
                        d = vec![1.0; w * h];
                        restrict_bottom_middle(&mut d, w, h);
                    }
                    sample(&d, w, h, rng)
                }
                (Placement::Katsch, "ruler", _) => {
                    // Up to 25 tries to miss the lesion, then the last one anyway.
                    let mut c = None;
                    for _ in 0..25 {
                        c = self.centre(w, h, lesion, rng);
                        if let Some((x, y)) = c {
                            if spares_lesion(&stamp_of(&p, x, y), img, lesion)? {
                                break;
                            }
                        }
                    }
                    c
                }
                (Placement::Katsch, _, _) => {
                    // Bubbles and spots: 10 tries not to overlap the pieces already placed.
                    let mut c = None;
                    for _ in 0..10 {
                        if let Some((x, y)) = self.centre(w, h, lesion, rng) {
                            if placed.iter().all(|(px, py, pr)| ((px - x).powi(2) + ((py - y) * h as f32 / w as f32).powi(2)).sqrt() > pr + radius) {
                                c = Some((x, y));
                                break;
                            }
                        }
                    }
                    c
                }
                _ => self.centre(w, h, lesion, rng),
            };
            if let Some((x, y)) = centre {
                placed.push((x, y, radius));
                ops.push(stamp_of(&p, x, y));
            }
        }
        Ok(match ops.len() {
            0 => None,
            1 => ops.pop(),
            _ => Some(ImageOp::Sequence { ops }),
        })
    }

    fn procedural_op<R: Rng>(&self, kind: &str, w: usize, h: usize, lesion: &[f32], scale: f32, rng: &mut R) -> Result<Option<ImageOp>> {
        let aspect = h as f32 / w as f32;
        let artefact = match kind {
            "vignette" => {
                // A whole-image artefact: the placement rule does not apply.
                let radius = rng.random_range(0.45..0.68);
                Procedural::Vignette(Vignette { cx: 0.5, cy: 0.5, radius, strength: rng.random_range(0.6..0.95), inner: rng.random_range(0.03..0.12), outer: 0.02 })
            }
            "hair" => {
                let Some((cx, cy)) = self.centre(w, h, lesion, rng) else { return Ok(None) };
                let n = rng.random_range(1..=6);
                let strands = (0..n)
                    .map(|_| {
                        let len = scale * rng.random_range(0.3..1.2f32);
                        let a = rng.random_range(0.0..std::f32::consts::TAU);
                        let (dx, dy) = (0.5 * len * a.cos(), 0.5 * len * a.sin() / aspect);
                        let (ox, oy) = (cx + rng.random_range(-0.15..0.15) * scale, cy + rng.random_range(-0.15..0.15) * scale);
                        let bend = rng.random_range(-0.25..0.25) * len;
                        let p1 = [ox - a.sin() * bend, oy + a.cos() * bend / aspect];
                        let dark = rng.random_range(0.0..1.0f32);
                        let colour = [HAIR_COLOUR[0] * (1.0 - 0.6 * dark), HAIR_COLOUR[1] * (1.0 - 0.6 * dark), HAIR_COLOUR[2] * (1.0 - 0.5 * dark)];
                        let clampp = |v: f32| v.clamp(-1.9, 2.9);
                        HairStrand { p0: [clampp(ox - dx), clampp(oy - dy)], p1: [clampp(p1[0]), clampp(p1[1])], p2: [clampp(ox + dx), clampp(oy + dy)], width: rng.random_range(0.005..0.014), colour }
                    })
                    .collect();
                Procedural::Hair { strands }
            }
            "ruler-drawn" => {
                let (centre, degrees) = if self.placement == Placement::Katsch {
                    let mut d = katsch_density(w, h, lesion, true);
                    restrict_bottom_middle(&mut d, w, h);
                    if d.iter().all(|v| *v <= 0.0) {
                        d = vec![1.0; w * h];
                        restrict_bottom_middle(&mut d, w, h);
                    }
                    (sample(&d, w, h, rng), rng.random_range(-20.0..20.0f32))
                } else {
                    (self.centre(w, h, lesion, rng), rng.random_range(0.0..360.0f32))
                };
                let Some((x, y)) = centre else { return Ok(None) };
                let light = rng.random::<bool>();
                Procedural::Ruler {
                    x,
                    y,
                    length: scale * rng.random_range(0.5..1.0),
                    width: scale * rng.random_range(0.08..0.14),
                    degrees,
                    spacing: scale * rng.random_range(0.018..0.03),
                    colour: if light { [0.06, 0.06, 0.07] } else { [0.92, 0.92, 0.9] },
                    background: if light { [0.93, 0.93, 0.9] } else { [0.08, 0.08, 0.1] },
                    background_opacity: rng.random_range(0.3..0.8),
                    first: rng.random_range(0..40),
                }
            }
            "ink" => {
                let colour = INK_COLOURS[rng.random_range(0..INK_COLOURS.len())];
                let opacity = rng.random_range(0.6..0.95);
                if self.placement == Placement::Katsch && rng.random::<f32>() < 0.4 {
                    // A circle around the lesion (the authors' circle markings).
                    let (cx, cy) = centre_of_mass(w, h, lesion);
                    let area: f32 = lesion.iter().sum::<f32>() / (w * w) as f32;
                    let r = (area / std::f32::consts::PI).sqrt() * rng.random_range(1.15..1.5) + 0.03;
                    Procedural::Ink { marks: vec![InkMark { shape: InkShape::Circle, x: cx, y: cy, x2: 0.0, y2: 0.0, size: r * scale, width: rng.random_range(0.01..0.025), colour, opacity }] }
                } else {
                    let n = rng.random_range(1..=3);
                    let mut marks = Vec::new();
                    for _ in 0..n {
                        let Some((x, y)) = self.centre(w, h, lesion, rng) else { return Ok(None) };
                        let mark = if rng.random::<bool>() {
                            InkMark { shape: InkShape::Dot, x, y, x2: 0.0, y2: 0.0, size: scale * rng.random_range(0.01..0.035), width: 0.0, colour, opacity }
                        } else {
                            let len = scale * rng.random_range(0.05..0.2);
                            let a = rng.random_range(0.0..std::f32::consts::TAU);
                            let (x2, y2) = ((x + len * a.cos()).clamp(-0.9, 1.9), (y + len * a.sin() / aspect).clamp(-0.9, 1.9));
                            InkMark { shape: InkShape::Line, x, y, x2, y2, size: 0.0, width: scale * rng.random_range(0.01..0.025), colour, opacity }
                        };
                        marks.push(mark);
                    }
                    Procedural::Ink { marks }
                }
            }
            "bubbles-drawn" => {
                let n = rng.random_range(1..=5);
                let mut bubbles = Vec::new();
                for _ in 0..n {
                    let Some((x, y)) = self.centre(w, h, lesion, rng) else { return Ok(None) };
                    let radius = scale * rng.random_range(0.03..0.09);
                    bubbles.push(Bubble { x, y, radius, rim: (radius * 0.15).max(0.006), strength: rng.random_range(0.6..1.0) });
                }
                Procedural::Bubbles { bubbles }
            }
            "glare" => {
                let Some((x, y)) = self.centre(w, h, lesion, rng) else { return Ok(None) };
                let rx = scale * rng.random_range(0.02..0.08);
                Procedural::Glare { x, y, rx, ry: rx * rng.random_range(0.3..1.0), degrees: rng.random_range(0.0..180.0), strength: rng.random_range(0.5..0.9) }
            }
            "patches" => {
                let patch = scale * rng.random_range(0.04..0.07);
                let columns = rng.random_range(2..=4);
                let count = columns * rng.random_range(1..=2);
                let (pw, ph) = (columns as f32 * patch, (count / columns) as f32 * patch / aspect);
                let (x, y) = if self.placement == Placement::Katsch {
                    // In a corner, as calibration charts are photographed.
                    let m = 0.03;
                    match rng.random_range(0..4) {
                        0 => (m, m),
                        1 => (1.0 - m - pw, m),
                        2 => (m, 1.0 - m - ph),
                        _ => (1.0 - m - pw, 1.0 - m - ph),
                    }
                } else {
                    let Some((cx, cy)) = self.centre(w, h, lesion, rng) else { return Ok(None) };
                    (cx - pw / 2.0, cy - ph / 2.0)
                };
                let colours = (0..count).map(|i| CHECKER[(i + rng.random_range(0..CHECKER.len())) % CHECKER.len()]).collect();
                Procedural::CalibrationPatches { x: x.clamp(-0.9, 1.9), y: y.clamp(-0.9, 1.9), patch, columns, colours }
            }
            other => bail!("unknown procedural artefact '{other}' ({})", PROCEDURAL_KINDS.join(", ")),
        };
        Ok(Some(ImageOp::Artefact { artefact }))
    }
}

/// Colours of a colour checker (sRGB, approximately).
const CHECKER: [[f32; 3]; 12] = [
    [0.45, 0.32, 0.27],
    [0.76, 0.59, 0.51],
    [0.38, 0.48, 0.61],
    [0.35, 0.42, 0.26],
    [0.51, 0.50, 0.69],
    [0.40, 0.74, 0.67],
    [0.84, 0.49, 0.17],
    [0.31, 0.36, 0.65],
    [0.76, 0.33, 0.38],
    [0.36, 0.24, 0.42],
    [0.62, 0.74, 0.25],
    [0.88, 0.63, 0.18],
];

fn restrict_bottom_middle(d: &mut [f32], w: usize, h: usize) {
    for y in 0..h {
        for x in 0..w {
            let inside = y >= h * 2 / 3 && x >= w / 3 && x < w * 2 / 3;
            if !inside {
                d[y * w + x] = 0.0;
            }
        }
    }
}

fn stamp_of(p: &Piece, x: f32, y: f32) -> ImageOp {
    let mode = match &p.inst.without {
        Some(without) => StampMode::Difference { without: without.clone() },
        // Ink on a white background: near-white is keyed out (the authors add template - 255,
        // which leaves white unchanged too).
        None => StampMode::KeyedBlend { white_threshold: 0.85, opacity: 0.9 },
    };
    ImageOp::Stamp { template: p.inst.with.clone(), x: x.clamp(0.0, 1.0), y: y.clamp(0.0, 1.0), scale: p.scale.clamp(1e-3, 4.0), degrees: p.degrees, flip: p.flip, mode }
}
