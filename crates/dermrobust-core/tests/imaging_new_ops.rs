//! The replayable operations for adversarial and artefact audits: set pixels, stamp a template,
//! and affine runs merged into one warp.

use std::path::Path;

use dermrobust_core::imaging::warp::{self, Affine};
use dermrobust_core::imaging::{compose_affine, Anchor, BorderFill, Image, ImageOp, PixelValue, StampMode};

fn grey(w: usize, h: usize) -> Image {
    Image::filled(3, w, h, 0.5)
}

// ---------------------------------------------------------------- set_pixels

#[test]
fn set_pixels_sets_exactly_those_pixels() {
    let img = grey(16, 12);
    let op = ImageOp::SetPixels {
        at_size: [16, 12],
        pixels: vec![PixelValue { x: 0, y: 0, rgb: [1.0, 0.0, 0.25] }, PixelValue { x: 15, y: 11, rgb: [0.0, 1.0, 0.75] }],
    };
    let out = op.apply(&img).unwrap();
    assert_eq!([out.get(0, 0, 0), out.get(1, 0, 0), out.get(2, 0, 0)], [1.0, 0.0, 0.25]);
    assert_eq!([out.get(0, 15, 11), out.get(1, 15, 11), out.get(2, 15, 11)], [0.0, 1.0, 0.75]);
    let changed = out.data.iter().zip(&img.data).filter(|(a, b)| a != b).count();
    assert_eq!(changed, 6, "only the two pixels' channels change");
    // Not geometric: a mask is unchanged.
    let mask = Image::filled(1, 16, 12, 1.0);
    assert_eq!(op.apply_mask(&mask).unwrap(), mask);
    assert!(!op.is_geometric());
    // Replayable: JSON and back.
    let back: ImageOp = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
    assert_eq!(back, op);
    assert_eq!(op.label(), "pixels(2@16x12)");
}

#[test]
fn set_pixels_on_an_image_of_another_size_names_both_sizes() {
    let op = ImageOp::SetPixels { at_size: [16, 12], pixels: vec![PixelValue { x: 1, y: 1, rgb: [1.0; 3] }] };
    let err = op.apply(&grey(32, 24)).unwrap_err().to_string();
    assert!(err.contains("16x12") && err.contains("32x24"), "{err}");
}

// ---------------------------------------------------------------- stamp

