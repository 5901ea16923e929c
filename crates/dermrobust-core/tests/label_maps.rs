//! Label spellings (PH2 and others) and user label maps (`label_map=FILE` in a dataset spec).

use std::path::Path;

use dermrobust_core::data::labels::{canonical_dx, normalise_label};
use dermrobust_core::data::{DataSpec, Dataset, LabelMap, LabelScheme};

#[test]
fn ph2_and_common_spellings_are_canonical() {
    for (raw, dx) in [
        ("common_nevus", "nv"),
        ("Common Nevus", "nv"),
        ("atypical_nevus", "nv"),
        ("Atypical Nevus", "nv"),
        ("atypical-nevus", "nv"),
        ("  ATYPICAL   NEVUS ", "nv"),
        ("melanoma", "mel"),
        ("Melanoma", "mel"),
        ("melanocytic_nevi", "nv"),
        ("Seborrheic_Keratosis", "bkl"),
        ("basal cell carcinoma", "bcc"),
        ("Actinic keratoses", "akiec"),
        ("Vascular lesions", "vasc"),
        ("MEL", "mel"),
        ("NV", "nv"),
    ] {
        assert_eq!(canonical_dx(raw), dx, "{raw:?}");
    }
    // Unknown labels are kept (trimmed, lower case), separators untouched.
    assert_eq!(canonical_dx(" Clark_Nevus2 "), "clark_nevus2");
    assert_eq!(normalise_label(" Clark_Nevus-2 "), "clark nevus 2");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn csv_label_maps_read_and_rename() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("map.csv");
    write(&f, "from,to\n# PH2 style\nClark nevus,nv\n\"Lentigo, solar\",bkl\nmy_mm , melanoma\n");
    let map = LabelMap::read(&f).unwrap();
    assert_eq!(map.len(), 3);
    assert_eq!(map.get("clark_nevus"), Some("nv"));
    assert_eq!(map.get("LENTIGO, SOLAR"), Some("bkl"));
    assert_eq!(map.canonical("My MM"), "mel", "the target is made canonical too");
    assert_eq!(map.canonical("Atypical Nevus"), "nv", "labels without an entry still go through canonical_dx");
    assert_eq!(map.get("unknown"), None);
    // No header is fine too.
    write(&f, "a,mel\n");
    assert_eq!(LabelMap::read(&f).unwrap().get("A"), Some("mel"));
}

#[test]
fn label_map_errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad_map.csv");
    let err_of = |text: &str| {
        write(&f, text);
        format!("{:#}", LabelMap::read(&f).unwrap_err())
    };
    let e = err_of("from,to\na,nv\nb,mel,extra\n");
    assert!(e.contains("bad_map.csv") && e.contains("line 3") && e.contains("two columns"), "{e}");
    let e = err_of("a,nv\n\nb,\n");
    assert!(e.contains("bad_map.csv") && e.contains("line 3") && e.contains("empty 'to'"), "{e}");
    let e = err_of("Clark nevus,nv\nclark_nevus,mel\n");
    assert!(e.contains("line 2") && e.contains("line 1") && e.contains("mapped twice"), "{e}");
    // The same entry twice is harmless.
    write(&f, "x,nv\nX,nv\n");
    assert_eq!(LabelMap::read(&f).unwrap().len(), 1);
    let missing = tmp.path().join("nowhere.csv");
    assert!(format!("{:#}", LabelMap::read(&missing).unwrap_err()).contains("nowhere.csv"));
}

#[test]
fn toml_label_maps() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("map.toml");
    write(&f, "[labels]\n\"Clark nevus\" = \"nv\"\nlentigo = \"bkl\"\n");
    let map = LabelMap::read(&f).unwrap();
    assert_eq!((map.get("clark_nevus"), map.get("Lentigo")), (Some("nv"), Some("bkl")));
    write(&f, "clark = \"nv\"\n");
    assert_eq!(LabelMap::read(&f).unwrap().get("clark"), Some("nv"));
    write(&f, "clark = 3\n");
    let e = format!("{:#}", LabelMap::read(&f).unwrap_err());
    assert!(e.contains("map.toml") && e.contains("clark") && e.contains("string"), "{e}");
    write(&f, "clark = \n");
    let e = format!("{:#}", LabelMap::read(&f).unwrap_err());
    assert!(e.contains("map.toml") && e.contains("TOML"), "{e}");
}

