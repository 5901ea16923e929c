//! Artefact insertion: template stamps (difference and keyed), placement rules with and
//! without lesion masks, exact shares, and the real template library (skipped without
//! ../shared/data).

use std::path::{Path, PathBuf};

use dermrobust_core::imaging::artefacts::{exact_share, Artefact, Inserter, Placement, TemplateLibrary, PROCEDURAL_KINDS};
use dermrobust_core::imaging::{io, Image, ImageOp, StampMode};
use rand::SeedableRng;

fn skipped(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {msg}");
}

fn noise_image(w: usize, h: usize, seed: u64) -> Image {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut img = Image::filled(3, w, h, 0.0);
    for v in img.data.iter_mut() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *v = 0.2 + 0.6 * ((s >> 40) as f32 / (1u64 << 24) as f32);
    }
    // Quantise to 8 bits, as a PNG stores it.
    img.quantised_u8()
}

/// A template folder in the authors' layout: one bubble pair and one ink marking on white.
fn make_library(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("src/B1")).unwrap();
    std::fs::create_dir_all(dir.join("src/M1")).unwrap();
    let without = noise_image(24, 18, 1);
    let mut with = without.clone();
    // A bright ring and a dark spot: the bubble.
    for y in 0..18 {
        for x in 0..24 {
            let d = ((x as f32 - 12.0).powi(2) + (y as f32 - 9.0).powi(2)).sqrt();
            for c in 0..3 {
                let v = with.get(c, x, y);
                if (d - 6.0).abs() < 1.5 {
                    with.set(c, x, y, (v + 0.3).min(1.0));
                } else if d < 2.0 {
                    with.set(c, x, y, v * 0.5);
                }
            }
        }
    }
    let with_path = dir.join("src/B1/B1_with_03.png");
    let without_path = dir.join("src/B1/B1_without_03.png");
    io::write_png(&with, &with_path).unwrap();
    io::write_png(&without, &without_path).unwrap();
    let mut marking = Image::filled(3, 30, 20, 1.0);
    for y in 5..15 {
        for x in 5..25 {
            marking.set(0, x, y, 0.4);
            marking.set(1, x, y, 0.17);
            marking.set(2, x, y, 0.52);
        }
    }
    let marking_path = dir.join("src/M1/M1_03.png");
    io::write_png(&marking, &marking_path).unwrap();
    std::fs::write(
        dir.join("meta.json"),
        r#"{"artefacts": [
            {"class": "bubble", "preprocessor": "difference", "name": "B1", "artefact_folder": "src/B1"},
            {"class": "marking", "subclass": "spot", "name": "M1", "artefact_folder": "src/M1"}
        ]}"#,
    )
    .unwrap();
    (with_path, without_path, marking_path)
}

#[test]
fn a_difference_template_added_to_its_without_image_restores_the_with_image() {
    let dir = tempfile::tempdir().unwrap();
    let (with_path, without_path, _) = make_library(dir.path());
    let without = io::read_rgb(&without_path).unwrap();
    let with = io::read_rgb(&with_path).unwrap();
    // Centred, as wide as the image: the template lands pixel on pixel.
    let op = ImageOp::Stamp { template: with_path, x: 0.5, y: 0.5, scale: 1.0, degrees: 0.0, flip: false, mode: StampMode::Difference { without: without_path } };
    let out = op.apply(&without).unwrap();
    let diff = out.max_abs_diff(&with);
    assert!(diff <= 1.5 / 255.0, "restored image differs from the 'with' image by {diff}");
    assert!(without.max_abs_diff(&with) > 0.2, "the test template must be visible");
}

