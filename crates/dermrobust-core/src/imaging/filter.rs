//! Blur and noise.

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::Image;

/// Separable Gaussian blur with standard deviation `sigma` pixels (kernel radius `ceil(3 sigma)`,
/// mirrored border).
pub fn gaussian_blur(img: &Image, sigma: f32) -> Image {
    if sigma <= 0.0 {
        return img.clone();
    }
    let radius = (3.0 * sigma).ceil() as i64;
    let mut kernel: Vec<f32> = (-radius..=radius).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let (w, h) = (img.width as i64, img.height as i64);
    let mirror = |i: i64, n: i64| -> i64 {
        let p = 2 * n;
        let m = i.rem_euclid(p);
        if m < n { m } else { p - 1 - m }
    };
    let mut tmp = img.clone();
    let mut out = img.clone();
    for c in 0..img.channels {
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (k, kv) in kernel.iter().enumerate() {
                    acc += kv * img.get(c, mirror(x + k as i64 - radius, w) as usize, y as usize);
                }
                tmp.set(c, x as usize, y as usize, acc);
            }
        }
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (k, kv) in kernel.iter().enumerate() {
                    acc += kv * tmp.get(c, x as usize, mirror(y + k as i64 - radius, h) as usize);
                }
                out.set(c, x as usize, y as usize, acc);
            }
        }
    }
    out
}

/// Add zero-mean Gaussian noise of standard deviation `std`, reproducible from `seed`.
pub fn gaussian_noise(img: &Image, std: f32, seed: u64) -> Image {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data = img.data.iter().map(|&v| (v + std * rng.sample::<f32, _>(StandardNormal)).clamp(0.0, 1.0)).collect();
    Image::new(img.channels, img.width, img.height, data)
}

