//! Checks on the real HAM10000 data in `../shared/data` (skipped, with a message, when absent).

use std::path::PathBuf;

use dermrobust_core::data::summary::summarise;
use dermrobust_core::data::{DataSpec, Dataset, ImageSet, LabelScheme, LoadOptions, Preprocess, Split};

fn ham_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DERMROBUST_HAM10000")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ham10000"));
    if dir.join("HAM10000_metadata.csv").is_file() {
        Some(dir)
    } else {
        skipped(&format!("SKIPPED: HAM10000 not found at {} (set DERMROBUST_HAM10000)", dir.display()));
        None
    }
}

#[test]
fn summary_counts_and_lesion_aware_split() {
    let Some(dir) = ham_dir() else { return };
    let spec: DataSpec = format!("ham10000:{}", dir.display()).parse().unwrap();
    let ds = Dataset::open(&spec, LabelScheme::Ham7).unwrap();
    let split = Split::holdout(&ds, [0.7, 0.15, 0.15], 42).unwrap();
    let s = summarise(&ds, Some(&split)).unwrap();
    assert_eq!(s.images, 10_015);
    assert_eq!(s.lesions, 7_470);
    assert_eq!(s.lesions_with_several_photographs, 1_956);
    assert_eq!(s.images_of_lesions_with_several_photographs, 4_501);
    assert_eq!(s.images_with_masks, 10_015);
    let counts: Vec<(String, usize)> = s.classes.iter().map(|c| (c.class.clone(), c.images)).collect();
    let expected = [("akiec", 327), ("bcc", 514), ("bkl", 1099), ("df", 115), ("mel", 1113), ("nv", 6705), ("vasc", 142)];
    assert_eq!(counts, expected.iter().map(|(c, n)| (c.to_string(), *n)).collect::<Vec<_>>());
    let split_summary = s.split.unwrap();
    assert_eq!(split_summary.lesions_crossing_parts, 0);
    assert_eq!(split_summary.parts.iter().map(|p| p.images).sum::<usize>(), 10_015);
    for (p, share) in split_summary.parts.iter().zip([0.7, 0.15, 0.15]) {
        assert!((p.images as f64 / 10_015.0 - share).abs() < 0.01, "{} has {} images", p.name, p.images);
        // Lesions with several photographs are spread in proportion: about 1.34 images per
        // lesion overall (10,015 / 7,470), in every part.
        let per_lesion = p.images as f64 / p.lesions as f64;
        assert!((per_lesion - 10_015.0 / 7_470.0).abs() < 0.08, "{}: {per_lesion:.2} images per lesion", p.name);
    }
}

#[test]
fn full_resolution_images_and_masks_load() {
    let Some(dir) = ham_dir() else { return };
    let full = dir.parent().unwrap().join("ham10000-fullres");
    let mut n = 0;
    for entry in std::fs::read_dir(&full).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "jpg") {
            let img = dermrobust_core::imaging::io::read_rgb(&p).unwrap();
            assert_eq!((img.width, img.height), (600, 450));
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            let mask = dermrobust_core::imaging::io::read_mask(&full.join(format!("{stem}_segmentation.png"))).unwrap();
            assert_eq!((mask.width, mask.height), (600, 450));
            let covered = mask.data.iter().filter(|&&m| m > 0.5).count();
            assert!(covered > 1000, "{stem}: mask covers {covered} pixels");
            n += 1;
        }
    }
    assert_eq!(n, 5);
}

#[test]
fn a_subset_decodes_with_masks_at_model_size() {
    let Some(dir) = ham_dir() else { return };
    let spec: DataSpec = format!("ham10000:{}", dir.display()).parse().unwrap();
    let ds = Dataset::open(&spec, LabelScheme::Ham7).unwrap();
    let sub = ds.subset(&(0..200).collect::<Vec<_>>());
    let opts = LoadOptions { masks: true, quiet: true, ..Default::default() };
    let (set, _) = ImageSet::load(&sub, &Preprocess { size: 64, centre_crop: Some(0.8) }, &opts).unwrap();
    assert_eq!(set.len(), 200);
    assert!(set.has_masks());
    // Lesions are darker than their surroundings in most dermoscopy images.
    let darker = (0..200)
        .filter(|&i| {
            let img = set.image(i).luma();
            let m = set.mask(i).unwrap();
            let (mut a, mut na, mut b, mut nb) = (0.0, 0, 0.0, 0);
            for (l, mv) in img.data.iter().zip(&m.data) {
                if *mv > 0.5 { a += l; na += 1 } else { b += l; nb += 1 }
            }
            na > 0 && nb > 0 && a / (na as f32) < b / (nb as f32)
        })
        .count();
    assert!(darker > 170, "only {darker}/200 lesions darker than the skin: masks misaligned?");
}

/// Say why a check is skipped, visibly: written straight to the process's stderr, which the test
/// harness does not capture (it captures only `eprintln!`), so CI's log shows it.
fn skipped(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}
