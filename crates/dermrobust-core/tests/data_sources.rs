//! Dataset readers, bad input, odd image modes, lesion-aware splits and the cache.

use std::path::{Path, PathBuf};

use dermrobust_core::data::summary::summarise;
use dermrobust_core::data::{DataSpec, Dataset, ImageSet, LabelScheme, LoadOptions, Preprocess, Split};
use dermrobust_core::imaging::io::{read_mask, read_rgb};

fn write_rgb_png(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x as u8).wrapping_mul(7).wrapping_add(seed), (y as u8).wrapping_mul(5), seed]));
    img.save(path).unwrap();
}

fn write_palette_png(path: &Path, w: u32, h: u32) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(vec![0, 0, 0, 255, 255, 255]);
    let mut writer = enc.write_header().unwrap();
    let data: Vec<u8> = (0..w * h).map(|i| u8::from((i % w) >= w / 2)).collect();
    writer.write_image_data(&data).unwrap();
}

/// A small HAM10000-layout folder: 6 lesions, 9 images, masks at 3x the image size.
fn ham_fixture(dir: &Path) -> PathBuf {
    let root = dir.join("ham");
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::create_dir_all(root.join("masks")).unwrap();
    let rows = [
        ("L1", "I1", "mel"),
        ("L1", "I2", "mel"),
        ("L2", "I3", "nv"),
        ("L3", "I4", "nv"),
        ("L3", "I5", "nv"),
        ("L3", "I6", "nv"),
        ("L4", "I7", "bkl"),
        ("L5", "I8", "mel"),
        ("L6", "I9", "nv"),
    ];
    let mut csv = String::from("lesion_id,image_id,dx,dx_type,age,sex,localization\n");
    for (i, (l, id, dx)) in rows.iter().enumerate() {
        csv.push_str(&format!("{l},{id},{dx},histo,50.0,male,back\n"));
        write_rgb_png(&root.join("images").join(format!("{id}.png")), 20, 15, i as u8 * 20);
        if i == 0 {
            write_palette_png(&root.join("masks").join(format!("{id}_segmentation.png")), 60, 45);
        } else {
            image::GrayImage::from_fn(60, 45, |x, _| image::Luma([if x > 30 { 255 } else { 0 }])).save(root.join("masks").join(format!("{id}_segmentation.png"))).unwrap();
        }
    }
    std::fs::write(root.join("HAM10000_metadata.csv"), csv).unwrap();
    root
}

#[test]
fn ham10000_layout_reads_labels_groups_and_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = ham_fixture(tmp.path());
    let spec: DataSpec = format!("ham10000:{}", root.display()).parse().unwrap();
    let ds = Dataset::open(&spec, LabelScheme::Native).unwrap();
    assert_eq!(ds.classes, vec!["bkl", "mel", "nv"]);
    assert_eq!(ds.len(), 9);
    let mvn = Dataset::open(&spec, LabelScheme::MelVsNevus).unwrap();
    assert_eq!(mvn.len(), 8, "the keratosis is left out");
    assert_eq!(mvn.class_counts(), vec![5, 3]);
    let rest = Dataset::open(&spec, LabelScheme::MelVsRest).unwrap();
    assert_eq!(rest.class_counts(), vec![6, 3]);
    let err = Dataset::open(&spec, LabelScheme::Ham7).unwrap_err().to_string();
    assert!(err.contains("no images of class akiec"), "{err}");

    let summary = summarise(&ds, None).unwrap();
    assert_eq!((summary.images, summary.lesions, summary.lesions_with_several_photographs), (9, 6, 2));
    assert_eq!(summary.images_with_masks, 9);

    // Masks of any size and PNG mode are resized to the image and loaded with it.
    let opts = LoadOptions { masks: true, quiet: true, ..Default::default() };
    let (set, _) = ImageSet::load(&ds, &Preprocess { size: 16, centre_crop: None }, &opts).unwrap();
    let m = set.mask(0).unwrap();
    assert_eq!((m.width, m.height), (16, 16));
    assert!(m.get(0, 2, 8) < 0.1 && m.get(0, 13, 8) > 0.9, "palette mask: left half black, right half white");
}