#[test]
fn a_stamp_leaves_pixels_outside_its_footprint_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (with_path, without_path, marking_path) = make_library(dir.path());
    let img = noise_image(64, 64, 9);
    for (mode, template) in [(StampMode::Difference { without: without_path }, with_path), (StampMode::KeyedBlend { white_threshold: 0.85, opacity: 1.0 }, marking_path)] {
        // 0.25 of the width wide, rotated by 30 degrees, at (0.3, 0.4): the footprint lies within
        // a circle of radius half the template's diagonal (+ 2 px for the bilinear edge).
        let op = ImageOp::Stamp { template, x: 0.3, y: 0.4, scale: 0.25, degrees: 30.0, flip: true, mode };
        let out = op.apply(&img).unwrap();
        let (cx, cy) = (0.3 * 64.0, 0.4 * 64.0);
        let radius = 0.5 * 16.0 * (1.0f32 + 0.75f32.powi(2)).sqrt() + 2.0;
        let (mut inside_changed, mut outside_checked) = (0, 0);
        for y in 0..64 {
            for x in 0..64 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let changed = (0..3).any(|c| out.get(c, x, y) != img.get(c, x, y));
                if d > radius {
                    outside_checked += 1;
                    assert!(!changed, "pixel ({x}, {y}) outside the footprint changed");
                } else if changed {
                    inside_changed += 1;
                }
            }
        }
        assert!(inside_changed > 20 && outside_checked > 3000, "{inside_changed} changed inside, {outside_checked} checked outside");
    }
}

fn disc_mask(w: usize, r: f32, cx: f32, cy: f32) -> Image {
    let mut m = Image::filled(1, w, w, 0.0);
    for y in 0..w {
        for x in 0..w {
            if ((x as f32 + 0.5 - cx * w as f32).powi(2) + (y as f32 + 0.5 - cy * w as f32).powi(2)).sqrt() < r * w as f32 {
                m.set(0, x, y, 1.0);
            }
        }
    }
    m
}

#[test]
fn outside_the_lesion_placement_never_touches_mask_pixels() {
    let dir = tempfile::tempdir().unwrap();
    make_library(dir.path());
    let lib = TemplateLibrary::load(dir.path()).unwrap();
    let inserter = Inserter { library: Some(lib.clone()), placement: Placement::Outside };
    let img = noise_image(64, 64, 4);
    let mask = disc_mask(64, 0.28, 0.45, 0.55);
    let mut kinds: Vec<Artefact> = PROCEDURAL_KINDS.iter().map(|k| Artefact::Procedural(k.to_string())).collect();
    kinds.extend(lib.classes().into_iter().map(Artefact::Template));
    for kind in &kinds {
        let mut placed = 0;
        for seed in 0..12 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let Some(op) = inserter.draw(kind, &img, Some(&mask), &mut rng).unwrap() else { continue };
            placed += 1;
            let out = op.apply(&img).unwrap();
            assert_ne!(out, img, "{} seed {seed}: the artefact changed nothing", kind.name());
            for y in 0..64 {
                for x in 0..64 {
                    if mask.get(0, x, y) > 0.5 {
                        for c in 0..3 {
                            assert_eq!(out.get(c, x, y), img.get(c, x, y), "{} seed {seed} touched the lesion at ({x}, {y})", kind.name());
                        }
                    }
                }
            }
        }
        assert!(placed >= 6, "{}: only {placed} of 12 draws could be placed outside the lesion", kind.name());
    }
}

#[test]
fn without_a_mask_outside_avoids_the_central_disc() {
    let inserter = Inserter { library: None, placement: Placement::Outside };
    let img = noise_image(48, 48, 2);
    let disc = disc_mask(48, 0.25, 0.5, 0.5);
    for seed in 0..10 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        if let Some(op) = inserter.draw(&Artefact::Procedural("ink".into()), &img, None, &mut rng).unwrap() {
            let out = op.apply(&img).unwrap();
            for i in 0..48 * 48 {
                if disc.data[i] > 0.5 {
                    assert_eq!((0..3).map(|c| out.data[c * 48 * 48 + i]).collect::<Vec<_>>(), (0..3).map(|c| img.data[c * 48 * 48 + i]).collect::<Vec<_>>());
                }
            }
        }
    }
}