/// A 20x10 template: white background with a black bar at x 5..15 (or 2..8 if `left`), y 3..7.
fn write_bar_template(path: &Path, left: bool) {
    let (x0, x1) = if left { (2, 8) } else { (5, 15) };
    let img = image::RgbImage::from_fn(20, 10, |x, y| {
        if (x0..x1).contains(&x) && (3..7).contains(&y) {
            image::Rgb([0, 0, 0])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    img.save(path).unwrap();
}

/// Total darkening of channel 0 relative to mid-grey.
fn plain_bar_darkness(img: &Image) -> f32 {
    img.plane(0).iter().map(|v| 0.5 - v).sum()
}

fn stamp(path: &Path, x: f32, y: f32, degrees: f32, flip: bool, mode: StampMode) -> ImageOp {
    ImageOp::Stamp { template: path.to_path_buf(), x, y, scale: 0.5, degrees, flip, mode }
}

const KEY: StampMode = StampMode::KeyedBlend { white_threshold: 0.9, opacity: 1.0 };

#[test]
fn keyed_stamp_pastes_the_dark_part_and_keys_out_white() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("bar.png");
    write_bar_template(&t, false);
    let img = grey(40, 40);
    // 0.5 of 40 = 20 pixels wide (1:1 with the template), centred: template (0,0) at image (10,15).
    let out = stamp(&t, 0.5, 0.5, 0.0, false, KEY).apply(&img).unwrap();
    for (x, y) in [(15, 18), (24, 21), (20, 20)] {
        assert!(out.get(0, x, y) < 0.01 && out.get(2, x, y) < 0.01, "bar pixel ({x},{y}) = {}", out.get(0, x, y));
    }
    // White background inside the stamp and everything outside it are unchanged.
    for (x, y) in [(11, 16), (28, 23), (20, 16), (0, 0), (39, 39)] {
        assert_eq!(out.get(0, x, y), 0.5, "({x},{y}) changed");
    }
    // Half opacity: half way between the image and black.
    let half = stamp(&t, 0.5, 0.5, 0.0, false, StampMode::KeyedBlend { white_threshold: 0.9, opacity: 0.5 }).apply(&img).unwrap();
    assert!((half.get(1, 20, 20) - 0.25).abs() < 0.01, "{}", half.get(1, 20, 20));
    // Photometric: masks do not move.
    let mask = Image::filled(1, 40, 40, 0.0);
    assert_eq!(stamp(&t, 0.5, 0.5, 0.0, false, KEY).apply_mask(&mask).unwrap(), mask);
}

#[test]
fn stamp_position_rotation_and_flip() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("bar.png");
    write_bar_template(&t, false);
    let img = grey(40, 40);
    // A quarter turn makes the horizontal bar (10x4) vertical (4x10): x 18..22, y 15..25.
    let turned = stamp(&t, 0.5, 0.5, 90.0, false, KEY).apply(&img).unwrap();
    assert!(turned.get(0, 20, 16) < 0.01 && turned.get(0, 20, 23) < 0.01);
    assert_eq!(turned.get(0, 16, 20), 0.5, "the unrotated bar's end is not covered any more");
    // Moved to (0.25, 0.75): centre at pixel (10, 30).
    let moved = stamp(&t, 0.25, 0.75, 0.0, false, KEY).apply(&img).unwrap();
    assert!(moved.get(0, 10, 30) < 0.01);
    assert_eq!(moved.get(0, 20, 20), 0.5);
    // Flip mirrors the template: a bar on its left appears on the right.
    let lt = tmp.path().join("left.png");
    write_bar_template(&lt, true);
    let plain = stamp(&lt, 0.5, 0.5, 0.0, false, KEY).apply(&img).unwrap();
    let flipped = stamp(&lt, 0.5, 0.5, 0.0, true, KEY).apply(&img).unwrap();
    // Template x 2..8 -> image x 12..18; mirrored -> template x 12..18 -> image x 22..28.
    assert!(plain.get(0, 14, 20) < 0.01 && plain.get(0, 25, 20) == 0.5);
    assert!(flipped.get(0, 25, 20) < 0.01 && flipped.get(0, 14, 20) == 0.5);
    assert_eq!(flipped, ImageOp::FlipHorizontal.apply(&plain).unwrap(), "centred flip = mirrored result");
    // Scale: a template a quarter of the width is 10x5 pixels (x 15..25), so the bar is 5 wide
    // (x 17.5..22.5, softened by the antialiased downscale) and nothing beyond the template moves.
    let small = ImageOp::Stamp { template: t.clone(), x: 0.5, y: 0.5, scale: 0.25, degrees: 0.0, flip: false, mode: KEY }.apply(&img).unwrap();
    assert!(small.get(0, 19, 20) < 0.3 && small.get(0, 21, 20) < 0.3, "{} {}", small.get(0, 19, 20), small.get(0, 21, 20));
    assert_eq!(small.get(0, 14, 20), 0.5);
    assert_eq!(small.get(0, 26, 20), 0.5);
    assert_eq!(small.get(0, 20, 16), 0.5);
    let full = plain_bar_darkness(&ImageOp::Stamp { template: t.clone(), x: 0.5, y: 0.5, scale: 0.5, degrees: 0.0, flip: false, mode: KEY }.apply(&img).unwrap());
    assert!(plain_bar_darkness(&small) < 0.5 * full, "a smaller stamp darkens less");
}

#[test]
fn additive_stamp_adds_a_signed_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("delta.png");
    // 128 adds nothing, 255 adds +1 (clipped), 0 subtracts.
    let tpl = image::RgbImage::from_fn(20, 20, |x, _| match x {
        0..=5 => image::Rgb([255, 128, 128]),
        6..=11 => image::Rgb([128, 128, 128]),
        _ => image::Rgb([128, 0, 128]),
    });
    tpl.save(&t).unwrap();
    let img = grey(20, 20);
    let out = ImageOp::Stamp { template: t.clone(), x: 0.5, y: 0.5, scale: 1.0, degrees: 0.0, flip: false, mode: StampMode::Add }
        .apply(&img)
        .unwrap();
    assert_eq!(out.get(0, 2, 10), 1.0);
    assert_eq!(out.get(1, 2, 10), 0.5);
    assert_eq!(out.get(0, 8, 10), 0.5, "128 adds exactly nothing");
    assert_eq!(out.get(1, 16, 10), 0.0);
    assert_eq!(out.get(2, 16, 10), 0.5);
}

