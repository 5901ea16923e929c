//! Every image operation checks its parameters: a bad value is an error naming the operation,
//! the parameter and the value, never NaN pixels or a silent clamp.

use dermrobust_core::imaging::{Anchor, BorderFill, Image, ImageOp, PixelValue, StampMode};

fn image() -> Image {
    let mut img = Image::filled(3, 12, 10, 0.4);
    img.set(0, 3, 4, 0.9);
    img
}

#[test]
fn zoom_by_zero_is_an_error_not_nan_pixels() {
    let op = ImageOp::Zoom { factor: 0.0, cx: 0.5, cy: 0.5, fill: BorderFill::Reflect };
    let err = op.apply(&image()).unwrap_err().to_string();
    assert!(err.contains("zoom") && err.contains("factor") && err.contains("got 0"), "{err}");
    let mask = Image::filled(1, 12, 10, 1.0);
    assert!(op.apply_mask(&mask).is_err(), "masks are checked too");
}

#[test]
fn every_bad_parameter_is_named() {
    let nan = f32::NAN;
    let cases: Vec<(ImageOp, &[&str])> = vec![
        (ImageOp::Rotate { degrees: nan, fill: BorderFill::Reflect }, &["rotate", "degrees", "NaN"]),
        (ImageOp::Rotate { degrees: 10.0, fill: BorderFill::Constant(2.0) }, &["rotate", "border fill", "2"]),
        (ImageOp::Zoom { factor: -1.5, cx: 0.5, cy: 0.5, fill: BorderFill::Edge }, &["zoom", "factor", "-1.5"]),
        (ImageOp::Zoom { factor: f32::INFINITY, cx: 0.5, cy: 0.5, fill: BorderFill::Edge }, &["zoom", "factor", "inf"]),
        (ImageOp::Zoom { factor: 1.2, cx: nan, cy: 0.5, fill: BorderFill::Edge }, &["zoom", "cx", "NaN"]),
        (ImageOp::Zoom { factor: 1.2, cx: 0.5, cy: 3.0, fill: BorderFill::Edge }, &["zoom", "cy", "3"]),
        (ImageOp::Translate { dx: f32::NEG_INFINITY, dy: 0.0, fill: BorderFill::Edge }, &["translate", "dx", "-inf"]),
        (ImageOp::Translate { dx: 0.0, dy: 1.5, fill: BorderFill::Edge }, &["translate", "dy", "1.5"]),
        (ImageOp::Crop { anchor: Anchor::Centre, scale: 0.0 }, &["crop", "scale", "got 0"]),
        (ImageOp::Crop { anchor: Anchor::Centre, scale: 1.5 }, &["crop", "scale", "1.5"]),
        (ImageOp::Crop { anchor: Anchor::Centre, scale: nan }, &["crop", "scale", "NaN"]),
        (ImageOp::Brightness { factor: -0.1 }, &["brightness", "factor", "-0.1"]),
        (ImageOp::Contrast { factor: nan }, &["contrast", "factor", "NaN"]),
        (ImageOp::Saturation { factor: -2.0 }, &["saturation", "factor", "-2"]),
        (ImageOp::ColourBalance { gain: [1.0, -1.0, 1.0], offset: [0.0; 3] }, &["colour_balance", "gain[1]", "-1"]),
        (ImageOp::ColourBalance { gain: [1.0; 3], offset: [0.0, 0.0, nan] }, &["colour_balance", "offset[2]", "NaN"]),
        (ImageOp::Gamma { gamma: 0.0 }, &["gamma", "greater than 0", "got 0"]),
        (ImageOp::Gamma { gamma: -1.0 }, &["gamma", "got -1"]),
        (ImageOp::Hue { shift: 3.0 }, &["hue", "shift", "3"]),
        (ImageOp::GaussianBlur { sigma: -0.01 }, &["gaussian_blur", "sigma", "-0.01"]),
        (ImageOp::GaussianNoise { std: nan, seed: 1 }, &["gaussian_noise", "std", "NaN"]),
        (ImageOp::Jpeg { quality: 0 }, &["jpeg", "quality", "got 0"]),
        (ImageOp::Jpeg { quality: 101 }, &["jpeg", "quality", "101"]),
        (
            ImageOp::Sequence { ops: vec![ImageOp::FlipHorizontal, ImageOp::Gamma { gamma: nan }] },
            &["step 2", "gamma", "NaN"],
        ),
        (
            ImageOp::SetPixels { at_size: [12, 10], pixels: vec![PixelValue { x: 12, y: 0, rgb: [0.0; 3] }] },
            &["set_pixels", "(12, 0)", "12x10"],
        ),
        (
            ImageOp::SetPixels { at_size: [12, 10], pixels: vec![PixelValue { x: 1, y: 1, rgb: [0.0, 1.5, 0.0] }] },
            &["set_pixels", "rgb[1]", "1.5"],
        ),
        (ImageOp::SetPixels { at_size: [0, 10], pixels: vec![] }, &["set_pixels", "0x10"]),
        (
            ImageOp::Stamp { template: "t.png".into(), x: 0.5, y: 0.5, scale: 0.0, degrees: 0.0, flip: false, mode: StampMode::Add },
            &["stamp", "scale", "got 0"],
        ),
        (
            ImageOp::Stamp { template: "t.png".into(), x: nan, y: 0.5, scale: 0.2, degrees: 0.0, flip: false, mode: StampMode::Add },
            &["stamp", "x", "NaN"],
        ),
        (
            ImageOp::Stamp {
                template: "t.png".into(),
                x: 0.5,
                y: 0.5,
                scale: 0.2,
                degrees: 0.0,
                flip: false,
                mode: StampMode::KeyedBlend { white_threshold: 0.9, opacity: 2.0 },
            },
            &["stamp", "opacity", "2"],
        ),
        (
            ImageOp::Stamp { template: "".into(), x: 0.5, y: 0.5, scale: 0.2, degrees: 0.0, flip: false, mode: StampMode::Add },
            &["stamp", "template"],
        ),
        (ImageOp::Warp { ops: vec![ImageOp::Gamma { gamma: 1.2 }], fill: BorderFill::Reflect }, &["warp", "gamma(1.2)", "not a geometric"]),
        (
            ImageOp::Warp { ops: vec![ImageOp::Zoom { factor: 0.0, cx: 0.5, cy: 0.5, fill: BorderFill::Reflect }], fill: BorderFill::Reflect },
            &["warp", "zoom", "factor"],
        ),
    ];
    let img = image();
    for (op, words) in cases {
        let err = match op.validate() {
            Ok(()) => panic!("{op:?} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        for w in words {
            assert!(err.contains(w), "error for {op:?} should mention '{w}': {err}");
        }
        // apply refuses before doing anything.
        assert_eq!(format!("{:#}", op.apply(&img).unwrap_err()), err);
    }
}

#[test]
fn ordinary_parameters_are_accepted() {
    let ok = [
        ImageOp::Rotate { degrees: -540.0, fill: BorderFill::Constant(0.0) },
        ImageOp::Zoom { factor: 0.5, cx: 0.0, cy: 1.0, fill: BorderFill::Reflect },
        ImageOp::Translate { dx: -1.0, dy: 0.06, fill: BorderFill::Edge },
        ImageOp::Crop { anchor: Anchor::TopLeft, scale: 1.0 },
        ImageOp::Brightness { factor: 0.0 },
        ImageOp::Contrast { factor: 1.25 },
        ImageOp::ColourBalance { gain: [0.9, 1.1, 1.0], offset: [-0.05, 0.0, 0.05] },
        ImageOp::Gamma { gamma: 1.33 },
        ImageOp::Saturation { factor: 0.0 },
        ImageOp::Hue { shift: -0.5 },
        ImageOp::GaussianBlur { sigma: 0.0 },
        ImageOp::GaussianNoise { std: 0.0, seed: 0 },
        ImageOp::Jpeg { quality: 1 },
        ImageOp::Jpeg { quality: 100 },
        ImageOp::Sequence { ops: vec![] },
        ImageOp::SetPixels { at_size: [12, 10], pixels: vec![PixelValue { x: 11, y: 9, rgb: [1.0, 0.0, 0.5] }] },
        ImageOp::Warp { ops: vec![ImageOp::FlipVertical, ImageOp::Rotate { degrees: 3.0, fill: BorderFill::Edge }], fill: BorderFill::Edge },
    ];
    let img = image();
    for op in ok {
        op.validate().unwrap_or_else(|e| panic!("{op:?} refused: {e:#}"));
        let out = op.apply(&img).unwrap();
        assert!(out.data.iter().all(|v| v.is_finite()), "{}", op.label());
    }
}

#[test]
fn an_operation_read_from_json_is_checked_when_applied() {
    let op: ImageOp = serde_json::from_str(r#"{"op":"sequence","ops":[{"op":"gamma","gamma":-2.0}]}"#).unwrap();
    let err = format!("{:#}", op.apply(&image()).unwrap_err());
    assert!(err.contains("gamma") && err.contains("-2"), "{err}");
}