#[test]
fn odd_png_modes_are_converted() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    image::GrayImage::from_fn(4, 3, |_, _| image::Luma([128])).save(p.join("g.png")).unwrap();
    image::RgbaImage::from_fn(4, 3, |_, _| image::Rgba([255, 0, 0, 10])).save(p.join("a.png")).unwrap();
    image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(4, 3, |_, _| image::Rgb([65535, 32768, 0])).save(p.join("w.png")).unwrap();
    write_palette_png(&p.join("pal.png"), 4, 3);
    let g = read_rgb(&p.join("g.png")).unwrap();
    assert_eq!(g.channels, 3);
    assert!((g.get(1, 0, 0) - 128.0 / 255.0).abs() < 1e-3);
    let a = read_rgb(&p.join("a.png")).unwrap();
    assert!((a.get(0, 0, 0) - 1.0).abs() < 1e-6 && a.get(1, 0, 0) == 0.0);
    let w = read_rgb(&p.join("w.png")).unwrap();
    assert!((w.get(1, 2, 2) - 0.5).abs() < 1e-3, "16-bit is scaled, got {}", w.get(1, 2, 2));
    let pal = read_mask(&p.join("pal.png")).unwrap();
    assert_eq!((pal.get(0, 0, 0), pal.get(0, 3, 0)), (0.0, 1.0));
}

#[test]
fn corrupt_images_name_the_file_and_can_be_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    write_rgb_png(&dir.join("imgs/good1.png"), 8, 8, 1);
    write_rgb_png(&dir.join("imgs/good2.png"), 8, 8, 2);
    std::fs::write(dir.join("imgs/bad.jpg"), b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    std::fs::write(dir.join("m.csv"), "path,label\nimgs/good1.png,mel\nimgs/bad.jpg,nv\nimgs/good2.png,nv\n").unwrap();
    let spec: DataSpec = format!("manifest:{}", dir.join("m.csv").display()).parse().unwrap();
    let ds = Dataset::open(&spec, LabelScheme::MelVsNevus).unwrap();
    let prep = Preprocess { size: 8, centre_crop: None };
    let err = format!("{:#}", ImageSet::load(&ds, &prep, &LoadOptions { quiet: true, ..Default::default() }).unwrap_err());
    assert!(err.contains("bad.jpg") && err.contains("m.csv, line 3"), "{err}");
    let (set, report) = ImageSet::load(&ds, &prep, &LoadOptions { quiet: true, skip_bad: true, ..Default::default() }).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, "imgs/bad.jpg");
}

#[test]
fn bad_csv_rows_give_the_line_number() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_rgb_png(&dir.join("a.png"), 8, 8, 1);
    let cases = [
        ("path,label\na.png,mel\nmissing.png,nv\n", "line 3", "missing.png"),
        ("path,label\na.png,mel\na.png,\n", "line 3", "empty label"),
        ("file,label\na.png,mel\n", "line 1", "missing column 'path'"),
    ];
    for (i, (text, line, what)) in cases.iter().enumerate() {
        let csv = dir.join(format!("c{i}.csv"));
        std::fs::write(&csv, text).unwrap();
        let spec: DataSpec = format!("manifest:{}", csv.display()).parse().unwrap();
        let err = format!("{:#}", Dataset::open(&spec, LabelScheme::Native).unwrap_err());
        assert!(err.contains(line) && err.contains(what), "case {i}: {err}");
    }
    // An unknown label under the HAM10000 scheme names its line.
    let csv = dir.join("u.csv");
    write_rgb_png(&dir.join("b.png"), 8, 8, 2);
    std::fs::write(&csv, "path,label\na.png,mel\nb.png,freckle\n").unwrap();
    let spec: DataSpec = format!("manifest:{}", csv.display()).parse().unwrap();
    let err = format!("{:#}", Dataset::open(&spec, LabelScheme::Ham7).unwrap_err());
    assert!(err.contains("u.csv, line 3") && err.contains("freckle"), "{err}");
    // HAM metadata with an unknown diagnosis.
    let root = ham_fixture(dir);
    let meta = std::fs::read_to_string(root.join("HAM10000_metadata.csv")).unwrap().replace("L4,I7,bkl", "L4,I7,xyz");
    std::fs::write(root.join("HAM10000_metadata.csv"), meta).unwrap();
    let spec: DataSpec = format!("ham10000:{}", root.display()).parse().unwrap();
    let err = format!("{:#}", Dataset::open(&spec, LabelScheme::Native).unwrap_err());
    assert!(err.contains("HAM10000_metadata.csv, line 8") && err.contains("xyz"), "{err}");
    // An empty dataset.
    std::fs::write(dir.join("e.csv"), "path,label\n").unwrap();
    let spec: DataSpec = format!("manifest:{}", dir.join("e.csv").display()).parse().unwrap();
    assert!(Dataset::open(&spec, LabelScheme::Native).unwrap_err().to_string().contains("no images"));
}

