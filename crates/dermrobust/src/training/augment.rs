//! Online augmentation presets, built from the shared image operations so that every augmented
//! image can say what was done to it.

use dermrobust_core::imaging::{BorderFill, ImageOp};
use rand::Rng;

use super::config::AugmentPreset;

/// A random operation sequence for one training image.
pub fn draw<R: Rng>(preset: AugmentPreset, rng: &mut R) -> ImageOp {
    let mut ops = Vec::new();
    match preset {
        AugmentPreset::None => {}
        AugmentPreset::Standard => standard(rng, &mut ops),
        AugmentPreset::Artefacts => {
            standard(rng, &mut ops);
            if rng.random::<bool>() {
                ops.push(random_artefact(rng));
            }
        }
        AugmentPreset::Jitter => {
            // github.com/thelynchlab/adversarial classify.py: RandomResizedCrop, horizontal and
            // vertical flips, RandomRotation(180), ColorJitter(hue=0.4); "random color variation
            // in each training batch" (the letter): gains 0.9-1.1 per channel, the colour attack's
            // bounds.
            flips(rng, &mut ops);
            ops.push(ImageOp::Rotate { degrees: rng.random_range(-180.0..180.0), fill: BorderFill::Reflect });
            ops.push(ImageOp::Zoom { factor: rng.random_range(1.0..1.4), cx: rng.random_range(0.3..0.7), cy: rng.random_range(0.3..0.7), fill: BorderFill::Reflect });
            ops.push(ImageOp::Hue { shift: rng.random_range(-0.4..0.4) });
            let gain = [rng.random_range(0.9..1.1), rng.random_range(0.9..1.1), rng.random_range(0.9..1.1)];
            ops.push(ImageOp::ColourBalance { gain, offset: [0.0; 3] });
        }
        AugmentPreset::Yan => {
            // github.com/SaoYan/IPMI2019-AttnMel train.py: RandomCrop((224, 224)) of 256,
            // RandomRotate (0/90/180/270), RandomHorizontalFlip, RandomVerticalFlip.
            let shift = (256.0 - 224.0) / 2.0 / 224.0;
            ops.push(ImageOp::Translate { dx: rng.random_range(-shift..shift), dy: rng.random_range(-shift..shift), fill: BorderFill::Reflect });
            ops.push(ImageOp::Rotate { degrees: 90.0 * rng.random_range(0..4) as f32, fill: BorderFill::Reflect });
            flips(rng, &mut ops);
        }
        AugmentPreset::Strong => {
            // Maron et al.'s "additional data augmentation": transformations of the kinds the
            // brittleness audit applies, at and beyond its magnitudes.
            flips(rng, &mut ops);
            ops.push(ImageOp::Rotate { degrees: rng.random_range(-180.0..180.0), fill: BorderFill::Reflect });
            ops.push(ImageOp::Zoom {
                factor: rng.random_range(0.85..1.35),
                cx: rng.random_range(0.35..0.65),
                cy: rng.random_range(0.35..0.65),
                fill: BorderFill::Reflect,
            });
            ops.push(ImageOp::Translate { dx: rng.random_range(-0.06..0.06), dy: rng.random_range(-0.06..0.06), fill: BorderFill::Reflect });
            ops.push(ImageOp::Brightness { factor: rng.random_range(0.7..1.3) });
            ops.push(ImageOp::Contrast { factor: rng.random_range(0.75..1.25) });
            let mut gain = [1.0f32; 3];
            let mut offset = [0.0f32; 3];
            for c in 0..3 {
                gain[c] = rng.random_range(0.9..1.1);
                offset[c] = rng.random_range(-0.05..0.05);
            }
            ops.push(ImageOp::ColourBalance { gain, offset });
            ops.push(ImageOp::Gamma { gamma: rng.random_range(0.75..1.33) });
            ops.push(ImageOp::Saturation { factor: rng.random_range(0.75..1.25) });
            ops.push(ImageOp::Hue { shift: rng.random_range(-0.03..0.03) });
            if rng.random::<f32>() < 0.2 {
                ops.push(ImageOp::GaussianBlur { sigma: rng.random_range(0.002..0.012) });
            }
        }
    }
    ImageOp::Sequence { ops }
}

/// One random procedural artefact placed anywhere (positions are fractions of the image, so the
/// operation fits any image size; no lesion mask is needed).
fn random_artefact<R: Rng>(rng: &mut R) -> ImageOp {
    use dermrobust_core::imaging::artefacts::{Artefact, Inserter, Placement, PROCEDURAL_KINDS};
    let kind = PROCEDURAL_KINDS[rng.random_range(0..PROCEDURAL_KINDS.len())];
    let inserter = Inserter { library: None, placement: Placement::Anywhere };
    let frame = dermrobust_core::imaging::Image::filled(3, 8, 8, 0.5);
    match inserter.draw(&Artefact::Procedural(kind.to_string()), &frame, None, rng) {
        Ok(Some(op)) => op,
        _ => ImageOp::Sequence { ops: vec![] },
    }
}

/// The standard preset: flips, quarter turns, mild zoom, brightness and contrast.
fn standard<R: Rng>(rng: &mut R, ops: &mut Vec<ImageOp>) {
    flips(rng, ops);
    ops.push(ImageOp::Rotate { degrees: 90.0 * rng.random_range(0..4) as f32, fill: BorderFill::Reflect });
    ops.push(ImageOp::Zoom { factor: rng.random_range(1.0..1.1), cx: 0.5, cy: 0.5, fill: BorderFill::Reflect });
    ops.push(ImageOp::Brightness { factor: rng.random_range(0.9..1.1) });
    ops.push(ImageOp::Contrast { factor: rng.random_range(0.9..1.1) });
}

fn flips<R: Rng>(rng: &mut R, ops: &mut Vec<ImageOp>) {
    if rng.random::<bool>() {
        ops.push(ImageOp::FlipHorizontal);
    }
    if rng.random::<bool>() {
        ops.push(ImageOp::FlipVertical);
    }
}
