//! Photometric operations on RGB images. Results are clamped to `[0, 1]`.
//!
//! Brightness, contrast and saturation follow torchvision/PIL `ImageEnhance` semantics (blend with
//! black, the mean grey, or the grey image) so that magnitudes quoted in papers mean the same here.

use super::Image;

/// Multiply every channel by `factor` (PIL `ImageEnhance.Brightness`).
pub fn brightness(img: &Image, factor: f32) -> Image {
    map(img, |_, v| v * factor)
}

/// Blend with the mean luma: `mean + factor * (x - mean)` (PIL `ImageEnhance.Contrast`).
pub fn contrast(img: &Image, factor: f32) -> Image {
    let mean = img.luma().mean();
    map(img, |_, v| mean + factor * (v - mean))
}

/// `x * gain[c] + offset[c]`: a global colour-balance change, e.g. offset `-10/255` on green
/// (Du-Harpur et al. search this space with differential evolution).
pub fn colour_balance(img: &Image, gain: [f32; 3], offset: [f32; 3]) -> Image {
    map(img, |c, v| v * gain[c.min(2)] + offset[c.min(2)])
}

/// `x^gamma` (gamma correction, Mishra et al.).
pub fn gamma(img: &Image, gamma: f32) -> Image {
    map(img, |_, v| v.max(0.0).powf(gamma))
}

/// Blend with the grey image: 0 gives grey, 1 the original (PIL `ImageEnhance.Color`).
pub fn saturation(img: &Image, factor: f32) -> Image {
    if img.channels != 3 {
        return img.clone();
    }
    let grey = img.luma();
    let g = grey.plane(0);
    let n = g.len();
    let mut out = img.clone();
    for (i, v) in out.data.iter_mut().enumerate() {
        let gi = g[i % n];
        *v = (gi + factor * (*v - gi)).clamp(0.0, 1.0);
    }
    out
}

/// Rotate the hue by `shift` turns (`-0.5..=0.5`), keeping saturation and value.
pub fn hue(img: &Image, shift: f32) -> Image {
    if img.channels != 3 {
        return img.clone();
    }
    let mut out = img.clone();
    let n = img.width * img.height;
    for i in 0..n {
        let (h, s, v) = rgb_to_hsv(img.data[i], img.data[n + i], img.data[2 * n + i]);
        let (r, g, b) = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
        out.data[i] = r;
        out.data[n + i] = g;
        out.data[2 * n + i] = b;
    }
    out
}

fn map(img: &Image, f: impl Fn(usize, f32) -> f32) -> Image {
    let n = img.width * img.height;
    let data = img.data.iter().enumerate().map(|(i, &v)| f(i / n, v).clamp(0.0, 1.0)).collect();
    Image::new(img.channels, img.width, img.height, data)
}

pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d <= f32::EPSILON {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let s = if max <= f32::EPSILON { 0.0 } else { d / max };
    (h, s, max)
}

pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match (i as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}
