//! Perceptual (DCT) hashes for near-duplicate detection (Mishra et al. 2019, section 5.1: the same
//! lesion photographed twice must not sit in both training and test data).

use image_hasher::{HashAlg, HasherConfig};

use super::Image;

/// A 64-bit DCT perceptual hash (pHash): robust to resizing, mild blur and JPEG compression.
pub fn perceptual_hash(img: &Image) -> u64 {
    let rgb = image::RgbImage::from_raw(img.width as u32, img.height as u32, rgb_interleaved(img))
        .expect("buffer matches image size");
    let hasher = HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Mean).preproc_dct().to_hasher();
    let hash = hasher.hash_image(&rgb);
    let bytes = hash.as_bytes();
    let mut out = [0u8; 8];
    out[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_le_bytes(out)
}

/// Number of differing bits between two hashes.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

fn rgb_interleaved(img: &Image) -> Vec<u8> {
    if img.channels == 3 {
        img.to_interleaved_u8()
    } else {
        img.to_interleaved_u8().iter().flat_map(|&v| [v, v, v]).collect()
    }
}