#[test]
fn template_alpha_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("alpha.png");
    // Black everywhere, but transparent on the left half.
    image::RgbaImage::from_fn(20, 20, |x, _| image::Rgba([0, 0, 0, if x < 10 { 0 } else { 255 }])).save(&t).unwrap();
    let out = ImageOp::Stamp { template: t, x: 0.5, y: 0.5, scale: 1.0, degrees: 0.0, flip: false, mode: KEY }.apply(&grey(20, 20)).unwrap();
    assert_eq!(out.get(0, 3, 10), 0.5);
    assert!(out.get(0, 16, 10) < 0.01);
}

#[test]
fn unreadable_template_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no_such_ruler.png");
    let err = format!("{:#}", stamp(&missing, 0.5, 0.5, 0.0, false, KEY).apply(&grey(8, 8)).unwrap_err());
    assert!(err.contains("no_such_ruler.png") && err.contains("stamp"), "{err}");
    let junk = tmp.path().join("junk.png");
    std::fs::write(&junk, b"not a png").unwrap();
    let err = format!("{:#}", stamp(&junk, 0.5, 0.5, 0.0, false, KEY).apply(&grey(8, 8)).unwrap_err());
    assert!(err.contains("junk.png"), "{err}");
}

#[test]
fn stamp_serialises_and_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("bar.png");
    write_bar_template(&t, false);
    let op = stamp(&t, 0.3, 0.6, 30.0, true, StampMode::KeyedBlend { white_threshold: 0.85, opacity: 0.8 });
    let json = serde_json::to_string(&op).unwrap();
    assert!(json.contains("\"op\":\"stamp\"") && json.contains("\"kind\":\"keyed_blend\""), "{json}");
    let back: ImageOp = serde_json::from_str(&json).unwrap();
    assert_eq!(back, op);
    let img = grey(40, 40);
    assert_eq!(back.apply(&img).unwrap(), op.apply(&img).unwrap());
    // An edited template file is read again (the cache checks the file).
    let before = op.apply(&img).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    image::RgbImage::from_pixel(20, 10, image::Rgb([255, 255, 255])).save(&t).unwrap();
    let after = op.apply(&img).unwrap();
    assert_ne!(before, after);
    assert_eq!(after, img, "an all-white template is keyed out completely");
}

// ---------------------------------------------------------------- one warp for an affine run

/// A smooth test image: `f(x, y)` at pixel centres.
fn smooth(n: usize) -> (Image, impl Fn(f32, f32) -> f32) {
    let f = |x: f32, y: f32| 0.5 + 0.35 * (x / 3.1).sin() * (y / 4.3).cos();
    let mut img = Image::filled(1, n, n, 0.0);
    for y in 0..n {
        for x in 0..n {
            img.set(0, x, y, f(x as f32 + 0.5, y as f32 + 0.5));
        }
    }
    (img, f)
}

fn chain() -> Vec<ImageOp> {
    vec![
        ImageOp::Rotate { degrees: 23.0, fill: BorderFill::Reflect },
        ImageOp::Zoom { factor: 1.15, cx: 0.45, cy: 0.55, fill: BorderFill::Reflect },
        ImageOp::Translate { dx: 0.03, dy: -0.02, fill: BorderFill::Reflect },
    ]
}

