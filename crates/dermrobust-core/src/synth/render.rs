//! Drawing one synthetic photograph: lesion parameters (fixed per lesion) and photograph
//! parameters (pose, light, hairs, vignette) rendered per pixel.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::noise;
use super::config::SyntheticConfig;
use crate::imaging::procedural::{mix, paint_hair, smoothstep, HairStrand, Vignette, HAIR_COLOUR};
use crate::imaging::Image;

const LIGHT_BROWN: [f32; 3] = [0.62, 0.43, 0.31];
const MID_BROWN: [f32; 3] = [0.46, 0.29, 0.19];
const DARK_BROWN: [f32; 3] = [0.29, 0.17, 0.11];
const BLACK: [f32; 3] = [0.10, 0.07, 0.07];
const BLUE_GREY: [f32; 3] = [0.42, 0.47, 0.57];
const RED: [f32; 3] = [0.72, 0.32, 0.32];
const WHITE_SCAR: [f32; 3] = [0.86, 0.80, 0.78];
const TAN: [f32; 3] = [0.66, 0.52, 0.38];
const PINK: [f32; 3] = [0.84, 0.5, 0.5];

/// Everything that makes a lesion what it is; fixed across its photographs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LesionParams {
    pub dx: String,
    /// Atypia in `[0, 1]`: drives asymmetry, border irregularity, colour count and size.
    /// Nevi and melanomas overlap in the middle, so the task is learnable but not trivial.
    pub atypia: f32,
    /// Mean radius as a fraction of the image side (D).
    pub radius: f32,
    /// Border harmonics `(k, amplitude, phase)`: k = 1, 2 give asymmetry (A), higher k an
    /// irregular border (B).
    pub harmonics: Vec<(f32, f32, f32)>,
    /// Width of the soft edge relative to the radius (small = abrupt border).
    pub edge: f32,
    pub elongation: f32,
    /// Colours blended across the lesion by a noise field (C).
    pub palette: Vec<[f32; 3]>,
    /// Shift of the pigment mass off the centre (asymmetric pigmentation).
    pub pigment_shift: (f32, f32),
    /// Strength of the pigment network and how distorted it is.
    pub network: f32,
    pub network_distortion: f32,
    /// Dots `(x, y, radius, colour)` in lesion coordinates: milia-like cysts, globules, nests.
    pub dots: Vec<(f32, f32, f32, [f32; 3])>,
    /// Arborising vessels (basal cell carcinoma).
    pub vessels: f32,
    pub skin: [f32; 3],
    pub pattern_seed: u64,
}

/// One photograph of a lesion: pose, light and distractors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhotoParams {
    pub rotation: f32,
    pub offset: (f32, f32),
    pub scale: f32,
    pub light: f32,
    /// Hairs (quadratic curves in image fractions), drawn as the hair artefact draws them.
    pub hairs: Vec<HairStrand>,
    /// Radius (image fractions) of the dermoscope's circular field of view, if visible.
    pub vignette: Option<f32>,
    pub skin_seed: u64,
}

fn pick<R: Rng>(rng: &mut R, a: f32, b: f32) -> f32 {
    rng.random_range(a..=b)
}