#[test]
fn isic_ground_truth_2017_and_2018() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("img")).unwrap();
    for id in ["ISIC_1", "ISIC_2", "ISIC_3"] {
        write_rgb_png(&dir.join("img").join(format!("{id}.png")), 8, 8, 3);
    }
    std::fs::write(dir.join("g17.csv"), "image_id,melanoma,seborrheic_keratosis\nISIC_1,1.0,0.0\nISIC_2,0.0,0.0\nISIC_3,0.0,1.0\n").unwrap();
    std::fs::write(dir.join("g18.csv"), "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,0,0,1,0,0,0,0\nISIC_2,0,1,0,0,0,0,0\nISIC_3,1,0,0,0,0,0,0\n").unwrap();
    let open = |csv: &str| {
        let spec: DataSpec = format!("isic:{},images={}", dir.join(csv).display(), dir.join("img").display()).parse().unwrap();
        dermrobust_core::data::sources::read_records(&spec).unwrap().into_iter().map(|r| r.dx).collect::<Vec<_>>()
    };
    assert_eq!(open("g17.csv"), vec!["mel", "nv", "bkl"]);
    assert_eq!(open("g18.csv"), vec!["bcc", "nv", "mel"]);
    std::fs::write(dir.join("bad.csv"), "image,MEL,NV\nISIC_1,1,1\n").unwrap();
    let spec: DataSpec = format!("isic:{},images={}", dir.join("bad.csv").display(), dir.join("img").display()).parse().unwrap();
    let err = dermrobust_core::data::sources::read_records(&spec).unwrap_err().to_string();
    assert!(err.contains("bad.csv, line 2") && err.contains("several classes"), "{err}");
}

#[test]
fn folder_per_class() {
    let tmp = tempfile::tempdir().unwrap();
    for (class, n) in [("melanoma", 2), ("nevus", 3)] {
        std::fs::create_dir_all(tmp.path().join(class)).unwrap();
        for i in 0..n {
            write_rgb_png(&tmp.path().join(class).join(format!("{i}.png")), 8, 8, i);
        }
    }
    let spec: DataSpec = format!("folders:{}", tmp.path().display()).parse().unwrap();
    let ds = Dataset::open(&spec, LabelScheme::MelVsNevus).unwrap();
    assert_eq!(ds.class_counts(), vec![3, 2]);
}

#[test]
fn spec_syntax_errors_are_clear() {
    assert!("nonsense:x".parse::<DataSpec>().unwrap_err().to_string().contains("unknown kind 'nonsense'"));
    assert!("synthetic:n=abc".parse::<DataSpec>().unwrap_err().to_string().contains("n=abc"));
    assert!("ham10000:/x,colour=1".parse::<DataSpec>().unwrap_err().to_string().contains("unknown option 'colour'"));
    assert!("isic:/x.csv".parse::<DataSpec>().unwrap_err().to_string().contains("images=DIR"));
}

#[test]
fn lesion_aware_split_never_crosses_and_reloads() {
    let spec: DataSpec = "synthetic:n=300,seed=3,photos=4".parse().unwrap();
    let ds = Dataset::open(&spec, LabelScheme::Native).unwrap();
    let split = Split::holdout(&ds, [0.7, 0.15, 0.15], 11).unwrap();
    assert!(split.group_overlap(&ds).is_empty());
    let sizes: Vec<usize> = ["train", "val", "test"].iter().map(|p| split.indices(&ds, p).unwrap().len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), ds.len());
    let share = sizes[0] as f64 / ds.len() as f64;
    assert!((share - 0.7).abs() < 0.05, "train share {share}");
    // Stratified: melanoma share in test close to the overall share.
    let test = split.indices(&ds, "test").unwrap();
    let mel = ds.classes.iter().position(|c| c == "mel").unwrap();
    let overall = ds.class_counts()[mel] as f64 / ds.len() as f64;
    let in_test = test.iter().filter(|&&i| ds.labels[i] == mel).count() as f64 / test.len() as f64;
    assert!((overall - in_test).abs() < 0.06, "melanoma share {in_test} vs {overall}");
    // Same seed, same split; another seed, another split.
    assert_eq!(Split::holdout(&ds, [0.7, 0.15, 0.15], 11).unwrap(), split);
    assert_ne!(Split::holdout(&ds, [0.7, 0.15, 0.15], 12).unwrap(), split);
    let tmp = tempfile::tempdir().unwrap();
    split.save(&tmp.path().join("s.json")).unwrap();
    assert_eq!(Split::load(&tmp.path().join("s.json")).unwrap(), split);
    // A split made for other data is refused, naming an image.
    let other = Dataset::open(&"synthetic:n=310,seed=3,photos=4".parse().unwrap(), LabelScheme::Native).unwrap();
    assert!(split.indices(&other, "test").unwrap_err().to_string().contains("not in the split file"));

    let folds = Split::kfold(&ds, 5, 1).unwrap();
    assert!(folds.group_overlap(&ds).is_empty());
    let (train, held) = folds.fold(&ds, 2).unwrap();
    assert_eq!(train.len() + held.len(), ds.len());
    assert!(held.len() > ds.len() / 7 && held.len() < ds.len() / 3);
}