#[test]
fn edge_placement_centres_artefacts_on_the_lesion_border() {
    let inserter = Inserter { library: None, placement: Placement::Edge };
    let img = noise_image(64, 64, 3);
    let mask = disc_mask(64, 0.2, 0.5, 0.5);
    for seed in 0..10 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let op = inserter.draw(&Artefact::Procedural("glare".into()), &img, Some(&mask), &mut rng).unwrap().unwrap();
        let json = serde_json::to_value(&op).unwrap();
        let (x, y) = (json["artefact"]["x"].as_f64().unwrap(), json["artefact"]["y"].as_f64().unwrap());
        let r = ((x - 0.5).powi(2) + (y - 0.5).powi(2)).sqrt();
        assert!((r - 0.2).abs() < 2.0 / 64.0, "seed {seed}: glare centre at distance {r} from the lesion centre, border at 0.2");
    }
}

#[test]
fn katsch_circle_markings_sit_on_the_lesion_centre_of_mass() {
    let dir = tempfile::tempdir().unwrap();
    make_library(dir.path());
    let meta = dir.path().join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap().replace(r#""subclass": "spot""#, r#""subclass": "circle""#);
    std::fs::write(&meta, text).unwrap();
    let inserter = Inserter { library: Some(TemplateLibrary::load(dir.path()).unwrap()), placement: Placement::Katsch };
    let img = noise_image(64, 64, 5);
    let mask = disc_mask(64, 0.15, 0.3, 0.7);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let op = inserter.draw(&Artefact::Template("marking".into()), &img, Some(&mask), &mut rng).unwrap().unwrap();
    let ImageOp::Stamp { x, y, .. } = op else { panic!("expected one stamp, got {op:?}") };
    assert!((x - 0.3).abs() < 0.01 && (y - 0.7).abs() < 0.01, "circle marking at ({x}, {y})");
}

#[test]
fn shares_are_exact_and_nested() {
    for n in [1usize, 7, 10, 33, 100, 1511] {
        let mut previous: Option<Vec<bool>> = None;
        for step in 0..=10 {
            let share = step as f64 / 10.0;
            let chosen = exact_share(n, share, 42);
            let k = chosen.iter().filter(|c| **c).count();
            assert_eq!(k, (share * n as f64).round() as usize, "n {n} share {share}");
            if let Some(p) = &previous {
                assert!(p.iter().zip(&chosen).all(|(a, b)| !*a || *b), "shares of one seed must be nested");
            }
            previous = Some(chosen);
        }
    }
    assert_ne!(exact_share(100, 0.5, 1), exact_share(100, 0.5, 2));
}

#[test]
fn draws_are_seeded_and_replay_from_json() {
    let dir = tempfile::tempdir().unwrap();
    make_library(dir.path());
    let inserter = Inserter { library: Some(TemplateLibrary::load(dir.path()).unwrap()), placement: Placement::Katsch };
    let img = noise_image(64, 64, 6);
    for kind in [Artefact::Template("bubble".into()), Artefact::Procedural("ruler-drawn".into()), Artefact::Procedural("hair".into())] {
        let draw = |seed| inserter.draw(&kind, &img, None, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed)).unwrap().unwrap();
        let (a, b) = (draw(3), draw(3));
        assert_eq!(a, b);
        assert_ne!(a, draw(4));
        let back: ImageOp = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back.apply(&img).unwrap(), a.apply(&img).unwrap());
    }
}

#[test]
fn the_real_template_library_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/artefact-templates");
    if !dir.join("meta.json").exists() {
        skipped("../shared/data/artefact-templates is absent");
        return;
    }
    let lib = TemplateLibrary::load(&dir).unwrap();
    assert_eq!(lib.entries.len(), 51);
    assert_eq!(lib.classes(), vec!["bubble".to_string(), "marking".to_string(), "ruler".to_string()]);
    let inserter = Inserter { library: Some(lib.clone()), placement: Placement::Katsch };
    let img = noise_image(64, 64, 7);
    let mask = disc_mask(64, 0.25, 0.5, 0.5);
    for class in lib.classes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let op = inserter.draw(&Artefact::Template(class.clone()), &img, Some(&mask), &mut rng).unwrap().expect("placed");
        assert_ne!(op.apply(&img).unwrap(), img, "{class}");
    }
}
