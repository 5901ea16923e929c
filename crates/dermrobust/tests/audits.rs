//! The brittleness audit on constructed cases, test-time augmentation, natural pairs, and the
//! report in a real browser.

mod common;

use anyhow::Result;
use burn::module::Module;
use dermrobust::audits::brittleness::{audit, natural_pairs, PairOptions};
use dermrobust::audits::suite::{Suite, TransformSet};
use dermrobust::audits::brittleness::performance;
use dermrobust::evaluation::{argmax, class_shares, dihedral_views, flip_views, maron_tta_views, ImageClassifier, PriorCorrected, TrainedModel, TtaViews, WithTta};
use dermrobust_core::data::ImageSet;
use dermrobust_core::imaging::{BorderFill, Image, ImageOp};

/// A classifier whose probabilities depend only on the mean brightness of the image: invariant to
/// any permutation of pixels (flips, quarter turns), sensitive to brightness.
struct MeanBrightness {
    classes: Vec<String>,
}

impl ImageClassifier for MeanBrightness {
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn input_size(&self) -> usize {
        16
    }
    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        Ok(images
            .iter()
            .map(|img| {
                let p = 1.0 / (1.0 + (-(img.mean() - 0.5) * 12.0).exp());
                vec![1.0 - p, p]
            })
            .collect())
    }
    fn describe(&self) -> String {
        "mean brightness".into()
    }
}

/// 40 images of 20 lesions (2 photographs each) of varied brightness around the threshold.
fn image_set() -> ImageSet {
    let mut items = Vec::new();
    for i in 0..40 {
        let level = 0.3 + 0.4 * (i as f32 / 39.0);
        let mut img = Image::filled(3, 16, 16, level);
        img.set(0, 3, 4, 1.0); // break the symmetry so transformations move pixels
        let label = usize::from(level > 0.5);
        items.push((format!("img{i}"), format!("lesion{}", i / 2), label, img, None));
    }
    ImageSet::from_images(vec!["nv".into(), "mel".into()], items).unwrap()
}

fn suite(ops: Vec<(&str, ImageOp)>) -> Suite {
    Suite { sets: ops.into_iter().map(|(n, op)| TransformSet { name: n.into(), family: "single".into(), op }).collect() }
}

#[test]
fn an_invariant_model_never_changes_its_mind() {
    let set = image_set();
    let model = MeanBrightness { classes: set.classes.clone() };
    let idx: Vec<usize> = (0..set.len()).collect();
    let s = suite(vec![
        ("hflip", ImageOp::FlipHorizontal),
        ("vflip", ImageOp::FlipVertical),
        ("rotate 90", ImageOp::Rotate { degrees: 90.0, fill: BorderFill::Constant(0.0) }),
    ]);
    let out = audit(&model, 0, &set, &idx, &s, &[], true).unwrap();
    for r in &out.result.sets {
        assert_eq!(r.p_class_change, 0.0, "{}", r.name);
        assert!(r.abs_change.max < 1e-6, "{}: {}", r.name, r.abs_change.max);
        assert_eq!(r.performance.auroc, out.result.original.auroc);
    }
    assert!(out.rows.iter().all(|r| !r.class_changed));
}

#[test]
fn a_brightness_change_flips_a_brightness_model() {
    let set = image_set();
    let model = MeanBrightness { classes: set.classes.clone() };
    let idx: Vec<usize> = (0..set.len()).collect();
    let out = audit(&model, 0, &set, &idx, &suite(vec![("brighter", ImageOp::Brightness { factor: 1.3 })]), &[], true).unwrap();
    let r = &out.result.sets[0];
    // Images with level in (0.5/1.3, 0.5] cross the threshold: computed independently here.
    let expected = (0..40).filter(|&i| {
        let level = 0.3 + 0.4 * (i as f32 / 39.0);
        let before = Image::filled(3, 16, 16, level);
        let mut b = before.clone();
        b.set(0, 3, 4, 1.0);
        let a = ImageOp::Brightness { factor: 1.3 }.apply(&b).unwrap();
        (b.mean() > 0.5) != (a.mean() > 0.5)
    }).count();
    assert!(expected > 0);
    assert!((r.p_class_change - expected as f64 / 40.0).abs() < 1e-12, "{} vs {}", r.p_class_change, expected);
    assert!(r.abs_change.mean > 0.05);
    assert_eq!(out.rows.iter().filter(|x| x.class_changed).count(), expected);
    assert!(!out.highlights.is_empty());
}

