//! The synthetic dermoscopy generator: deterministic, lesions where the masks say, class signal.

use dermrobust_core::data::{DataSpec, Dataset, LabelScheme};
use dermrobust_core::imaging::{contact_sheet, io};
use dermrobust_core::synth::{Generator, SyntheticConfig};

#[test]
fn deterministic_by_seed_and_any_resolution() {
    let g = Generator::new(SyntheticConfig { size: 64, ..Default::default() });
    let (a, ma) = g.photograph(5, 0);
    let (b, mb) = g.photograph(5, 0);
    assert_eq!(a, b);
    assert_eq!(ma, mb);
    let other = Generator::new(SyntheticConfig { size: 64, seed: 8, ..Default::default() });
    assert_ne!(other.photograph(5, 0).0, a);
    let big = Generator::new(SyntheticConfig { size: 200, ..Default::default() }).photograph(5, 0).0;
    assert_eq!((big.width, big.height), (200, 200));
}

#[test]
fn lesions_stand_out_from_skin_where_the_masks_say() {
    let g = Generator::new(SyntheticConfig { size: 64, hair_probability: 0.0, vignette_probability: 0.0, ..Default::default() });
    for lesion in 0..40 {
        let (img, mask) = g.photograph(lesion, 0);
        let n = img.width * img.height;
        let (mut inside, mut n_in, mut outside, mut n_out) = ([0.0f32; 3], 0, [0.0f32; 3], 0);
        for i in 0..n {
            let (acc, count) = if mask.data[i] > 0.5 { (&mut inside, &mut n_in) } else { (&mut outside, &mut n_out) };
            for c in 0..3 {
                acc[c] += img.data[c * n + i];
            }
            *count += 1;
        }
        assert!(n_in > 60 && n_out > 500, "lesion {lesion}: mask covers {n_in} pixels");
        let dist: f32 = (0..3).map(|c| (inside[c] / n_in as f32 - outside[c] / n_out as f32).powi(2)).sum::<f32>().sqrt();
        assert!(dist > 0.08, "lesion {lesion}: mean colour inside the mask is too close to the skin ({dist})");
    }
}

#[test]
fn melanomas_are_larger_and_more_varied_than_nevi() {
    // Class signal from the ABCD criteria: compare mean lesion area and colour spread.
    let g = Generator::new(SyntheticConfig { size: 64, hair_probability: 0.0, vignette_probability: 0.0, lesions: 200, ..Default::default() });
    let ds = Dataset::open(&DataSpec::Synthetic(g.config.clone()), LabelScheme::Native).unwrap();
    let mut stats = std::collections::HashMap::<String, (f64, f64, usize)>::new();
    for r in ds.records.iter().filter(|r| r.id.ends_with("_0")) {
        let lesion: usize = r.group.trim_start_matches("synlesion_").parse().unwrap();
        let (img, mask) = g.photograph(lesion, 0);
        let area = mask.data.iter().filter(|&&m| m > 0.5).count() as f64;
        let n = img.width * img.height;
        let values: Vec<f32> = (0..n).filter(|&i| mask.data[i] > 0.5).map(|i| img.data[i]).collect();
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32).sqrt();
        let e = stats.entry(r.dx.clone()).or_default();
        e.0 += area;
        e.1 += sd as f64;
        e.2 += 1;
    }
    let mean = |dx: &str| {
        let (a, s, n) = stats[dx];
        (a / n as f64, s / n as f64)
    };
    let (mel_area, mel_sd) = mean("mel");
    let (nv_area, nv_sd) = mean("nv");
    assert!(mel_area > 1.3 * nv_area, "melanoma area {mel_area} vs nevus {nv_area}");
    assert!(mel_sd > 1.2 * nv_sd, "melanoma colour spread {mel_sd} vs nevus {nv_sd}");
}

#[test]
fn several_photographs_per_lesion_share_the_group() {
    let cfg = SyntheticConfig { lesions: 100, max_photos_per_lesion: 3, ..Default::default() };
    let ds = Dataset::open(&DataSpec::Synthetic(cfg), LabelScheme::Native).unwrap();
    let groups: std::collections::HashSet<&str> = ds.records.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(groups.len(), 100);
    assert!(ds.len() > 120, "some lesions have several photographs ({} images)", ds.len());
    assert_eq!(ds.classes, vec!["bcc", "bkl", "mel", "nv"]);
}

/// Writes a contact sheet of photographs and masks to `target/synthetic_preview.png` for a person
/// to look at (`cargo test --release -p dermrobust-core --test synthetic -- --ignored`).
#[test]
#[ignore]
fn preview_contact_sheet() {
    let g = Generator::new(SyntheticConfig { size: 128, ..Default::default() });
    let ds = Dataset::open(&DataSpec::Synthetic(g.config.clone()), LabelScheme::Native).unwrap();
    let mut tiles = Vec::new();
    for dx in ["nv", "mel", "bkl", "bcc"] {
        for r in ds.records.iter().filter(|r| r.dx == dx && r.id.ends_with("_0")).take(6) {
            let lesion: usize = r.group.trim_start_matches("synlesion_").parse().unwrap();
            let (img, mask) = g.photograph(lesion, 0);
            tiles.push(img);
            tiles.push(mask);
        }
    }
    io::write_png(&contact_sheet(&tiles, 12), std::path::Path::new("../../target/synthetic_preview.png")).unwrap();
}
