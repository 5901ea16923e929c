//! Reading and writing image files. Every error names the file.

use std::path::Path;

use anyhow::{Context, Result};

use super::Image;

/// Decode any supported file (JPEG, PNG) into an RGB image. Grayscale, grayscale+alpha, RGBA,
/// palette and 16-bit files are converted (alpha is dropped, 16-bit is scaled to `[0, 1]`).
pub fn read_rgb(path: &Path) -> Result<Image> {
    let decoded = decode(path)?;
    let rgb = decoded.to_rgb32f();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let plane = w * h;
    let mut data = vec![0.0; 3 * plane];
    for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            data[c * plane + i] = px[c].clamp(0.0, 1.0);
        }
    }
    Ok(Image::new(3, w, h, data))
}

/// Decode a file into an RGB image and its alpha plane (all ones when the file has no alpha), both
/// in `[0, 1]`: for templates pasted onto images.
pub fn read_rgb_alpha(path: &Path) -> Result<(Image, Image)> {
    let decoded = decode(path)?;
    let rgba = decoded.to_rgba32f();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    let plane = w * h;
    let mut rgb = vec![0.0; 3 * plane];
    let mut alpha = vec![1.0; plane];
    for (i, px) in rgba.as_raw().chunks_exact(4).enumerate() {
        for c in 0..3 {
            rgb[c * plane + i] = px[c].clamp(0.0, 1.0);
        }
        alpha[i] = px[3].clamp(0.0, 1.0);
    }
    Ok((Image::new(3, w, h, rgb), Image::new(1, w, h, alpha)))
}

/// Decode a lesion mask (any PNG mode, palette included) into a one-channel image in `[0, 1]`.
pub fn read_mask(path: &Path) -> Result<Image> {
    let decoded = decode(path)?;
    let luma = decoded.to_luma32f();
    let (w, h) = (luma.width() as usize, luma.height() as usize);
    Ok(Image::new(1, w, h, luma.into_raw().into_iter().map(|v| v.clamp(0.0, 1.0)).collect()))
}

fn decode(path: &Path) -> Result<image::DynamicImage> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open image file {}", path.display()))?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes));
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let reader = reader.with_guessed_format().with_context(|| format!("cannot read image file {}", path.display()))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        // The JPEG decoder fills a truncated scan with grey and reports success; refuse instead.
        check_jpeg_complete(&bytes).with_context(|| format!("image file {} is truncated or corrupt", path.display()))?;
    }
    let img = reader
        .decode()
        .with_context(|| format!("cannot decode image file {} (corrupt or unsupported format)", path.display()))?;
    if img.width() == 0 || img.height() == 0 {
        anyhow::bail!("image file {} has no pixels", path.display());
    }
    Ok(img)
}

/// Check that JPEG data is complete: it starts with the start-of-image marker and an
/// end-of-image marker (`FF D9`) follows the start of its last scan (`FF DA`). Bytes after the
/// end-of-image marker (padding, zeros, appended data) are allowed.
///
/// Inside entropy-coded data a `FF` byte is always followed by `00` or a restart marker, so `FF DA`
/// and `FF D9` only occur as markers; an embedded EXIF thumbnail ends before the main image's
/// last scan starts and therefore cannot stand in for its end.
pub fn check_jpeg_complete(bytes: &[u8]) -> Result<()> {
    anyhow::ensure!(bytes.starts_with(&[0xFF, 0xD8]), "not JPEG data (no start-of-image marker)");
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let Some(scan) = last_scan else {
        anyhow::bail!("JPEG data ends before any image scan ({} bytes)", bytes.len());
    };
    if !bytes[scan + 2..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        anyhow::bail!(
            "JPEG data ends without its end-of-image marker (FF D9) after the last scan: the file was cut short at {} bytes",
            bytes.len()
        );
    }
    Ok(())
}

/// Write an image (1 or 3 channels) as 8-bit PNG, atomically.
pub fn write_png(image: &Image, path: &Path) -> Result<()> {
    let bytes = encode_png(image)?;
    crate::report::atomic_write(path, &bytes)
}

/// PNG bytes of an image (1 or 3 channels), e.g. for embedding in an HTML report.
pub fn encode_png(image: &Image) -> Result<Vec<u8>> {
    let color = match image.channels {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        n => anyhow::bail!("cannot write an image with {n} channels as PNG"),
    };
    let mut bytes = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut bytes);
    image::ImageEncoder::write_image(
        encoder,
        &image.to_interleaved_u8(),
        image.width as u32,
        image.height as u32,
        color,
    )?;
    Ok(bytes)
}

/// Encode as JPEG at `quality` (1-100) and decode again: the JPEG re-compression operation.
pub fn jpeg_roundtrip(image: &Image, quality: u8) -> Result<Image> {
    anyhow::ensure!(image.channels == 3, "JPEG re-compression needs an RGB image");
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality.clamp(1, 100));
    image::ImageEncoder::write_image(
        encoder,
        &image.to_interleaved_u8(),
        image.width as u32,
        image.height as u32,
        image::ExtendedColorType::Rgb8,
    )?;
    let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)?.to_rgb8();
    Ok(Image::from_rgb8(image.width, image.height, decoded.as_raw()))
}