#[test]
fn natural_pairs_stay_within_lesions_and_groups() {
    let set = image_set();
    let idx: Vec<usize> = (0..set.len()).collect();
    let pairs = natural_pairs(&set, &idx, &PairOptions::default());
    assert_eq!(pairs.len(), 20);
    assert!(pairs.iter().all(|&(i, j)| set.groups[i] == set.groups[j] && i != j));
    // A user grouping keeps only pairs inside a group.
    let groups = (0..10).map(|i| (format!("img{i}"), "similar".to_string())).collect();
    let some = natural_pairs(&set, &idx, &PairOptions { similarity_groups: Some(groups), max_hash_distance: None });
    assert_eq!(some.len(), 5);
    // The perceptual-hash filter keeps the pairs that look alike and drops those that do not:
    // lesions 0, 2, 4, ... have two identical photographs, the others a second photograph with a
    // different structure (the ramp reversed).
    let mut items = Vec::new();
    for lesion in 0..10 {
        let ramp = |reversed: bool| {
            let mut img = Image::filled(3, 32, 32, 0.0);
            for y in 0..32 {
                for x in 0..32 {
                    let v = if reversed { 1.0 - x as f32 / 31.0 } else { x as f32 / 31.0 } * (0.5 + y as f32 / 62.0);
                    (0..3).for_each(|c| img.set(c, x, y, v));
                }
            }
            img
        };
        items.push((format!("l{lesion}a"), format!("lesion{lesion}"), 0, ramp(false), None));
        items.push((format!("l{lesion}b"), format!("lesion{lesion}"), 0, ramp(lesion % 2 == 1), None));
    }
    let looks = ImageSet::from_images(vec!["nv".into(), "mel".into()], items).unwrap();
    let all: Vec<usize> = (0..looks.len()).collect();
    assert_eq!(natural_pairs(&looks, &all, &PairOptions::default()).len(), 10);
    let strict = natural_pairs(&looks, &all, &PairOptions { similarity_groups: None, max_hash_distance: Some(1) });
    let distances: Vec<u32> = (0..10).map(|l| dermrobust_core::imaging::phash::hamming(dermrobust_core::imaging::phash::perceptual_hash(&looks.image(2 * l)), dermrobust_core::imaging::phash::perceptual_hash(&looks.image(2 * l + 1)))).collect();
    assert_eq!(strict.len(), 5, "{strict:?}, distances {distances:?}");
    assert!(strict.iter().all(|&(i, _)| looks.groups[i].trim_start_matches("lesion").parse::<usize>().unwrap() % 2 == 0));
    let model = MeanBrightness { classes: set.classes.clone() };
    let out = audit(&model, 0, &set, &idx, &suite(vec![("hflip", ImageOp::FlipHorizontal)]), &pairs, true).unwrap();
    let natural = out.result.natural.unwrap();
    assert_eq!((natural.pairs, natural.lesions), (20, 20));
    // Auditing a subsample with the transformed sets keeps every pair: the photographs outside
    // the subsample are predicted for the pairs alone, and the numbers do not change.
    let few: Vec<usize> = idx.iter().copied().step_by(3).collect();
    let sub = audit(&model, 0, &set, &few, &suite(vec![("hflip", ImageOp::FlipHorizontal)]), &pairs, true).unwrap();
    let sub_natural = sub.result.natural.unwrap();
    assert_eq!(sub_natural.pairs, 20);
    assert_eq!(sub_natural.p_class_change, natural.p_class_change);
    assert_eq!(sub_natural.abs_change.mean, natural.abs_change.mean);
    assert_eq!(sub.result.forward_passes, 2 * few.len() + (set.len() - few.len()));
}

/// An untrained (randomly initialised) ResNet-18 at 1/8 width on 32x32 images: not invariant
/// to anything, which is what the TTA tests need.
fn random_resnet() -> TrainedModel {
    let device = burn::prelude::Device::flex();
    let cfg = dermrobust::models::ModelConfig { width: 0.125, ..dermrobust::models::ModelConfig::new(dermrobust::models::Arch::Resnet18, 3) };
    // Weights from the tests' own generator: the same random network on every run whatever runs
    // alongside (the backend's seeded generator is shared), so the checks that it is not invariant
    // are deterministic. The output gain makes its logits differ clearly between views.
    TrainedModel {
        model: cfg.init(&device).map(&mut common::Reinit::new(11)).map(&mut common::Jitter::new(11, 10.0)),
        meta: dermrobust::models::checkpoint::ModelMeta {
            config: cfg,
            classes: vec!["a".into(), "b".into(), "c".into()],
            label_scheme: dermrobust_core::data::LabelScheme::Native,
            preprocess: dermrobust_core::data::Preprocess { size: 32, centre_crop: None },
            capture: None,
        },
        device,
        batch_size: 8,
    }
}

