//! Pictures and files of maps: the jet colour map over the image (as pytorch-grad-cam's
//! `show_cam_on_image`: half heat map, half image, divided by the maximum) and `.npy` files.

use std::path::Path;

use anyhow::Result;
use dermrobust_core::imaging::{npy, Image};

/// The jet colour map at `v` in [0, 1] (blue - cyan - yellow - red), as OpenCV's COLORMAP_JET.
pub fn jet(v: f32) -> [f32; 3] {
    let v = v.clamp(0.0, 1.0);
    let f = |c: f32| (1.5 - (4.0 * v - c).abs()).clamp(0.0, 1.0);
    [f(3.0), f(2.0), f(1.0)]
}

/// A 1-channel map in [0, 1] coloured with jet.
pub fn heat(map: &Image) -> Image {
    let hw = map.width * map.height;
    let mut out = Image::filled(3, map.width, map.height, 0.0);
    for p in 0..hw {
        let c = jet(map.data[p]);
        for (k, v) in c.iter().enumerate() {
            out.data[k * hw + p] = *v;
        }
    }
    out
}

/// `(1 - w) * heat + w * image`, divided by its maximum (pytorch-grad-cam, `image_weight` 0.5).
pub fn overlay(image: &Image, map: &Image) -> Image {
    let h = heat(map);
    let mut out = Image::new(3, image.width, image.height, h.data.iter().zip(&image.data).map(|(a, b)| 0.5 * a + 0.5 * b).collect());
    let max = out.data.iter().copied().fold(0f32, f32::max).max(1e-7);
    out.data.iter_mut().for_each(|v| *v /= max);
    out
}

/// The image with the mask's outline drawn in green.
pub fn with_outline(image: &Image, mask: &Image) -> Image {
    let (w, h) = (image.width, image.height);
    let inside = |x: usize, y: usize| mask.data[y * w + x] > 0.5;
    let mut out = image.clone();
    for y in 0..h {
        for x in 0..w {
            if inside(x, y) && (x == 0 || y == 0 || x == w - 1 || y == h - 1 || !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1)) {
                out.set(0, x, y, 0.0);
                out.set(1, x, y, 1.0);
                out.set(2, x, y, 0.0);
            }
        }
    }
    out
}

/// Write a 1-channel map as a NumPy `.npy` file (float32, shape `[H, W]`).
pub fn write_npy(map: &Image, path: &Path) -> Result<()> {
    npy::write_npy(path, &[map.height, map.width], &map.data[..map.width * map.height])
}

/// Read back a map written by [`write_npy`].
pub fn read_npy(path: &Path) -> Result<Image> {
    let (shape, data) = npy::read_npy(path)?;
    anyhow::ensure!(shape.len() == 2, "{}: not a 2-D map (shape {shape:?})", path.display());
    Ok(Image::new(1, shape[1], shape[0], data))
}
