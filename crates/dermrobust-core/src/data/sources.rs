//! Readers that turn a [`DataSpec`] into a list of [`Record`]s (no pixels are decoded here).
//! Every problem in a CSV is reported with its file and line number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use super::labels::LabelMap;
use super::spec::DataSpec;
// Re-exported so that `data::sources::{ImageSource, Record}` keeps working.
pub use super::record::{ImageSource, Record};

/// Read the records a spec describes. Missing image files are an error naming the CSV line.
pub fn read_records(spec: &DataSpec) -> Result<Vec<Record>> {
    let map = match spec.label_map() {
        Some(path) => LabelMap::read(path)?,
        None => LabelMap::default(),
    };
    let records = match spec {
        DataSpec::Synthetic(cfg) => crate::synth::records(cfg),
        DataSpec::Ham10000 { metadata, images, masks, .. } => read_ham10000(metadata, images, masks.as_deref(), &map)?,
        DataSpec::Isic { csv, images, masks, .. } => read_isic(csv, images, masks.as_deref(), &map)?,
        DataSpec::Manifest { csv, .. } => read_manifest(csv, &map)?,
        DataSpec::Folders { dir, .. } => read_folders(dir, &map)?,
    };
    if records.is_empty() {
        bail!("dataset {spec} contains no images");
    }
    let mut seen = HashMap::new();
    for r in &records {
        if let Some(first) = seen.insert(r.id.clone(), r.origin.clone()) {
            bail!("image id '{}' appears twice: {} and {}", r.id, first, r.origin);
        }
    }
    Ok(records)
}

fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot open CSV file {}", path.display()))
}

/// Header position of `name`, or an error listing what the header has.
fn column(headers: &csv::StringRecord, name: &str, path: &Path) -> Result<usize> {
    headers.iter().position(|h| h.eq_ignore_ascii_case(name)).with_context(|| {
        format!("{}: line 1: missing column '{name}' (header is: {})", path.display(), headers.iter().collect::<Vec<_>>().join(","))
    })
}

fn rows(path: &Path) -> Result<(csv::StringRecord, Vec<(usize, csv::StringRecord)>)> {
    let mut reader = open_csv(path)?;
    let headers = reader.headers().with_context(|| format!("{}: line 1: cannot read the header", path.display()))?.clone();
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}: line {line}: malformed CSV row", path.display()))?;
        out.push((line, row));
    }
    Ok((headers, out))
}

/// Find `{stem}.jpg|.jpeg|.png` in `dir`.
fn find_image(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["jpg", "jpeg", "png", "JPG", "PNG"].iter().map(|ext| dir.join(format!("{stem}.{ext}"))).find(|p| p.is_file())
}

fn mask_for(masks: Option<&Path>, id: &str) -> Option<PathBuf> {
    masks.map(|d| d.join(format!("{id}_segmentation.png"))).filter(|p| p.is_file())
}

fn read_ham10000(metadata: &Path, images: &Path, masks: Option<&Path>, map: &LabelMap) -> Result<Vec<Record>> {
    if !images.is_dir() {
        bail!("HAM10000 image folder {} does not exist", images.display());
    }
    let (headers, rows) = rows(metadata)?;
    let (c_lesion, c_image, c_dx) =
        (column(&headers, "lesion_id", metadata)?, column(&headers, "image_id", metadata)?, column(&headers, "dx", metadata)?);
    let mut out = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let origin = format!("{}, line {line}", metadata.display());
        let field = |c: usize| -> Result<&str> {
            row.get(c).filter(|v| !v.is_empty()).with_context(|| format!("{origin}: empty field '{}'", &headers[c]))
        };
        let id = field(c_image)?.to_string();
        let raw = field(c_dx)?;
        let dx = map.canonical(raw);
        // A label the user's map renames may leave the seven HAM10000 diagnoses on purpose.
        if map.get(raw).is_none() && !super::labels::HAM7.contains(&dx.as_str()) {
            bail!("{origin}: unknown diagnosis '{dx}' for image {id} (expected one of {})", super::labels::HAM7.join(", "));
        }
        let path = find_image(images, &id).with_context(|| format!("{origin}: image file for '{id}' not found in {}", images.display()))?;
        out.push(Record { mask: mask_for(masks, &id), group: field(c_lesion)?.to_string(), id, dx, source: ImageSource::File(path), origin });
    }
    Ok(out)
}