impl LesionParams {
    pub fn draw<R: Rng>(dx: &str, rng: &mut R) -> Self {
        let atypia = match dx {
            "nv" => pick(rng, 0.0, 0.55),
            "mel" => pick(rng, 0.4, 1.0),
            _ => pick(rng, 0.1, 0.5),
        };
        let radius = 0.11 + 0.13 * atypia + pick(rng, -0.02, 0.04);
        let mut harmonics = vec![(1.0, 0.18 * atypia * pick(rng, 0.4, 1.0), pick(rng, 0.0, 6.28)), (2.0, 0.14 * atypia * pick(rng, 0.4, 1.0), pick(rng, 0.0, 6.28))];
        let top_k = if dx == "mel" { 12 } else { 7 };
        for k in 3..=top_k {
            harmonics.push((k as f32, 0.055 * atypia * atypia * pick(rng, 0.2, 1.0) / (k as f32 / 3.0).sqrt(), pick(rng, 0.0, 6.28)));
        }
        let skin = {
            let t = pick(rng, 0.0, 1.0);
            [0.93 - 0.18 * t, 0.76 - 0.2 * t, 0.66 - 0.2 * t]
        };
        let mut dots = Vec::new();
        let (palette, edge, network, vessels) = match dx {
            "mel" => {
                let mut pool = vec![DARK_BROWN, BLACK, BLUE_GREY, RED, WHITE_SCAR, LIGHT_BROWN];
                let n = 2 + (atypia * 3.5).round() as usize;
                let mut palette = vec![MID_BROWN];
                for _ in 0..n.min(pool.len()) {
                    let i = rng.random_range(0..pool.len());
                    palette.push(pool.swap_remove(i));
                }
                // Irregular dark globules towards the periphery.
                for _ in 0..rng.random_range(0..8) {
                    let a = pick(rng, 0.0, 6.28);
                    let r = pick(rng, 0.5, 0.9);
                    dots.push((r * a.cos(), r * a.sin(), pick(rng, 0.04, 0.1), if rng.random::<bool>() { BLACK } else { DARK_BROWN }));
                }
                (palette, pick(rng, 0.02, 0.12), pick(rng, 0.15, 0.45), 0.0)
            }
            "nv" => {
                let mut palette = vec![LIGHT_BROWN, MID_BROWN];
                if atypia > 0.35 {
                    palette.push(DARK_BROWN);
                }
                // Regular globules, evenly spread.
                if rng.random::<f32>() < 0.3 {
                    let n = rng.random_range(6..14);
                    for i in 0..n {
                        let a = i as f32 / n as f32 * 6.28;
                        dots.push((0.55 * a.cos(), 0.55 * a.sin(), 0.05, MID_BROWN));
                    }
                }
                (palette, pick(rng, 0.08, 0.18), pick(rng, 0.25, 0.5), 0.0)
            }
            "bkl" => {
                // Milia-like cysts: small white-yellow dots.
                for _ in 0..rng.random_range(4..14) {
                    let a = pick(rng, 0.0, 6.28);
                    let r = pick(rng, 0.0, 0.8);
                    dots.push((r * a.cos(), r * a.sin(), pick(rng, 0.03, 0.06), [0.93, 0.88, 0.7]));
                }
                (vec![TAN, LIGHT_BROWN, MID_BROWN], pick(rng, 0.015, 0.05), pick(rng, 0.0, 0.15), 0.0)
            }
            _ => {
                // bcc: pink, translucent, blue-grey ovoid nests and arborising vessels.
                for _ in 0..rng.random_range(1..5) {
                    let a = pick(rng, 0.0, 6.28);
                    let r = pick(rng, 0.1, 0.7);
                    dots.push((r * a.cos(), r * a.sin(), pick(rng, 0.08, 0.16), BLUE_GREY));
                }
                (vec![PINK, [0.76, 0.44, 0.44], [0.7, 0.5, 0.42]], pick(rng, 0.06, 0.14), 0.0, pick(rng, 0.6, 1.0))
            }
        };
        let shift_len = if dx == "mel" { 0.6 * atypia } else { 0.1 * atypia };
        let shift_angle = pick(rng, 0.0, 6.28);
        LesionParams {
            dx: dx.to_string(),
            atypia,
            radius,
            harmonics,
            edge,
            elongation: pick(rng, 1.0, 1.25),
            palette,
            pigment_shift: (shift_len * shift_angle.cos(), shift_len * shift_angle.sin()),
            network,
            network_distortion: if dx == "mel" { atypia } else { 0.1 },
            dots,
            vessels,
            skin,
            pattern_seed: rng.random(),
        }
    }

    /// Border radius (relative to `radius`) at angle `theta`.
    fn border(&self, theta: f32) -> f32 {
        1.0 + self.harmonics.iter().map(|(k, a, p)| a * (k * theta + p).cos()).sum::<f32>()
    }
}

impl PhotoParams {
    pub fn draw<R: Rng>(photo: usize, cfg: &SyntheticConfig, rng: &mut R) -> Self {
        // The first photograph is roughly centred; later ones are new shots of the same lesion.
        let spread = if photo == 0 { 0.04 } else { 0.1 };
        let mut hairs = Vec::new();
        if rng.random::<f32>() < cfg.hair_probability {
            for _ in 0..rng.random_range(1..7) {
                let p0 = [pick(rng, -0.1, 1.1), pick(rng, -0.1, 1.1)];
                let p2 = [pick(rng, -0.1, 1.1), pick(rng, -0.1, 1.1)];
                let p1 = [pick(rng, 0.0, 1.0), pick(rng, 0.0, 1.0)];
                hairs.push(HairStrand { p0, p1, p2, width: pick(rng, 0.004, 0.01), colour: HAIR_COLOUR });
            }
        }
        PhotoParams {
            rotation: pick(rng, 0.0, 6.28),
            offset: (pick(rng, -spread, spread), pick(rng, -spread, spread)),
            scale: pick(rng, 0.9, 1.12),
            light: pick(rng, 0.9, 1.08),
            hairs,
            vignette: (rng.random::<f32>() < cfg.vignette_probability).then(|| pick(rng, 0.52, 0.68)),
            skin_seed: rng.random(),
        }
    }
}

