//! Text under a picture (an overlay's prediction and true class), drawn with the public-domain
//! 8x8 bitmap font of the `font8x8` crate, so a PNG says what it shows without a font file.

use font8x8::{UnicodeFonts, BASIC_FONTS};

use super::Image;

/// Pixels per text line: the 8-pixel glyphs and a 2-pixel gap.
const LINE: usize = 10;

/// `image` (any number of channels, values in [0, 1]) with a black strip below holding `lines`
/// in white, one per row, cut at the image width. Characters without an 8x8 glyph show as `?`.
pub fn with_caption(image: &Image, lines: &[&str]) -> Image {
    let (w, h) = (image.width, image.height);
    let strip = LINE * lines.len() + 2;
    let mut out = Image::filled(image.channels, w, h + strip, 0.0);
    for c in 0..image.channels {
        out.plane_mut(c)[..w * h].copy_from_slice(image.plane(c));
    }
    for (row, text) in lines.iter().enumerate() {
        let top = h + 2 + row * LINE;
        for (k, ch) in text.chars().take(w / 8).enumerate() {
            let glyph = BASIC_FONTS.get(ch).or_else(|| BASIC_FONTS.get('?')).unwrap_or([0; 8]);
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..8 {
                    // font8x8 stores each row's leftmost pixel in the lowest bit.
                    if bits >> gx & 1 == 1 {
                        for c in 0..image.channels {
                            out.set(c, 8 * k + gx, top + gy, 1.0);
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_adds_a_strip_with_lit_glyph_pixels_and_keeps_the_image() {
        let img = Image::filled(3, 40, 20, 0.25);
        let out = with_caption(&img, &["mel", "nv"]);
        assert_eq!((out.width, out.height), (40, 20 + 22));
        assert!((0..20).all(|y| (0..40).all(|x| out.get(1, x, y) == 0.25)));
        let lit = |y0: usize| (y0..y0 + 8).flat_map(|y| (0..40).map(move |x| (x, y))).filter(|&(x, y)| out.get(0, x, y) == 1.0).count();
        // 'm','e','l' and 'n','v' all have lit pixels; the strip beyond the text stays black.
        assert!(lit(22) > 20 && lit(32) > 10);
        assert!((32..40).all(|x| (22..42).all(|y| out.get(0, x, y) == 0.0)));
        // Text longer than the width is cut, not wrapped or panicking.
        assert_eq!(with_caption(&img, &["a much longer line than fits"]).width, 40);
    }
}