#[test]
fn an_affine_run_becomes_one_warp_equal_to_the_composed_map() {
    let ops = chain();
    let composed = compose_affine(&ops);
    assert_eq!(composed.len(), 1);
    assert!(matches!(&composed[0], ImageOp::Warp { ops: inner, fill: BorderFill::Reflect } if inner.len() == 3));
    let (img, _) = smooth(48);
    let n = 48.0;
    // Applying A then B then C samples the source at A^-1(B^-1(C^-1(p))).
    let expected_map = Affine::rotation_about(23.0, n / 2.0, n / 2.0)
        .compose(&Affine::zoom_about(1.15, 0.45 * n, 0.55 * n))
        .compose(&Affine::translation(0.03 * n, -0.02 * n));
    let expected = warp::warp(&img, &expected_map, BorderFill::Reflect);
    let got = composed[0].apply(&img).unwrap();
    assert!(got.max_abs_diff(&expected) < 1e-6, "{}", got.max_abs_diff(&expected));
    // And the map maps as the operations do: the translation moves content by +dx.
    let (sx, sy) = expected_map.apply(24.0 + 0.03 * n, 24.0 - 0.02 * n);
    let (zx, zy) = Affine::rotation_about(23.0, 24.0, 24.0).compose(&Affine::zoom_about(1.15, 0.45 * n, 0.55 * n)).apply(24.0, 24.0);
    assert!((sx - zx).abs() < 1e-4 && (sy - zy).abs() < 1e-4);
}

#[test]
fn one_resampling_is_closer_to_the_exact_result_than_three() {
    let n = 64;
    let (img, f) = smooth(n);
    let ops = chain();
    let w = n as f32;
    let map = Affine::rotation_about(23.0, w / 2.0, w / 2.0)
        .compose(&Affine::zoom_about(1.15, 0.45 * w, 0.55 * w))
        .compose(&Affine::translation(0.03 * w, -0.02 * w));
    let once = compose_affine(&ops)[0].apply(&img).unwrap();
    let sequential = ImageOp::Sequence { ops: ops.clone() }.apply(&img).unwrap();
    // Compare in the centre, far from every border, against f at the exact source positions.
    let (mut err_once, mut err_seq) = (0.0f64, 0.0f64);
    for y in n / 4..3 * n / 4 {
        for x in n / 4..3 * n / 4 {
            let (sx, sy) = map.apply(x as f32 + 0.5, y as f32 + 0.5);
            let exact = f(sx, sy);
            err_once += ((once.get(0, x, y) - exact) as f64).powi(2);
            err_seq += ((sequential.get(0, x, y) - exact) as f64).powi(2);
        }
    }
    eprintln!("squared error against the exact map: one warp {err_once:.5}, three warps {err_seq:.5}");
    assert!(err_once < 0.7 * err_seq, "one warp {err_once} vs sequential {err_seq}");
    // They are the same transformation: in the centre the difference is only resampling blur.
    let centre = |im: &Image| im.cropped(n / 4, n / 4, n / 2, n / 2);
    assert!(centre(&once).max_abs_diff(&centre(&sequential)) < 0.05, "{}", centre(&once).max_abs_diff(&centre(&sequential)));
}

#[test]
fn exact_maps_compose_exactly_and_masks_follow() {
    let mut img = Image::filled(3, 15, 15, 0.0);
    for y in 0..15 {
        for x in 0..15 {
            img.set(0, x, y, (x * 15 + y) as f32 / 225.0);
            img.set(2, x, y, if x < 5 && y < 3 { 1.0 } else { 0.0 });
        }
    }
    let ops = vec![
        ImageOp::FlipHorizontal,
        ImageOp::Rotate { degrees: 90.0, fill: BorderFill::Constant(0.0) },
        ImageOp::FlipVertical,
        ImageOp::Rotate { degrees: -180.0, fill: BorderFill::Constant(0.0) },
    ];
    let warp_op = compose_affine(&ops);
    assert_eq!(warp_op.len(), 1);
    let seq = ImageOp::Sequence { ops }.apply(&img).unwrap();
    let once = warp_op[0].apply(&img).unwrap();
    assert!(once.max_abs_diff(&seq) < 1e-5, "{}", once.max_abs_diff(&seq));
    assert!(warp_op[0].is_geometric());
    let mut mask = Image::filled(1, 15, 15, 0.0);
    for y in 0..3 {
        for x in 0..5 {
            mask.set(0, x, y, 1.0);
        }
    }
    let moved = warp_op[0].apply_mask(&mask).unwrap();
    assert_eq!(moved.plane(0), once.plane(2), "the mask moves with the image");
    assert_ne!(moved, mask);
}