#[test]
fn spec_key_label_map() {
    let spec: DataSpec = "manifest:/data/m.csv,label_map=/data/map.csv".parse().unwrap();
    assert_eq!(spec, DataSpec::Manifest { csv: "/data/m.csv".into(), label_map: Some("/data/map.csv".into()) });
    assert_eq!(spec.label_map(), Some(Path::new("/data/map.csv")));
    assert_eq!(spec.to_string(), "manifest:/data/m.csv,label_map=/data/map.csv");
    assert_eq!(spec.to_string().parse::<DataSpec>().unwrap(), spec);
    let folders: DataSpec = "folders:/d,label_map=m.toml".parse().unwrap();
    assert_eq!(folders.label_map(), Some(Path::new("m.toml")));
    let isic: DataSpec = "isic:/g.csv,images=/i,label_map=m.csv".parse().unwrap();
    assert_eq!(isic.label_map(), Some(Path::new("m.csv")));
    let ham: DataSpec = "ham10000:/h,label_map=m.csv".parse().unwrap();
    assert_eq!(ham.label_map(), Some(Path::new("m.csv")));
    let e = "synthetic:label_map=m.csv".parse::<DataSpec>().unwrap_err().to_string();
    assert!(e.contains("unknown option 'label_map'"), "{e}");
    assert!(dermrobust_core::data::DATA_SPEC_HELP.contains("label_map=FILE"));
    // Specs saved before label maps existed still read, and none is written when there is none.
    let old: DataSpec = serde_json::from_str(r#"{"kind":"manifest","csv":"a.csv"}"#).unwrap();
    assert_eq!(old, DataSpec::Manifest { csv: "a.csv".into(), label_map: None });
    assert!(!serde_json::to_string(&old).unwrap().contains("label_map"));
}

fn png(path: &Path) {
    image::RgbImage::from_pixel(8, 8, image::Rgb([90, 60, 40])).save(path).unwrap();
}

#[test]
fn a_manifest_with_a_label_map() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for i in 0..4 {
        png(&d.join(format!("{i}.png")));
    }
    write(&d.join("m.csv"), "path,label\n0.png,Common Nevus\n1.png,clark\n2.png,Melanoma\n3.png,atypical_nevus\n");
    write(&d.join("map.csv"), "from,to\nclark,nevus\n");
    // Without the map "clark" is a class of its own.
    let plain: DataSpec = format!("manifest:{}", d.join("m.csv").display()).parse().unwrap();
    let ds = Dataset::open(&plain, LabelScheme::Native).unwrap();
    assert_eq!(ds.classes, vec!["clark", "mel", "nv"]);
    let mapped: DataSpec = format!("manifest:{},label_map={}", d.join("m.csv").display(), d.join("map.csv").display()).parse().unwrap();
    let ds = Dataset::open(&mapped, LabelScheme::Native).unwrap();
    assert_eq!(ds.classes, vec!["mel", "nv"]);
    assert_eq!(ds.records.iter().map(|r| r.dx.as_str()).collect::<Vec<_>>(), vec!["nv", "nv", "mel", "nv"]);
    // A broken map stops the dataset with the map's file and line.
    write(&d.join("map.csv"), "from,to\nclark\n");
    let e = format!("{:#}", Dataset::open(&mapped, LabelScheme::Native).unwrap_err());
    assert!(e.contains("map.csv") && e.contains("line 2"), "{e}");
}

#[test]
fn ham10000_and_folders_with_a_label_map() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ham");
    std::fs::create_dir_all(root.join("images")).unwrap();
    let mut csv = String::from("lesion_id,image_id,dx\n");
    for (i, dx) in ["mel", "nv", "lentigo"].iter().enumerate() {
        png(&root.join("images").join(format!("I{i}.png")));
        csv.push_str(&format!("L{i},I{i},{dx}\n"));
    }
    write(&root.join("HAM10000_metadata.csv"), &csv);
    let plain: DataSpec = format!("ham10000:{}", root.display()).parse().unwrap();
    let e = format!("{:#}", Dataset::open(&plain, LabelScheme::Native).unwrap_err());
    assert!(e.contains("unknown diagnosis 'lentigo'") && e.contains("line 4"), "{e}");
    write(&tmp.path().join("map.csv"), "lentigo,bkl\n");
    let mapped: DataSpec = format!("ham10000:{},label_map={}", root.display(), tmp.path().join("map.csv").display()).parse().unwrap();
    let ds = Dataset::open(&mapped, LabelScheme::Native).unwrap();
    assert_eq!(ds.classes, vec!["bkl", "mel", "nv"]);

    // Folders: the class folder names are labels.
    let f = tmp.path().join("folders");
    for class in ["Common_Nevus", "Atypical Nevus", "Melanoma", "odd"] {
        std::fs::create_dir_all(f.join(class)).unwrap();
        png(&f.join(class).join("a.png"));
    }
    write(&tmp.path().join("fmap.toml"), "odd = \"melanoma\"\n");
    let spec: DataSpec = format!("folders:{},label_map={}", f.display(), tmp.path().join("fmap.toml").display()).parse().unwrap();
    let ds = Dataset::open(&spec, LabelScheme::MelVsNevus).unwrap();
    assert_eq!(ds.class_counts(), vec![2, 2]);
}