/// ISIC one-hot ground truth: first column the image id, then one column per class holding 0/1
/// (or 0.0/1.0). 2017's two columns imply nevus when both are 0.
fn read_isic(csv_path: &Path, images: &Path, masks: Option<&Path>, map: &LabelMap) -> Result<Vec<Record>> {
    let (headers, rows) = rows(csv_path)?;
    if headers.len() < 2 {
        bail!("{}: line 1: an ISIC ground-truth CSV needs an id column and class columns", csv_path.display());
    }
    let class_names: Vec<String> = headers.iter().skip(1).map(|h| map.canonical(h)).collect();
    let implicit_nevus = !class_names.iter().any(|c| c == "nv");
    let mut out = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let origin = format!("{}, line {line}", csv_path.display());
        let id = row.get(0).filter(|v| !v.is_empty()).with_context(|| format!("{origin}: empty image id"))?.to_string();
        let mut hot = Vec::new();
        for (j, name) in class_names.iter().enumerate() {
            let raw = row.get(j + 1).unwrap_or("");
            let v: f64 = raw.parse().with_context(|| format!("{origin}: column '{}' must be 0 or 1, found '{raw}'", &headers[j + 1]))?;
            if v > 0.5 {
                hot.push(name.clone());
            }
        }
        let dx = match hot.as_slice() {
            [one] => one.clone(),
            [] if implicit_nevus => "nv".into(),
            [] => bail!("{origin}: image {id} has no class set"),
            _ => bail!("{origin}: image {id} has several classes set ({})", hot.join(", ")),
        };
        let path = find_image(images, &id).with_context(|| format!("{origin}: image file for '{id}' not found in {}", images.display()))?;
        out.push(Record { mask: mask_for(masks, &id), group: id.clone(), id, dx, source: ImageSource::File(path), origin });
    }
    Ok(out)
}

/// Generic manifest: `path,label[,mask][,group]`, paths relative to the CSV's folder.
fn read_manifest(csv_path: &Path, map: &LabelMap) -> Result<Vec<Record>> {
    let base = csv_path.parent().unwrap_or(Path::new("."));
    let (headers, rows) = rows(csv_path)?;
    let c_path = column(&headers, "path", csv_path)?;
    let c_label = column(&headers, "label", csv_path)?;
    let c_mask = headers.iter().position(|h| h.eq_ignore_ascii_case("mask"));
    let c_group = headers.iter().position(|h| h.eq_ignore_ascii_case("group"));
    let mut out = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let origin = format!("{}, line {line}", csv_path.display());
        let rel = row.get(c_path).filter(|v| !v.is_empty()).with_context(|| format!("{origin}: empty path"))?;
        let label = row.get(c_label).filter(|v| !v.is_empty()).with_context(|| format!("{origin}: empty label"))?;
        let path = base.join(rel);
        if !path.is_file() {
            bail!("{origin}: image file {} does not exist", path.display());
        }
        let mask = match c_mask.and_then(|c| row.get(c)).filter(|v| !v.is_empty()) {
            Some(m) => {
                let m = base.join(m);
                if !m.is_file() {
                    bail!("{origin}: mask file {} does not exist", m.display());
                }
                Some(m)
            }
            None => None,
        };
        let id = rel.to_string();
        let group = c_group.and_then(|c| row.get(c)).filter(|v| !v.is_empty()).map(str::to_string).unwrap_or_else(|| id.clone());
        out.push(Record { id, dx: map.canonical(label), group, source: ImageSource::File(path), mask, origin });
    }
    Ok(out)
}

/// One sub-folder per class.
fn read_folders(dir: &Path, map: &LabelMap) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    for class_dir in classes {
        let class = class_dir.file_name().unwrap().to_string_lossy().to_string();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&class_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| matches!(e.to_ascii_lowercase().to_str(), Some("jpg" | "jpeg" | "png"))))
            .collect();
        files.sort();
        for path in files {
            let id = format!("{class}/{}", path.file_name().unwrap().to_string_lossy());
            out.push(Record { origin: path.display().to_string(), group: id.clone(), id, dx: map.canonical(&class), source: ImageSource::File(path), mask: None });
        }
    }
    Ok(out)
}
