//! Procedural artefacts (hair, ruler, ink, bubbles, vignette, glare, calibration patches): seeded,
//! replayable image operations, and the synthetic generator drawing its hair and vignette with
//! the same functions.

use dermrobust_core::synth::{Generator, SyntheticConfig};

/// FNV-1a over the bit patterns of every pixel value.
fn fnv(data: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in data {
        for b in v.to_bits().to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The generator's photographs with hairs and vignettes are bit-identical to those it drew before
/// its hair and vignette moved into the shared procedural artefacts (the hash was taken from the
/// generator before that change), so synthetic datasets, caches and fixtures stay valid.
#[test]
fn generator_hair_and_vignette_are_bit_identical_to_before() {
    let g = Generator::new(SyntheticConfig { lesions: 24, seed: 11, size: 48, hair_probability: 1.0, vignette_probability: 1.0, max_photos_per_lesion: 1 });
    let mut all = Vec::new();
    for lesion in 0..24 {
        let (img, mask) = g.photograph(lesion, 0);
        all.extend_from_slice(&img.data);
        all.extend_from_slice(&mask.data);
    }
    let h = fnv(&all);
    eprintln!("generator hash {h:#018x}");
    assert_eq!(h, GOLDEN);
}

const GOLDEN: u64 = 0x381f_dbc5_6b10_f69a;

use dermrobust_core::imaging::procedural::{paint_hair, Bubble, HairStrand, InkMark, InkShape, Procedural, Vignette, HAIR_COLOUR};
use dermrobust_core::imaging::{Image, ImageOp};

fn skin(w: usize, h: usize) -> Image {
    let mut img = Image::filled(3, w, h, 0.0);
    for y in 0..h {
        for x in 0..w {
            img.set(0, x, y, 0.8 - 0.1 * (x as f32 / w as f32));
            img.set(1, x, y, 0.6);
            img.set(2, x, y, 0.5 + 0.1 * (y as f32 / h as f32));
        }
    }
    img
}

fn all_kinds() -> Vec<Procedural> {
    vec![
        Procedural::Hair { strands: vec![HairStrand { p0: [0.0, 0.1], p1: [0.5, 0.6], p2: [1.0, 0.3], width: 0.02, colour: HAIR_COLOUR }] },
        Procedural::Ruler { x: 0.5, y: 0.85, length: 0.9, width: 0.12, degrees: 8.0, spacing: 0.02, colour: [0.05; 3], background: [0.95; 3], background_opacity: 0.5, first: 0 },
        Procedural::Ink {
            marks: vec![
                InkMark { shape: InkShape::Dot, x: 0.2, y: 0.2, x2: 0.0, y2: 0.0, size: 0.03, width: 0.0, colour: [0.4, 0.17, 0.52], opacity: 0.9 },
                InkMark { shape: InkShape::Circle, x: 0.5, y: 0.5, x2: 0.0, y2: 0.0, size: 0.3, width: 0.02, colour: [0.13, 0.22, 0.58], opacity: 0.8 },
                InkMark { shape: InkShape::Line, x: 0.1, y: 0.9, x2: 0.4, y2: 0.7, size: 0.0, width: 0.02, colour: [0.08, 0.08, 0.1], opacity: 1.0 },
            ],
        },
        Procedural::Bubbles { bubbles: vec![Bubble { x: 0.7, y: 0.3, radius: 0.08, rim: 0.01, strength: 0.8 }] },
        Procedural::Vignette(Vignette { cx: 0.5, cy: 0.5, radius: 0.62, strength: 0.9, inner: 0.08, outer: 0.04 }),
        Procedural::Glare { x: 0.3, y: 0.6, rx: 0.06, ry: 0.03, degrees: 30.0, strength: 0.8 },
        Procedural::CalibrationPatches { x: 0.05, y: 0.05, patch: 0.06, columns: 3, colours: vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]] },
    ]
}

#[test]
fn every_kind_changes_the_image_and_replays_exactly_from_its_json() {
    let img = skin(64, 48);
    for a in all_kinds() {
        let op = ImageOp::Artefact { artefact: a.clone() };
        let out = op.apply(&img).unwrap();
        let changed = img.data.iter().zip(&out.data).filter(|(x, y)| (*x - *y).abs() > 1e-3).count();
        assert!(changed > 10, "{} changed only {changed} values", a.kind());
        assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
        let back: ImageOp = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
        assert_eq!(back, op);
        assert_eq!(back.apply(&img).unwrap(), out, "{} does not replay", a.kind());
        // Masks are not moved by an artefact.
        let mask = Image::filled(1, 64, 48, 1.0);
        assert_eq!(op.apply_mask(&mask).unwrap(), mask);
    }
}

#[test]
fn localised_artefacts_leave_far_pixels_alone() {
    let img = skin(64, 64);
    // A dot at the top left never reaches the bottom right quarter.
    let dot = ImageOp::Artefact {
        artefact: Procedural::Ink { marks: vec![InkMark { shape: InkShape::Dot, x: 0.15, y: 0.15, x2: 0.0, y2: 0.0, size: 0.05, width: 0.0, colour: [0.4, 0.17, 0.52], opacity: 1.0 }] },
    };
    let out = dot.apply(&img).unwrap();
    for y in 32..64 {
        for x in 32..64 {
            for c in 0..3 {
                assert_eq!(out.get(c, x, y), img.get(c, x, y));
            }
        }
    }
    // The centre of the dot is the ink's colour.
    assert!((out.get(0, 9, 9) - 0.4).abs() < 1e-5);
}

#[test]
fn bad_parameters_are_errors_naming_them() {
    let op = ImageOp::Artefact { artefact: Procedural::Glare { x: 0.5, y: 0.5, rx: 0.0, ry: 0.1, degrees: 0.0, strength: 0.5 } };
    let e = op.apply(&skin(16, 16)).unwrap_err().to_string();
    assert!(e.contains("rx"), "{e}");
    let op = ImageOp::Artefact { artefact: Procedural::Hair { strands: vec![HairStrand { p0: [0.0; 2], p1: [0.5; 2], p2: [f32::NAN, 0.0], width: 0.01, colour: HAIR_COLOUR }] } };
    assert!(op.validate().unwrap_err().to_string().contains("p2"));
}

#[test]
fn the_hair_op_draws_what_paint_hair_draws() {
    let img = skin(40, 40);
    let strands = vec![HairStrand { p0: [0.1, 0.0], p1: [0.3, 0.8], p2: [0.9, 1.0], width: 0.01, colour: [0.2, 0.1, 0.05] }];
    let out = ImageOp::Artefact { artefact: Procedural::Hair { strands: strands.clone() } }.apply(&img).unwrap();
    for y in 0..40 {
        for x in 0..40 {
            let c = paint_hair([img.get(0, x, y), img.get(1, x, y), img.get(2, x, y)], [(x as f32 + 0.5) / 40.0, (y as f32 + 0.5) / 40.0], &strands);
            for ch in 0..3 {
                assert_eq!(out.get(ch, x, y), c[ch].clamp(0.0, 1.0));
            }
        }
    }
}

#[test]
fn the_vignette_darkens_corners_and_keeps_the_centre() {
    let img = Image::filled(3, 50, 50, 0.8);
    let out = ImageOp::Artefact { artefact: Procedural::Vignette(Vignette::dermoscope(0.55)) }.apply(&img).unwrap();
    assert_eq!(out.get(0, 25, 25), 0.8);
    assert!(out.get(0, 0, 0) < 0.1);
}
