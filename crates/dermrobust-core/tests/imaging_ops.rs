//! Geometry and photometry of the shared image operations.

use dermrobust_core::imaging::{Anchor, BorderFill, Image, ImageOp};

/// A square test image with an asymmetric pattern in every channel.
fn pattern(size: usize) -> Image {
    let mut img = Image::filled(3, size, size, 0.0);
    for y in 0..size {
        for x in 0..size {
            img.set(0, x, y, x as f32 / size as f32);
            img.set(1, x, y, y as f32 / size as f32);
            img.set(2, x, y, if x < size / 3 && y < size / 4 { 1.0 } else { 0.2 });
        }
    }
    img
}

#[test]
fn four_quarter_turns_are_the_identity() {
    let img = pattern(17);
    let rot = ImageOp::Rotate { degrees: 90.0, fill: BorderFill::Constant(0.0) };
    let mut out = img.clone();
    for _ in 0..4 {
        out = rot.apply(&out).unwrap();
    }
    assert!(out.max_abs_diff(&img) < 1e-4, "difference {}", out.max_abs_diff(&img));
    // One quarter turn is not the identity, and moves pixel (x, y) exactly.
    let once = rot.apply(&img).unwrap();
    assert!(once.max_abs_diff(&img) > 0.3);
}

#[test]
fn quarter_turn_moves_pixels_counter_clockwise() {
    let n = 9;
    let mut img = Image::filled(1, n, n, 0.0);
    img.set(0, 8, 4, 1.0); // right edge, middle row
    let out = ImageOp::Rotate { degrees: 90.0, fill: BorderFill::Constant(0.0) }.apply(&img).unwrap();
    // Counter-clockwise on screen: the right-middle pixel goes to the top-middle.
    assert!((out.get(0, 4, 0) - 1.0).abs() < 1e-4, "{:?}", out.data);
}

#[test]
fn image_and_mask_move_together() {
    let img = pattern(32);
    let mut mask = Image::filled(1, 32, 32, 0.0);
    for y in 0..8 {
        for x in 0..10 {
            mask.set(0, x, y, 1.0);
        }
    }
    let ops = [
        ImageOp::Rotate { degrees: 37.0, fill: BorderFill::Constant(0.0) },
        ImageOp::Zoom { factor: 1.3, cx: 0.3, cy: 0.6, fill: BorderFill::Constant(0.0) },
        ImageOp::Translate { dx: 0.1, dy: -0.05, fill: BorderFill::Constant(0.0) },
        ImageOp::FlipHorizontal,
        ImageOp::Crop { anchor: Anchor::BottomRight, scale: 0.8 },
    ];
    for op in ops {
        let moved_img = op.apply(&img).unwrap();
        let moved_mask = op.apply_mask(&mask).unwrap();
        // The blue channel marks exactly the masked block; after the move they still coincide.
        let mut agree = 0;
        let mut total = 0;
        for y in 0..32 {
            for x in 0..32 {
                let m = moved_mask.get(0, x, y);
                let b = moved_img.get(2, x, y);
                if m > 0.9 || m < 0.1 {
                    total += 1;
                    if (m > 0.9) == (b > 0.6) {
                        agree += 1;
                    }
                }
            }
        }
        assert!(agree as f64 / total as f64 > 0.97, "{}: mask and image disagree ({agree}/{total})", op.label());
    }
}

#[test]
fn zoom_keeps_the_chosen_point_fixed() {
    let n = 41;
    let mut img = Image::filled(1, n, n, 0.0);
    // A bright pixel at (10, 30); zooming about its centre leaves it in place.
    img.set(0, 10, 30, 1.0);
    let (cx, cy) = (10.5 / n as f32, 30.5 / n as f32);
    for factor in [0.7, 1.5, 2.0] {
        let out = ImageOp::Zoom { factor, cx, cy, fill: BorderFill::Constant(0.0) }.apply(&img).unwrap();
        let (mut best, mut at) = (0.0, (0, 0));
        for y in 0..n {
            for x in 0..n {
                if out.get(0, x, y) > best {
                    best = out.get(0, x, y);
                    at = (x, y);
                }
            }
        }
        assert_eq!(at, (10, 30), "zoom {factor} moved the fixed point");
    }
    // A point away from the centre does move.
    let out = ImageOp::Zoom { factor: 2.0, cx: 0.5, cy: 0.5, fill: BorderFill::Constant(0.0) }.apply(&img).unwrap();
    assert!(out.get(0, 10, 30) < 0.5);
}

