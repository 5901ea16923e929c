//! Pictures and files of maps: the jet colour map over the image (as pytorch-grad-cam's
//! `show_cam_on_image`: half heat map, half image, divided by the maximum) and `.npy` files.

use std::path::Path;

use anyhow::Result;
use dermrobust_core::imaging::Image;

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

/// Write a 1-channel map as a NumPy `.npy` file (float32, shape `[H, W]`, C order).
pub fn write_npy(map: &Image, path: &Path) -> Result<()> {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", map.height, map.width);
    let mut header = header.into_bytes();
    let total = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(b' ', (64 - total % 64) % 64));
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header);
    for v in &map.data[..map.width * map.height] {
        bytes.extend(v.to_le_bytes());
    }
    dermrobust_core::report::atomic_write(path, &bytes)
}

/// Read back a map written by [`write_npy`].
pub fn read_npy(path: &Path) -> Result<Image> {
    let bytes = std::fs::read(path)?;
    anyhow::ensure!(bytes.len() > 10 && &bytes[..6] == b"\x93NUMPY", "{} is not a .npy file", path.display());
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + hlen]).to_string();
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).unwrap_or("");
    let dims: Vec<usize> = shape.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    anyhow::ensure!(dims.len() == 2, "{}: not a 2-D map", path.display());
    let data: Vec<f32> = bytes[10 + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    anyhow::ensure!(data.len() == dims[0] * dims[1], "{}: truncated", path.display());
    Ok(Image::new(1, dims[1], dims[0], data))
}
