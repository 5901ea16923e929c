//! The one image type of dermrobust: planar (channel-major) `f32` pixels in `[0, 1]`.
//!
//! Planar layout is what the models consume (`[C, H, W]`), so a batch of images becomes a tensor
//! without reshuffling. Masks are the same type with one channel, which lets every geometric
//! operation move an image and its mask with the same code.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub channels: usize,
    pub width: usize,
    pub height: usize,
    /// `channels * height * width` values, channel-major, each in `[0, 1]`.
    pub data: Vec<f32>,
}

impl Image {
    pub fn new(channels: usize, width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), channels * width * height, "image buffer does not match its shape");
        Self { channels, width, height, data }
    }

    pub fn filled(channels: usize, width: usize, height: usize, value: f32) -> Self {
        Self::new(channels, width, height, vec![value; channels * width * height])
    }

    /// An RGB image from interleaved 8-bit pixels (`RGBRGB...`).
    pub fn from_rgb8(width: usize, height: usize, interleaved: &[u8]) -> Self {
        assert_eq!(interleaved.len(), 3 * width * height);
        let plane = width * height;
        let mut data = vec![0.0; 3 * plane];
        for (i, px) in interleaved.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * plane + i] = px[c] as f32 / 255.0;
            }
        }
        Self::new(3, width, height, data)
    }

    /// Interleaved 8-bit pixels, rounding and clamping.
    pub fn to_interleaved_u8(&self) -> Vec<u8> {
        let plane = self.width * self.height;
        let mut out = vec![0u8; self.channels * plane];
        for i in 0..plane {
            for c in 0..self.channels {
                out[i * self.channels + c] = to_u8(self.data[c * plane + i]);
            }
        }
        out
    }

    /// Planar 8-bit pixels (the cache format).
    pub fn to_planar_u8(&self) -> Vec<u8> {
        self.data.iter().map(|&v| to_u8(v)).collect()
    }

    pub fn from_planar_u8(channels: usize, width: usize, height: usize, planar: &[u8]) -> Self {
        Self::new(channels, width, height, planar.iter().map(|&v| v as f32 / 255.0).collect())
    }

    /// This image rounded to 8 bits per channel, as the pixel cache stores images: a file read on
    /// its own then gives the same input as the same image in a dataset.
    pub fn quantised_u8(&self) -> Self {
        Self::new(self.channels, self.width, self.height, self.data.iter().map(|&v| to_u8(v) as f32 / 255.0).collect())
    }

    #[inline]
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[c * n..(c + 1) * n]
    }

    #[inline]
    pub fn plane_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.width * self.height;
        &mut self.data[c * n..(c + 1) * n]
    }

    #[inline]
    pub fn get(&self, c: usize, x: usize, y: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    #[inline]
    pub fn set(&mut self, c: usize, x: usize, y: usize, v: f32) {
        self.data[(c * self.height + y) * self.width + x] = v;
    }

    pub fn clamp01(&mut self) {
        for v in &mut self.data {
            *v = v.clamp(0.0, 1.0);
        }
    }

    pub fn mean(&self) -> f32 {
        self.data.iter().sum::<f32>() / self.data.len().max(1) as f32
    }

    /// Largest absolute per-pixel difference to another image of the same shape.
    pub fn max_abs_diff(&self, other: &Image) -> f32 {
        assert_eq!((self.channels, self.width, self.height), (other.channels, other.width, other.height));
        self.data.iter().zip(&other.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    /// Luma (ITU-R 601), as used by contrast, saturation and the perceptual hash.
    pub fn luma(&self) -> Image {
        if self.channels == 1 {
            return self.clone();
        }
        let (r, g, b) = (self.plane(0), self.plane(1), self.plane(2));
        let data = (0..r.len()).map(|i| 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i]).collect();
        Image::new(1, self.width, self.height, data)
    }

    /// Resize with a triangle (bilinear) filter that widens when shrinking, so downscaling does
    /// not alias.
    pub fn resized(&self, width: usize, height: usize) -> Image {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let mut data = Vec::with_capacity(self.channels * width * height);
        for c in 0..self.channels {
            let buf = image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(
                self.width as u32,
                self.height as u32,
                self.plane(c).to_vec(),
            )
            .expect("plane has the image's size");
            let out = image::imageops::resize(&buf, width as u32, height as u32, image::imageops::FilterType::Triangle);
            data.extend_from_slice(out.as_raw());
        }
        Image::new(self.channels, width, height, data)
    }

    /// The sub-image `[x0, x0+w) x [y0, y0+h)`.
    pub fn cropped(&self, x0: usize, y0: usize, w: usize, h: usize) -> Image {
        assert!(x0 + w <= self.width && y0 + h <= self.height, "crop outside the image");
        let mut data = Vec::with_capacity(self.channels * w * h);
        for c in 0..self.channels {
            for y in y0..y0 + h {
                let row = (c * self.height + y) * self.width;
                data.extend_from_slice(&self.data[row + x0..row + x0 + w]);
            }
        }
        Image::new(self.channels, w, h, data)
    }

    /// Centre square crop of side `fraction * min(H, W)` (Yan et al. crop 0.8 of the short side).
    pub fn centre_square_crop(&self, fraction: f32) -> Image {
        let side = ((self.width.min(self.height) as f32) * fraction).round().max(1.0) as usize;
        let side = side.min(self.width).min(self.height);
        self.cropped((self.width - side) / 2, (self.height - side) / 2, side, side)
    }
}

#[inline]
pub fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Tile equally sized images into a grid `columns` wide (a contact sheet), 2-pixel white gaps.
pub fn contact_sheet(images: &[Image], columns: usize) -> Image {
    let first = images.first().expect("at least one image");
    let (w, h, c) = (first.width, first.height, first.channels);
    let columns = columns.max(1).min(images.len());
    let rows = images.len().div_ceil(columns);
    let gap = 2;
    let (sw, sh) = (columns * (w + gap) - gap, rows * (h + gap) - gap);
    let mut sheet = Image::filled(c, sw, sh, 1.0);
    for (k, img) in images.iter().enumerate() {
        let (ox, oy) = ((k % columns) * (w + gap), (k / columns) * (h + gap));
        for ch in 0..c {
            let src_ch = ch.min(img.channels - 1);
            for y in 0..h {
                for x in 0..w {
                    sheet.set(ch, ox + x, oy + y, img.get(src_ch, x, y));
                }
            }
        }
    }
    sheet
}
