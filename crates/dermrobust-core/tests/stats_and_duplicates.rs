//! Bootstrap intervals, mean/std, and duplicate detection across splits.

use dermrobust_core::data::duplicates::cross_part_duplicates;
use dermrobust_core::imaging::phash::{hamming, perceptual_hash};
use dermrobust_core::imaging::{BorderFill, Image, ImageOp};
use dermrobust_core::metrics::{bootstrap_ci, mean_std, roc_auc};

#[test]
fn bootstrap_interval_brackets_the_estimate_and_shrinks_with_more_data() {
    // A fixed, imperfect ranking: scores carry the label with noise.
    let make = |n: usize| -> (Vec<bool>, Vec<f64>) {
        let labels: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let scores: Vec<f64> = (0..n).map(|i| f64::from(u8::from(labels[i])) * 0.6 + ((i * 7919) % 101) as f64 / 101.0).collect();
        (labels, scores)
    };
    let width = |n: usize| {
        let (l, s) = make(n);
        let ci = bootstrap_ci(n, 400, 0.95, 3, |idx| {
            let ll: Vec<bool> = idx.iter().map(|&i| l[i]).collect();
            let ss: Vec<f64> = idx.iter().map(|&i| s[i]).collect();
            roc_auc(&ll, &ss).ok()
        })
        .unwrap();
        assert!(ci.low <= ci.estimate && ci.estimate <= ci.high, "{ci:?}");
        assert!((ci.estimate - roc_auc(&l, &s).unwrap()).abs() < 1e-12);
        assert_eq!(ci.resamples, 400);
        ci.high - ci.low
    };
    let (small, large) = (width(60), width(600));
    assert!(large < small * 0.6, "interval width {large} (n=600) vs {small} (n=60)");
    // Same seed, same interval.
    let f = |idx: &[usize]| Some(idx.iter().sum::<usize>() as f64);
    assert_eq!(bootstrap_ci(50, 100, 0.9, 7, f).unwrap(), bootstrap_ci(50, 100, 0.9, 7, f).unwrap());
    assert!(bootstrap_ci(0, 100, 0.9, 7, f).is_err());
}

#[test]
fn mean_and_sample_standard_deviation() {
    // numpy: np.mean([1,2,3,4]) = 2.5, np.std([1,2,3,4], ddof=1) = 1.2909944487358056
    let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
    assert!((m - 2.5).abs() < 1e-12 && (s - 1.290_994_448_735_805_6).abs() < 1e-12);
    assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
}

#[test]
fn near_duplicates_across_parts_are_found_and_others_are_not() {
    let textured = |seed: usize| {
        let mut img = Image::filled(3, 64, 64, 0.0);
        for y in 0..64 {
            for x in 0..64 {
                let v = (((x / 8 + seed) * 31 + (y / 8) * 17 + seed * 7) % 13) as f32 / 13.0;
                for c in 0..3 {
                    img.set(c, x, y, v);
                }
            }
        }
        img
    };
    let a = textured(1);
    let a_again = ImageOp::Jpeg { quality: 70 }.apply(&ImageOp::Brightness { factor: 1.03 }.apply(&a).unwrap()).unwrap();
    let b = textured(5);
    let moved = ImageOp::Rotate { degrees: 90.0, fill: BorderFill::Reflect }.apply(&a).unwrap();
    let (ha, ha2, hb, hm) = (perceptual_hash(&a), perceptual_hash(&a_again), perceptual_hash(&b), perceptual_hash(&moved));
    assert!(hamming(ha, ha2) <= 4, "re-compressed copy differs in {} bits", hamming(ha, ha2));
    assert!(hamming(ha, hb) > 10, "different images differ in only {} bits", hamming(ha, hb));
    let items = vec![
        ("a".to_string(), 0, ha, 1),
        ("a_again".to_string(), 2, ha2, 2),
        ("b".to_string(), 2, hb, 3),
        ("a_same_part".to_string(), 0, ha, 1),
        ("rotated".to_string(), 1, hm, 4),
    ];
    let pairs = cross_part_duplicates(&items, 4);
    let names: Vec<(String, String)> = pairs.iter().map(|p| (p.a.clone(), p.b.clone())).collect();
    assert!(names.contains(&("a".into(), "a_again".into())));
    assert!(names.contains(&("a_again".into(), "a_same_part".into())));
    assert!(!names.iter().any(|(x, y)| x == "b" || y == "b"));
    assert!(!names.contains(&("a".into(), "a_same_part".into())), "same part is not a leak");
    // Identical pixels (same exact hash) only occur within part 0 here, so no pair is exact.
    assert!(pairs.iter().all(|p| !p.exact));
}