#[test]
fn flips_are_involutions_and_corner_crop_is_a_corner_zoom() {
    let img = pattern(20);
    let h = ImageOp::FlipHorizontal;
    assert_eq!(h.apply(&h.apply(&img).unwrap()).unwrap(), img);
    assert_ne!(h.apply(&img).unwrap(), img);
    let crop = ImageOp::Crop { anchor: Anchor::TopLeft, scale: 0.5 }.apply(&img).unwrap();
    let zoom = ImageOp::Zoom { factor: 2.0, cx: 0.0, cy: 0.0, fill: BorderFill::Edge }.apply(&img).unwrap();
    assert!(crop.max_abs_diff(&zoom) < 1e-6);
    // The top-left corner pixel stays (nearly) the same: the crop is anchored there.
    assert!((crop.get(0, 0, 0) - img.get(0, 0, 0)).abs() < 0.05);
}

#[test]
fn photometric_operations_do_what_they_say() {
    let img = pattern(16);
    let mean = img.mean();
    let bright = ImageOp::Brightness { factor: 0.5 }.apply(&img).unwrap();
    assert!((bright.mean() - 0.5 * mean).abs() < 1e-3);
    let green = ImageOp::ColourBalance { gain: [1.0; 3], offset: [0.0, -10.0 / 255.0, 0.0] }.apply(&img).unwrap();
    let n = 16 * 16;
    for i in 0..n {
        assert_eq!(green.data[i], img.data[i]);
        assert!((green.data[n + i] - (img.data[n + i] - 10.0 / 255.0).max(0.0)).abs() < 1e-6);
    }
    let gamma = ImageOp::Gamma { gamma: 2.0 }.apply(&img).unwrap();
    assert!((gamma.data[n + 40] - img.data[n + 40].powi(2)).abs() < 1e-6);
    let grey = ImageOp::Saturation { factor: 0.0 }.apply(&img).unwrap();
    assert!((grey.data[5] - grey.data[n + 5]).abs() < 1e-6 && (grey.data[5] - grey.data[2 * n + 5]).abs() < 1e-6);
    let flat = ImageOp::Contrast { factor: 0.0 }.apply(&img).unwrap();
    assert!(flat.data.iter().all(|v| (v - flat.data[0]).abs() < 1e-6));
    let hue_full = ImageOp::Hue { shift: 1.0 }.apply(&img).unwrap();
    assert!(hue_full.max_abs_diff(&img) < 1e-4);
    let blurred = ImageOp::GaussianBlur { sigma: 0.1 }.apply(&img).unwrap();
    assert!((blurred.mean() - mean).abs() < 0.02 && blurred.max_abs_diff(&img) > 0.05);
    let noisy1 = ImageOp::GaussianNoise { std: 0.05, seed: 3 }.apply(&img).unwrap();
    let noisy2 = ImageOp::GaussianNoise { std: 0.05, seed: 3 }.apply(&img).unwrap();
    assert_eq!(noisy1, noisy2, "noise is reproducible from its seed");
    let jpeg = ImageOp::Jpeg { quality: 30 }.apply(&img).unwrap();
    assert!(jpeg.max_abs_diff(&img) > 0.0 && jpeg.max_abs_diff(&img) < 0.5);
}

#[test]
fn operations_serialise_to_json_and_back() {
    let op = ImageOp::Sequence {
        ops: vec![
            ImageOp::Rotate { degrees: 15.0, fill: BorderFill::Reflect },
            ImageOp::ColourBalance { gain: [1.0, 0.9, 1.1], offset: [0.0, -0.04, 0.0] },
            ImageOp::Crop { anchor: Anchor::TopRight, scale: 0.74 },
        ],
    };
    let json = serde_json::to_string(&op).unwrap();
    assert!(json.contains("\"op\":\"rotate\"") && json.contains("\"anchor\":\"top_right\""), "{json}");
    let back: ImageOp = serde_json::from_str(&json).unwrap();
    assert_eq!(back, op);
    // Defaults: a zoom written with only its factor zooms about the centre.
    let z: ImageOp = serde_json::from_str(r#"{"op":"zoom","factor":1.2}"#).unwrap();
    assert_eq!(z, ImageOp::Zoom { factor: 1.2, cx: 0.5, cy: 0.5, fill: BorderFill::Reflect });
    assert_eq!(op.label(), "rotate(15)+colour(gain=[1.0, 0.9, 1.1],offset=[0.0, -0.04, 0.0])+crop(TopRight,0.74)");
}

#[test]
fn batches_match_single_images() {
    let imgs: Vec<Image> = (0..5).map(|i| pattern(12 + i)).collect();
    let op = ImageOp::Rotate { degrees: 12.0, fill: BorderFill::Reflect };
    let batch = op.apply_batch(&imgs).unwrap();
    for (a, b) in imgs.iter().zip(&batch) {
        assert_eq!(&op.apply(a).unwrap(), b);
    }
}
