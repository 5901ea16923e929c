//! Dense perturbations as replayable records: `.npy` files round-trip, and `ImageOp::AddDelta`
//! adds one to an image and clips, refusing a perturbation of another size.

use dermrobust_core::imaging::npy::{read_npy, write_npy};
use dermrobust_core::imaging::{Image, ImageOp};

#[test]
fn npy_round_trips_and_rejects_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("d.npy");
    let data: Vec<f32> = (0..3 * 4 * 5).map(|i| i as f32 * 0.25 - 3.0).collect();
    write_npy(&path, &[3, 4, 5], &data).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!((bytes.len() - 4 * data.len()) % 64, 0, "header padded to 64 bytes as NumPy does");
    assert_eq!(read_npy(&path).unwrap(), (vec![3, 4, 5], data.clone()));
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    assert!(read_npy(&path).unwrap_err().to_string().contains("truncated"));
    assert!(write_npy(&path, &[2, 2], &data).is_err());
}

#[test]
fn add_delta_adds_and_clips() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("delta.npy");
    let img = Image::new(3, 2, 2, vec![0.5, 0.9, 0.1, 0.0, 0.5, 0.5, 0.5, 0.5, 1.0, 0.2, 0.3, 0.4]);
    let delta = vec![0.1, 0.2, -0.2, -0.1, 0.0, 0.0, 0.0, 0.0, 0.5, -0.5, 0.0, 0.1];
    write_npy(&path, &[3, 2, 2], &delta).unwrap();
    let op = ImageOp::AddDelta { file: path.clone() };
    let out = op.apply(&img).unwrap();
    let want: Vec<f32> = img.data.iter().zip(&delta).map(|(a, b)| (a + b).clamp(0.0, 1.0)).collect();
    assert_eq!(out.data, want);
    // The record serialises and replays to the same image.
    let json = serde_json::to_string(&op).unwrap();
    let back: ImageOp = serde_json::from_str(&json).unwrap();
    assert_eq!(back.apply(&img).unwrap().data, want);
    // A perturbation made for another size is an error naming the file.
    let e = op.apply(&Image::filled(3, 3, 3, 0.5)).unwrap_err().to_string();
    assert!(e.contains("delta.npy"), "{e}");
    assert!(ImageOp::AddDelta { file: "".into() }.validate().is_err());
}