/// Render a photograph of `size` x `size` pixels and its lesion mask.
pub fn render(lesion: &LesionParams, photo: &PhotoParams, size: usize) -> (Image, Image) {
    let mut img = Image::filled(3, size, size, 0.0);
    let mut mask = Image::filled(1, size, size, 0.0);
    let (sin_r, cos_r) = photo.rotation.sin_cos();
    let s = size as f32;
    // Texture frequencies are in lesion units so a lesion looks the same at every resolution.
    for y in 0..size {
        for x in 0..size {
            let (u, v) = ((x as f32 + 0.5) / s, (y as f32 + 0.5) / s);
            // Skin with mottled texture.
            let mottle = noise::fractal(photo.skin_seed, u * 6.0, v * 6.0, 3);
            let mut c = mix(lesion.skin, [lesion.skin[0] * 0.92, lesion.skin[1] * 0.8, lesion.skin[2] * 0.8], mottle * 0.8);

            // Lesion coordinates: undo the photograph's pose, in units of the lesion radius.
            let (px, py) = ((u - 0.5 - photo.offset.0) / photo.scale, (v - 0.5 - photo.offset.1) / photo.scale);
            let (lx, ly) = ((cos_r * px + sin_r * py) / lesion.radius, (-sin_r * px + cos_r * py) / lesion.radius);
            let lx = lx / lesion.elongation;
            let r = (lx * lx + ly * ly).sqrt();
            let d = r / lesion.border(ly.atan2(lx)).max(0.3);
            let inside = 1.0 - smoothstep(1.0 - lesion.edge, 1.0 + lesion.edge, d);
            if d < 1.0 {
                mask.set(0, x, y, 1.0);
            }
            if inside > 0.0 {
                let seed = lesion.pattern_seed;
                let warp = lesion.network_distortion * (noise::value(seed ^ 1, lx * 2.0, ly * 2.0) - 0.5);
                let mut t = noise::fractal(seed, lx * 1.6, ly * 1.6, 3);
                // Darker towards the (possibly shifted) pigment centre.
                let (sx, sy) = (lx - lesion.pigment_shift.0, ly - lesion.pigment_shift.1);
                t = (t * 0.6 + 0.5 * (1.0 - (sx * sx + sy * sy).sqrt()).max(0.0)).clamp(0.0, 0.999);
                let k = lesion.palette.len();
                let pos = t * (k - 1) as f32;
                let i = pos.floor() as usize;
                let mut lc = if k == 1 { lesion.palette[0] } else { mix(lesion.palette[i], lesion.palette[(i + 1).min(k - 1)], smoothstep(0.3, 0.7, pos - i as f32)) };
                // Pigment network: a grid of darker lines, distorted in atypical lesions.
                if lesion.network > 0.0 {
                    let f = 9.0;
                    let gx = ((lx + warp) * f).sin();
                    let gy = ((ly - warp) * f).sin();
                    let line = (-(gx * gx) / 0.08).exp().max((-(gy * gy) / 0.08).exp());
                    lc = mix(lc, DARK_BROWN, lesion.network * line * (1.0 - d).clamp(0.0, 1.0));
                }
                for &(dx, dy, dr, dc) in &lesion.dots {
                    let dd = ((lx - dx).powi(2) + (ly - dy).powi(2)).sqrt();
                    lc = mix(lc, dc, 1.0 - smoothstep(dr * 0.6, dr, dd));
                }
                if lesion.vessels > 0.0 {
                    let n = noise::fractal(seed ^ 7, lx * 2.5, ly * 2.5, 2);
                    let ridge = (1.0 - (2.0 * n - 1.0).abs()).powi(14);
                    lc = mix(lc, [0.68, 0.1, 0.14], lesion.vessels * ridge);
                }
                c = mix(c, lc, inside);
            }
            // Hairs on top (the hair artefact's drawing).
            c = paint_hair(c, [u, v], &photo.hairs);
            let mut light = photo.light * (1.0 - 0.12 * ((u - 0.5).powi(2) + (v - 0.5).powi(2)));
            if let Some(rv) = photo.vignette {
                // The vignette artefact's light factor.
                light *= Vignette::dermoscope(rv).factor([u, v]);
            }
            for ch in 0..3 {
                img.set(ch, x, y, (c[ch] * light).clamp(0.0, 1.0));
            }
        }
    }
    (img, mask)
}
