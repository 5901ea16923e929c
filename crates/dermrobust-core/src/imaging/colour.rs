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

/// sRGB in `[0, 1]` (D65) to CIELAB, as scikit-image's `rgb2lab`: inverse sRGB companding, the
/// sRGB -> XYZ matrix, the D65 white point, the CIE 1976 L*a*b* formula.
pub fn srgb_to_lab(rgb: [f32; 3]) -> [f64; 3] {
    let lin = |c: f32| {
        let c = c as f64;
        if c > 0.04045 { ((c + 0.055) / 1.055).powf(2.4) } else { c / 12.92 }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    let x = 0.412453 * r + 0.357580 * g + 0.180423 * b;
    let y = 0.212671 * r + 0.715160 * g + 0.072169 * b;
    let z = 0.019334 * r + 0.119193 * g + 0.950227 * b;
    let (xn, yn, zn) = (0.95047, 1.0, 1.08883);
    let f = |t: f64| if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 };
    let (fx, fy, fz) = (f(x / xn), f(y / yn), f(z / zn));
    let l = if y / yn > 0.008856 { 116.0 * fy - 16.0 } else { 903.3 * (y / yn) };
    [l, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// The CIEDE2000 colour difference of two CIELAB colours (Sharma, Wu & Dalal 2005; kL = kC = kH = 1).
pub fn ciede2000(lab1: [f64; 3], lab2: [f64; 3]) -> f64 {
    use std::f64::consts::PI;
    let [l1, a1, b1] = lab1;
    let [l2, a2, b2] = lab2;
    let c_bar = ((a1 * a1 + b1 * b1).sqrt() + (a2 * a2 + b2 * b2).sqrt()) / 2.0;
    let g = 0.5 * (1.0 - (c_bar.powi(7) / (c_bar.powi(7) + 25f64.powi(7))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = ((a1p * a1p + b1 * b1).sqrt(), (a2p * a2p + b2 * b2).sqrt());
    let hue = |b: f64, a: f64| if a == 0.0 && b == 0.0 { 0.0 } else { b.atan2(a).rem_euclid(2.0 * PI) };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));
    let dl = l2 - l1;
    let dc = c2p - c1p;
    let dh = if c1p * c2p == 0.0 {
        0.0
    } else {
        let d = h2p - h1p;
        if d > PI { d - 2.0 * PI } else if d < -PI { d + 2.0 * PI } else { d }
    };
    let dhh = 2.0 * (c1p * c2p).sqrt() * (dh / 2.0).sin();
    let l_bar = (l1 + l2) / 2.0;
    let c_bar_p = (c1p + c2p) / 2.0;
    let h_bar = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= PI {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 2.0 * PI {
        (h1p + h2p + 2.0 * PI) / 2.0
    } else {
        (h1p + h2p - 2.0 * PI) / 2.0
    };
    let t = 1.0 - 0.17 * (h_bar - PI / 6.0).cos() + 0.24 * (2.0 * h_bar).cos() + 0.32 * (3.0 * h_bar + PI / 30.0).cos() - 0.20 * (4.0 * h_bar - 63.0 * PI / 180.0).cos();
    let d_theta = 30.0 * PI / 180.0 * (-((h_bar * 180.0 / PI - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (c_bar_p.powi(7) / (c_bar_p.powi(7) + 25f64.powi(7))).sqrt();
    let sl = 1.0 + 0.015 * (l_bar - 50.0).powi(2) / (20.0 + (l_bar - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * c_bar_p;
    let sh = 1.0 + 0.015 * c_bar_p * t;
    let rt = -(2.0 * d_theta).sin() * rc;
    ((dl / sl).powi(2) + (dc / sc).powi(2) + (dhh / sh).powi(2) + rt * (dc / sc) * (dhh / sh)).sqrt()
}

/// The mean CIEDE2000 difference between corresponding pixels of two RGB images of one size: the
/// size of a colour perturbation as a person would judge it (about 1: just noticeable; 2-10:
/// noticeable at a glance).
pub fn mean_delta_e(a: &Image, b: &Image) -> f64 {
    assert!(a.channels == 3 && b.channels == 3 && a.width == b.width && a.height == b.height, "mean_delta_e needs two RGB images of one size");
    let plane = a.width * a.height;
    let px = |img: &Image, i: usize| [img.data[i], img.data[plane + i], img.data[2 * plane + i]];
    (0..plane).map(|i| ciede2000(srgb_to_lab(px(a, i)), srgb_to_lab(px(b, i)))).sum::<f64>() / plane.max(1) as f64
}