/// A 32x32 image with no symmetry: a bright off-centre blob on a horizontal colour ramp.
fn asymmetric_image() -> Image {
    let mut img = Image::filled(3, 32, 32, 0.0);
    for y in 0..32 {
        for x in 0..32 {
            let blob = if (4..14).contains(&x) && (6..11).contains(&y) { 0.6 } else { 0.0 };
            for c in 0..3 {
                img.set(c, x, y, 0.1 + 0.02 * x as f32 * (c + 1) as f32 / 3.0 + blob);
            }
        }
    }
    img
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn tta_over_a_symmetry_group_is_invariant_to_that_group() {
    // Averaging over a group of views makes the prediction invariant to every member of the
    // group: TTA(g x) = TTA(x). The plain model is not, which shows the check can fail.
    let x = asymmetric_image();
    let rot90 = ImageOp::Rotate { degrees: 90.0, fill: Default::default() };
    let transformed = |op: &ImageOp| vec![op.apply(&x).unwrap()];
    let model = random_resnet();
    let plain = model.predict(std::slice::from_ref(&x)).unwrap();
    assert!(max_difference(&plain, &model.predict(&transformed(&rot90)).unwrap()) > 1e-4, "the random model happens to be rotation-invariant");
    let dihedral = WithTta { inner: model, views: dihedral_views(), original_weight: 0.0 };
    assert_eq!(dihedral.views(), 8);
    let tta = dihedral.predict(std::slice::from_ref(&x)).unwrap();
    for g in [rot90.clone(), ImageOp::FlipHorizontal, ImageOp::FlipVertical, ImageOp::Rotate { degrees: 270.0, fill: Default::default() }] {
        let d = max_difference(&tta, &dihedral.predict(&transformed(&g)).unwrap());
        assert!(d < 1e-5, "dihedral TTA changed by {d} under {}", g.label());
    }
    let flips = WithTta { inner: dihedral.inner, views: flip_views(), original_weight: 0.0 };
    let tta = flips.predict(std::slice::from_ref(&x)).unwrap();
    assert!(max_difference(&tta, &flips.predict(&transformed(&ImageOp::FlipVertical)).unwrap()) < 1e-5);
    // Flips are not a group containing the quarter turn.
    let d = max_difference(&tta, &flips.predict(&transformed(&rot90)).unwrap());
    assert!(d > 1e-4, "flip TTA moved by only {d} under a quarter turn: {tta:?}");
}

#[test]
fn tta_view_sets_by_name_or_file() {
    assert_eq!("maron".parse::<TtaViews>().unwrap().views(0.74).unwrap(), maron_tta_views(0.74));
    assert_eq!("flips".parse::<TtaViews>().unwrap().views(0.74).unwrap().len(), 4);
    assert!("mirror".parse::<TtaViews>().unwrap_err().contains("unknown view set"));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("views.toml");
    std::fs::write(&file, "[[view]]\nop = \"flip_horizontal\"\n\n[[view]]\nop = \"rotate\"\ndegrees = 90\n").unwrap();
    let views = TtaViews::File(file.clone()).views(0.74).unwrap();
    assert_eq!(views, vec![ImageOp::FlipHorizontal, ImageOp::Rotate { degrees: 90.0, fill: Default::default() }]);
    std::fs::write(&file, "[[view]]\nop = \"spin\"\n").unwrap();
    let err = format!("{:#}", TtaViews::File(file.clone()).views(0.74).unwrap_err());
    assert!(err.contains("views.toml") && err.contains("spin"), "{err}");
}

#[test]
fn tta_of_flip_and_crop_invariant_images_changes_nothing() {
    // Uniform images look the same in every TTA view, so TTA must return the plain prediction.
    let model = random_resnet();
    let images: Vec<Image> = (0..5).map(|i| {
        let mut img = Image::filled(3, 32, 32, 0.0);
        for c in 0..3 {
            img.plane_mut(c).fill(0.1 + 0.15 * i as f32 + 0.05 * c as f32);
        }
        img
    }).collect();
    let plain = model.predict(&images).unwrap();
    let tta = WithTta { inner: model, views: maron_tta_views(0.74), original_weight: 0.0 };
    assert_eq!(tta.views(), 8);
    let with = tta.predict(&images).unwrap();
    for (a, b) in plain.iter().zip(&with) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }
    // On a non-uniform image the views differ, so TTA is not a no-op.
    let mut odd = Image::filled(3, 32, 32, 0.2);
    for y in 0..16 {
        for x in 0..16 {
            for c in 0..3 {
                odd.set(c, x, y, 0.9);
            }
        }
    }
    let p = tta.inner.predict(std::slice::from_ref(&odd)).unwrap();
    let q = tta.predict(std::slice::from_ref(&odd)).unwrap();
    assert!(p[0].iter().zip(&q[0]).any(|(x, y)| (x - y).abs() > 1e-6));
    // fastai's blend: 0.4 x the unmodified image + 0.6 x the mean of the views.
    let blended = WithTta::maron(tta.inner);
    assert_eq!(blended.views(), 9);
    let r = blended.predict(std::slice::from_ref(&odd)).unwrap();
    let mean_views = WithTta { inner: &blended.inner, views: maron_tta_views(1.0 / 1.35), original_weight: 0.0 }.predict(std::slice::from_ref(&odd)).unwrap();
    for c in 0..3 {
        assert!((r[0][c] - (0.4 * p[0][c] + 0.6 * mean_views[0][c])).abs() < 1e-6);
    }
}