#[test]
fn runs_stop_at_other_operations_and_at_a_change_of_border() {
    let rot = ImageOp::Rotate { degrees: 10.0, fill: BorderFill::Reflect };
    let zoom = ImageOp::Zoom { factor: 1.1, cx: 0.5, cy: 0.5, fill: BorderFill::Reflect };
    let black_shift = ImageOp::Translate { dx: 0.1, dy: 0.0, fill: BorderFill::Constant(0.0) };
    let gamma = ImageOp::Gamma { gamma: 1.2 };
    let ops = vec![
        rot.clone(),
        gamma.clone(),
        ImageOp::Sequence { ops: vec![zoom.clone(), ImageOp::FlipHorizontal, rot.clone()] },
        black_shift.clone(),
        ImageOp::Crop { anchor: Anchor::Centre, scale: 0.9 },
    ];
    let out = compose_affine(&ops);
    let expected = vec![
        rot.clone(),
        gamma,
        ImageOp::Warp { ops: vec![zoom, ImageOp::FlipHorizontal, rot], fill: BorderFill::Reflect },
        black_shift,
        ImageOp::Crop { anchor: Anchor::Centre, scale: 0.9 },
    ];
    assert_eq!(out, expected);
    // The composed list still does what the original did (same pixels up to resampling).
    let (img, _) = smooth(32);
    let mut rgb = Image::filled(3, 32, 32, 0.0);
    for c in 0..3 {
        rgb.plane_mut(c).copy_from_slice(img.plane(0));
    }
    let a = ImageOp::Sequence { ops }.apply(&rgb).unwrap();
    let b = ImageOp::Sequence { ops: out }.apply(&rgb).unwrap();
    let mean_diff = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.data.len() as f32;
    assert!(mean_diff < 0.02, "{mean_diff}");
    // Serialises like every operation.
    let w = ImageOp::Warp { ops: chain(), fill: BorderFill::Edge };
    let back: ImageOp = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
    assert_eq!(back, w);
    assert_eq!(w.label(), "warp(rotate(23)+zoom(1.15@0.45,0.55)+translate(0.03,-0.02))");
}