#[test]
fn cache_returns_identical_pixels_without_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    let root = ham_fixture(tmp.path());
    let ds = Dataset::open(&format!("ham10000:{}", root.display()).parse().unwrap(), LabelScheme::Native).unwrap();
    let prep = Preprocess { size: 12, centre_crop: Some(0.8) };
    let opts = LoadOptions { cache_dir: Some(tmp.path().join("cache")), masks: true, quiet: true, ..Default::default() };
    let (a, ra) = ImageSet::load(&ds, &prep, &opts).unwrap();
    assert!(!ra.from_cache);
    let (b, rb) = ImageSet::load(&ds, &prep, &opts).unwrap();
    assert!(rb.from_cache);
    assert_eq!(ra.data_hash, rb.data_hash);
    for i in 0..a.len() {
        assert_eq!(a.pixels(i), b.pixels(i));
        assert_eq!(a.mask(i), b.mask(i));
    }
    // A changed image file invalidates the cache.
    write_rgb_png(&root.join("images").join("I3.png"), 30, 15, 99);
    let (_, rd) = ImageSet::load(&ds, &prep, &opts).unwrap();
    assert!(!rd.from_cache);
    assert_ne!(rd.data_hash, ra.data_hash);
    // Other preprocessing, other cache entry.
    let (_, rc) = ImageSet::load(&ds, &Preprocess { size: 10, centre_crop: None }, &opts).unwrap_or_else(|_| panic!("decode"));
    assert!(!rc.from_cache);
}

/// JPEG bytes of a smooth synthetic photograph (big enough that half of it is mid-scan).
fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) % 256) as u8]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img).unwrap();
    bytes
}

#[test]
fn truncated_jpeg_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = jpeg_bytes(96, 80);
    let whole = tmp.path().join("whole.jpg");
    let half = tmp.path().join("half.jpg");
    let padded = tmp.path().join("padded.jpg");
    std::fs::write(&whole, &bytes).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let mut with_padding = bytes.clone();
    with_padding.extend_from_slice(&[0u8; 64]);
    std::fs::write(&padded, &with_padding).unwrap();

    let img = read_rgb(&whole).unwrap();
    assert_eq!((img.width, img.height), (96, 80));
    // Trailing zeros after the end-of-image marker are harmless.
    assert_eq!(read_rgb(&padded).unwrap(), img);
    let err = format!("{:#}", read_rgb(&half).unwrap_err());
    assert!(err.contains("half.jpg") && err.contains("truncated"), "{err}");
    // A mask stored as a truncated JPEG is refused the same way.
    assert!(format!("{:#}", read_mask(&half).unwrap_err()).contains("half.jpg"));
    // The check itself, on bytes.
    assert!(dermrobust_core::imaging::io::check_jpeg_complete(&bytes).is_ok());
    assert!(dermrobust_core::imaging::io::check_jpeg_complete(&bytes[..bytes.len() - 2]).is_err());
    assert!(dermrobust_core::imaging::io::check_jpeg_complete(&bytes[..200]).is_err());
}

#[test]
fn truncated_jpeg_in_a_dataset_stops_loading_or_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    let bytes = jpeg_bytes(64, 64);
    std::fs::write(dir.join("imgs/ok1.jpg"), &bytes).unwrap();
    std::fs::write(dir.join("imgs/ok2.jpg"), &bytes).unwrap();
    std::fs::write(dir.join("imgs/cut.jpg"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.join("m.csv"), "path,label\nimgs/ok1.jpg,mel\nimgs/cut.jpg,nv\nimgs/ok2.jpg,nv\n").unwrap();
    let spec: DataSpec = format!("manifest:{}", dir.join("m.csv").display()).parse().unwrap();
    let ds = Dataset::open(&spec, LabelScheme::MelVsNevus).unwrap();
    let prep = Preprocess { size: 16, centre_crop: None };
    let err = format!("{:#}", ImageSet::load(&ds, &prep, &LoadOptions { quiet: true, ..Default::default() }).unwrap_err());
    assert!(err.contains("cut.jpg") && err.contains("m.csv, line 3") && err.contains("--skip-bad"), "{err}");
    let (set, report) = ImageSet::load(&ds, &prep, &LoadOptions { quiet: true, skip_bad: true, ..Default::default() }).unwrap();
    assert_eq!(set.ids, vec!["imgs/ok1.jpg", "imgs/ok2.jpg"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, "imgs/cut.jpg");
    assert!(report.skipped[0].1.contains("cut.jpg") && report.skipped[0].1.contains("truncated"), "{}", report.skipped[0].1);
}