#[test]
fn default_suite_round_trips_through_toml() {
    let s = Suite::default_suite();
    assert_eq!(s.sets.iter().filter(|t| t.family == "single").count(), 11);
    assert_eq!(s.sets.iter().filter(|t| t.family == "combined").count(), 6);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("s.toml"), s.to_toml().unwrap()).unwrap();
    assert_eq!(Suite::load(&tmp.path().join("s.toml")).unwrap(), s);
    std::fs::write(tmp.path().join("u.toml"), "[[set]]\nname = \"r\"\nop = { op = \"rotate\", degrees = 10 }\n").unwrap();
    assert_eq!(Suite::load(&tmp.path().join("u.toml")).unwrap().sets[0].op, ImageOp::Rotate { degrees: 10.0, fill: BorderFill::Reflect });
}

#[test]
fn prior_correction_balances_decisions_and_keeps_the_ranking() {
    let set = image_set();
    let idx: Vec<usize> = (0..set.len()).collect();
    let images: Vec<Image> = idx.iter().map(|&i| set.image(i)).collect();
    let plain = MeanBrightness { classes: set.classes.clone() };
    // Equal priors change nothing.
    let equal = PriorCorrected::new(MeanBrightness { classes: set.classes.clone() }, vec![0.5, 0.5]).unwrap();
    for (a, b) in plain.predict(&images).unwrap().iter().zip(equal.predict(&images).unwrap()) {
        assert!((a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6);
    }
    // Training shares 0.8 / 0.2: p / prior, renormalised. By hand for p = (0.7, 0.3):
    // (0.875, 1.5) / 2.375 = (0.3684, 0.6316), so the decision moves to the minority class.
    let skewed = PriorCorrected::new(MeanBrightness { classes: set.classes.clone() }, vec![0.8, 0.2]).unwrap();
    let mid = Image::filled(3, 16, 16, 0.5 + (0.3f32 / 0.7).ln() / 12.0); // MeanBrightness gives (0.7, 0.3)
    let before = plain.predict(std::slice::from_ref(&mid)).unwrap()[0].clone();
    assert!((before[1] - 0.3).abs() < 1e-4, "{before:?}");
    let after = skewed.predict(std::slice::from_ref(&mid)).unwrap()[0].clone();
    assert!((after[1] - 0.6316).abs() < 1e-3 && (after[0] + after[1] - 1.0).abs() < 1e-6, "{after:?}");
    assert_eq!((argmax(&before), argmax(&after)), (0, 1));
    // More images are called positive, and a binary ranking (AUROC) stays exactly the same.
    let (p0, p1) = (plain.predict(&images).unwrap(), skewed.predict(&images).unwrap());
    let positives = |p: &[Vec<f32>]| p.iter().filter(|v| argmax(v) == 1).count();
    assert!(positives(&p1) > positives(&p0));
    let labels: Vec<usize> = idx.iter().map(|&i| set.labels[i]).collect();
    assert_eq!(performance(&labels, &p0, &set.classes).auroc, performance(&labels, &p1, &set.classes).auroc);
    // Shares come from the training labels; a class without images has no prior.
    assert_eq!(class_shares(&[0, 0, 0, 1], &[0, 1, 2, 3], 2).unwrap(), vec![0.75, 0.25]);
    assert!(class_shares(&[0, 0, 1], &[0, 1], 2).is_err());
    assert!(PriorCorrected::new(MeanBrightness { classes: set.classes.clone() }, vec![1.0]).is_err());
}
