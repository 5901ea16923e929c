//! CIEDE2000 and sRGB -> CIELAB against scikit-image and Sharma et al.'s published pairs; Wilson
//! intervals against statsmodels (`tools/reference/colour_and_proportion_reference.py`).

use dermrobust_core::imaging::{ciede2000, mean_delta_e, srgb_to_lab, Image};
use dermrobust_core::metrics::wilson_interval;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    rgb1: Vec<[f32; 3]>,
    rgb2: Vec<[f32; 3]>,
    lab1: Vec<[f64; 3]>,
    delta_e: Vec<f64>,
    sharma: Vec<Sharma>,
    wilson: Vec<Wilson>,
}

#[derive(Deserialize)]
struct Sharma {
    lab1: [f64; 3],
    lab2: [f64; 3],
    published: f64,
}

#[derive(Deserialize)]
struct Wilson {
    successes: usize,
    n: usize,
    level: f64,
    low: f64,
    high: f64,
}

fn reference() -> Reference {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/colour_and_proportion_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn ciede2000_matches_sharma_and_scikit_image() {
    let r = reference();
    for s in &r.sharma {
        let d = ciede2000(s.lab1, s.lab2);
        assert!((d - s.published).abs() < 1e-4, "{:?} {:?}: {d} vs published {}", s.lab1, s.lab2, s.published);
        assert!((ciede2000(s.lab2, s.lab1) - d).abs() < 1e-9, "symmetric");
    }
    for (i, (a, b)) in r.rgb1.iter().zip(&r.rgb2).enumerate() {
        let la = srgb_to_lab(*a);
        for c in 0..3 {
            assert!((la[c] - r.lab1[i][c]).abs() < 1e-3, "Lab of {a:?}: {la:?} vs {:?}", r.lab1[i]);
        }
        let d = ciede2000(la, srgb_to_lab(*b));
        assert!((d - r.delta_e[i]).abs() < 1e-3 * (1.0 + r.delta_e[i]), "pair {i}: {d} vs {}", r.delta_e[i]);
    }
    // Over images: identical images differ by 0, a shifted one by the per-pixel value.
    let img = Image::new(3, 1, 2, vec![r.rgb1[0][0], r.rgb1[1][0], r.rgb1[0][1], r.rgb1[1][1], r.rgb1[0][2], r.rgb1[1][2]]);
    let other = Image::new(3, 1, 2, vec![r.rgb2[0][0], r.rgb2[1][0], r.rgb2[0][1], r.rgb2[1][1], r.rgb2[0][2], r.rgb2[1][2]]);
    assert_eq!(mean_delta_e(&img, &img), 0.0);
    assert!((mean_delta_e(&img, &other) - (r.delta_e[0] + r.delta_e[1]) / 2.0).abs() < 1e-3);
}

#[test]
fn wilson_intervals_match_statsmodels() {
    for w in reference().wilson {
        let ci = wilson_interval(w.successes, w.n, w.level).unwrap();
        assert!((ci.low - w.low).abs() < 1e-7 && (ci.high - w.high).abs() < 1e-7, "{} of {} at {}: [{}, {}] vs [{}, {}]", w.successes, w.n, w.level, ci.low, ci.high, w.low, w.high);
    }
    assert!(wilson_interval(3, 0, 0.95).is_err());
    assert!(wilson_interval(4, 3, 0.95).is_err());
}