#[test]
fn difference_stamp_adds_with_minus_without() {
    let tmp = tempfile::tempdir().unwrap();
    let (with, without) = (tmp.path().join("r_with.png"), tmp.path().join("r_without.png"));
    // The same skin region, once with a dark 4x4 ruler mark in the middle.
    image::RgbImage::from_fn(20, 20, |x, y| if (8..12).contains(&x) && (8..12).contains(&y) { image::Rgb([40, 40, 40]) } else { image::Rgb([200, 150, 120]) })
        .save(&with)
        .unwrap();
    image::RgbImage::from_pixel(20, 20, image::Rgb([200, 150, 120])).save(&without).unwrap();
    let mode = StampMode::Difference { without: without.clone() };
    let op = ImageOp::Stamp { template: with.clone(), x: 0.5, y: 0.5, scale: 0.5, degrees: 0.0, flip: false, mode };
    let img = grey(40, 40);
    let out = op.apply(&img).unwrap();
    // Mark at image 18..22: red channel falls by (200-40)/255.
    assert!((out.get(0, 20, 20) - (0.5f32 - 160.0 / 255.0).max(0.0)).abs() < 1e-3, "{}", out.get(0, 20, 20));
    assert!((out.get(2, 19, 19) - (0.5 - 80.0 / 255.0)).abs() < 1e-3, "{}", out.get(2, 19, 19));
    // Where with and without agree nothing changes, inside the stamp or not.
    assert_eq!(out.get(0, 12, 12), 0.5);
    assert_eq!(out.get(0, 0, 39), 0.5);
    // Replayable.
    let back: ImageOp = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
    assert_eq!(back.apply(&img).unwrap(), out);
    // Scaled down (the template resampled to 10x10), the negative difference survives: the mark
    // (2x2 at image 19..21) still darkens, and by about as much.
    let ImageOp::Stamp { template, mode, .. } = op.clone() else { unreachable!() };
    let small = ImageOp::Stamp { template, x: 0.5, y: 0.5, scale: 0.25, degrees: 0.0, flip: false, mode }.apply(&img).unwrap();
    assert!(small.get(0, 19, 19) < 0.5 - 0.2 && small.get(0, 20, 20) < 0.5 - 0.2, "{} {}", small.get(0, 19, 19), small.get(0, 20, 20));
    assert_eq!(small.get(0, 16, 16), 0.5);
    // A pair of different sizes names both files.
    let small = tmp.path().join("small_without.png");
    image::RgbImage::from_pixel(10, 20, image::Rgb([0, 0, 0])).save(&small).unwrap();
    let bad = ImageOp::Stamp { template: with, x: 0.5, y: 0.5, scale: 0.5, degrees: 0.0, flip: false, mode: StampMode::Difference { without: small } };
    let err = bad.apply(&img).unwrap_err().to_string();
    assert!(err.contains("r_with.png") && err.contains("small_without.png") && err.contains("20x20") && err.contains("10x20"), "{err}");
}

/// The real artefact templates (Katsch et al.) in `../shared/data/artefact-templates`, if present.
#[test]
fn real_artefact_templates_stamp_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/artefact-templates/src");
    if !root.is_dir() {
        eprintln!("skipping: {} is absent", root.display());
        return;
    }
    let mut pngs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().map(|f| f.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().to_string();
    let with = pngs.iter().find(|p| name(p).contains("_with_")).expect("a with/without pair");
    let without = with.with_file_name(name(with).replace("_with_", "_without_"));
    let marking = pngs.iter().find(|p| !name(p).contains("with")).expect("a marking");
    // Large enough that thin ruler ticks survive the antialiased downscale of the template.
    let mut img = grey(400, 300);
    for y in 0..300 {
        for x in 0..400 {
            img.set(0, x, y, 0.6 + 0.2 * (x as f32 / 400.0));
        }
    }
    let pair = ImageOp::Stamp {
        template: with.clone(),
        x: 0.5,
        y: 0.5,
        scale: 0.75,
        degrees: 0.0,
        flip: false,
        mode: StampMode::Difference { without: without.clone() },
    };
    let out = pair.apply(&img).unwrap();
    // Unrotated, the stamp keeps most of the template's contrast (thin ruler ticks lose some
    // in the downscale and more when a rotation samples between pixels).
    assert!(out.max_abs_diff(&img) > 0.1, "{} left no mark ({})", name(with), out.max_abs_diff(&img));
    assert_eq!(out.get(0, 0, 0), img.get(0, 0, 0), "outside the stamp nothing changes");
    // The difference of a file with itself is nothing.
    let nothing = ImageOp::Stamp {
        template: without.clone(),
        x: 0.5,
        y: 0.5,
        scale: 0.75,
        degrees: 15.0,
        flip: false,
        mode: StampMode::Difference { without },
    };
    assert!(nothing.apply(&img).unwrap().max_abs_diff(&img) < 1e-6);
    let keyed = ImageOp::Stamp { template: marking.clone(), x: 0.4, y: 0.6, scale: 0.3, degrees: 0.0, flip: true, mode: KEY };
    let out = keyed.apply(&img).unwrap();
    assert!(out.max_abs_diff(&img) > 0.05, "{} left no mark", name(marking));
    assert_eq!(out.get(1, 399, 0), img.get(1, 399, 0));
}
