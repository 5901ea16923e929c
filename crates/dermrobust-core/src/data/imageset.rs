//! Decoded, preprocessed pixels of a dataset, with an on-disk cache so that epochs and audits
//! never decode a JPEG twice.
//!
//! Pixels are stored as planar 8-bit at the model resolution (10,015 HAM10000 images at 64x64
//! take 123 MB). Decoding runs in parallel with a progress bar.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::dataset::Dataset;
use super::record::ImageSource;
use crate::imaging::remedy::{AppliedRemedy, CaptureRemedy, LesionFoundBy};
use crate::imaging::{io, Image};

/// Bump when the cache format or preprocessing code changes meaning.
const CACHE_VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"DRC1";

/// How raw photographs become model inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Side of the square model input in pixels.
    pub size: usize,
    /// Centre square crop of this fraction of the short side before resizing (Yan et al.: 0.8).
    /// Without it the whole photograph is resized to a square.
    pub centre_crop: Option<f32>,
}

impl Preprocess {
    pub fn apply(&self, img: &Image) -> Image {
        let img = match self.centre_crop {
            Some(f) => img.centre_square_crop(f),
            None => img.clone(),
        };
        img.resized(self.size, self.size)
    }
}

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Where decoded pixels are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Skip (and count) unreadable images instead of stopping at the first one.
    pub skip_bad: bool,
    /// Also load lesion masks where the dataset has them.
    pub masks: bool,
    pub quiet: bool,
}

/// The default cache folder: `$DERMROBUST_CACHE`, else `$XDG_CACHE_HOME/dermrobust`, else
/// `~/.cache/dermrobust`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("DERMROBUST_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("dermrobust");
    }
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache").join("dermrobust")
}

/// Pixels (and masks) of a labelled dataset at model resolution.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub size: usize,
    pub classes: Vec<String>,
    pub ids: Vec<String>,
    pub groups: Vec<String>,
    pub labels: Vec<usize>,
    /// Planar RGB, `3 * size * size` bytes per image.
    pixels: Vec<u8>,
    /// One plane per image where a mask exists.
    masks: Vec<Option<Vec<u8>>>,
    /// The capture remedy applied to each image by [`ImageSet::apply_capture_remedy`] (empty
    /// when none was).
    remedies: Vec<AppliedRemedy>,
}

/// What loading did besides producing pixels.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    pub from_cache: bool,
    /// (image id, error) of images skipped with `skip_bad`.
    pub skipped: Vec<(String, String)>,
    /// Hash of the inputs (file names, sizes, times) and preprocessing: identifies the data.
    pub data_hash: String,
}

#[derive(Serialize, Deserialize)]
struct CacheHeader {
    version: u32,
    size: usize,
    ids: Vec<String>,
    has_mask: Vec<bool>,
    bad: Vec<(String, String)>,
}

impl ImageSet {
    /// Decode (or read from the cache) every image of `ds`.
    pub fn load(ds: &Dataset, prep: &Preprocess, opts: &LoadOptions) -> Result<(ImageSet, LoadReport)> {
        if prep.size < 8 {
            bail!("model input size {} is too small (at least 8 pixels)", prep.size);
        }
        let key = cache_key(ds, prep, opts.masks)?;
        let cache_file = opts.cache_dir.as_ref().map(|d| d.join(format!("{key}.bin")));
        if let Some(file) = cache_file.as_ref().filter(|f| f.is_file()) {
            if let Ok(set) = read_cache(file, ds, prep) {
                let (set, skipped) = set;
                if skipped.is_empty() || opts.skip_bad {
                    return Ok((set, LoadReport { from_cache: true, skipped, data_hash: key }));
                }
            }
        }
        let bar = crate::progress::bar(ds.len() as u64, "decoding images", opts.quiet);
        let synth = match &ds.spec {
            super::spec::DataSpec::Synthetic(cfg) => Some(crate::synth::Generator::new(cfg.clone())),
            _ => None,
        };
        let decoded: Vec<Result<(Vec<u8>, Option<Vec<u8>>)>> = ds
            .records
            .par_iter()
            .map(|r| {
                let out = (|| -> Result<(Vec<u8>, Option<Vec<u8>>)> {
                    let (img, mask) = match (&r.source, &synth) {
                        (ImageSource::File(path), _) => {
                            let img = io::read_rgb(path)?;
                            let mask = match (&r.mask, opts.masks) {
                                (Some(m), true) => Some(io::read_mask(m)?.resized(img.width, img.height)),
                                _ => None,
                            };
                            (img, mask)
                        }
                        (ImageSource::Synthetic { lesion, photo }, Some(g)) => {
                            let (img, mask) = g.photograph(*lesion, *photo);
                            (img, opts.masks.then_some(mask))
                        }
                        (ImageSource::Synthetic { .. }, None) => bail!("{}: synthetic record in a non-synthetic dataset", r.origin),
                    };
                    let pixels = prep.apply(&img).to_planar_u8();
                    let mask = mask.map(|m| prep.apply(&m).to_planar_u8());
                    Ok((pixels, mask))
                })();
                bar.inc(1);
                out
            })
            .collect();
        bar.finish_and_clear();

        let plane = prep.size * prep.size;
        let mut set = ImageSet {
            size: prep.size,
            classes: ds.classes.clone(),
            ids: Vec::new(),
            groups: Vec::new(),
            labels: Vec::new(),
            pixels: Vec::with_capacity(ds.len() * 3 * plane),
            masks: Vec::new(),
            remedies: Vec::new(),
        };
        let mut skipped = Vec::new();
        for ((r, label), result) in ds.records.iter().zip(&ds.labels).zip(decoded) {
            match result {
                Ok((pixels, mask)) => {
                    set.ids.push(r.id.clone());
                    set.groups.push(r.group.clone());
                    set.labels.push(*label);
                    set.pixels.extend_from_slice(&pixels);
                    set.masks.push(mask);
                }
                Err(e) if opts.skip_bad => skipped.push((r.id.clone(), format!("{e:#}"))),
                Err(e) => return Err(e.context(format!("while loading {} (use --skip-bad to skip unreadable images)", r.origin))),
            }
        }
        if set.is_empty() {
            bail!("no image of dataset {} could be read ({} skipped)", ds.spec, skipped.len());
        }
        if let Some(file) = &cache_file {
            // A cache that cannot be written only costs time later; say so and go on.
            if let Err(e) = write_cache(file, &set, &skipped) {
                eprintln!("warning: could not write the image cache {}: {e:#}", file.display());
            }
        }
        Ok((set, LoadReport { from_cache: false, skipped, data_hash: key }))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Planar 8-bit pixels of image `i`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        let n = 3 * self.size * self.size;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Replace image `i` with `img` (RGB, the set's size), e.g. with an artefact inserted for
    /// biased training.
    pub fn set_image(&mut self, i: usize, img: &Image) -> Result<()> {
        if img.channels != 3 || img.width != self.size || img.height != self.size {
            bail!("image {} is {}x{}x{}, expected 3x{s}x{s}", self.ids[i], img.channels, img.width, img.height, s = self.size);
        }
        let n = 3 * self.size * self.size;
        self.pixels[i * n..(i + 1) * n].copy_from_slice(&img.to_planar_u8());
        Ok(())
    }

    /// Replace the mask of image `i` (1 channel, the set's size).
    pub fn set_mask(&mut self, i: usize, mask: &Image) -> Result<()> {
        if mask.channels != 1 || mask.width != self.size || mask.height != self.size {
            bail!("mask of {} is {}x{}x{}, expected 1x{s}x{s}", self.ids[i], mask.channels, mask.width, mask.height, s = self.size);
        }
        self.masks[i] = Some(mask.to_planar_u8());
        Ok(())
    }

    /// Apply Mishra's capture `remedy` to every image (and move its mask with it), in place,
    /// once: the pixels become what the model sees, and [`ImageSet::remedy`] says per image which
    /// operation made them and where the lesion was found. Returns how many images had their
    /// lesion found from the mask and how many by Otsu's automatic localisation.
    pub fn apply_capture_remedy(&mut self, remedy: &CaptureRemedy) -> Result<(usize, usize)> {
        remedy.validate()?;
        if !self.remedies.is_empty() {
            bail!("a capture remedy was already applied to these images");
        }
        let results: Vec<Result<(Image, Option<Image>, AppliedRemedy)>> =
            (0..self.len()).into_par_iter().map(|i| remedy.apply(&self.image(i), self.mask(i).as_ref())).collect();
        let (mut by_mask, mut by_otsu) = (0, 0);
        let mut remedies = Vec::with_capacity(self.len());
        for (i, r) in results.into_iter().enumerate() {
            let (img, mask, applied) = r.map_err(|e| anyhow::anyhow!("capture remedy of image {}: {e:#}", self.ids[i]))?;
            self.set_image(i, &img)?;
            if let Some(m) = mask {
                self.set_mask(i, &m)?;
            }
            match applied.lesion_found_by {
                Some(LesionFoundBy::Mask) => by_mask += 1,
                Some(LesionFoundBy::Otsu) => by_otsu += 1,
                None => {}
            }
            remedies.push(applied);
        }
        self.remedies = remedies;
        Ok((by_mask, by_otsu))
    }

    /// The capture remedy applied to image `i`, if any was.
    pub fn remedy(&self, i: usize) -> Option<&AppliedRemedy> {
        self.remedies.get(i)
    }

    pub fn image(&self, i: usize) -> Image {
        Image::from_planar_u8(3, self.size, self.size, self.pixels(i))
    }

    pub fn mask(&self, i: usize) -> Option<Image> {
        self.masks[i].as_ref().map(|m| Image::from_planar_u8(1, self.size, self.size, m))
    }

    pub fn has_masks(&self) -> bool {
        !self.masks.is_empty() && self.masks.iter().all(Option::is_some)
    }

    /// Whether at least one image has a mask.
    pub fn has_any_mask(&self) -> bool {
        self.masks.iter().any(Option::is_some)
    }

    /// Index of every id, for mapping a [`Dataset`] subset onto loaded pixels.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|x| x == id)
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let n = 3 * self.size * self.size;
        let mut pixels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            pixels.extend_from_slice(self.pixels(i));
        }
        ImageSet {
            size: self.size,
            classes: self.classes.clone(),
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            groups: indices.iter().map(|&i| self.groups[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            pixels,
            masks: indices.iter().map(|&i| self.masks[i].clone()).collect(),
            remedies: if self.remedies.is_empty() { vec![] } else { indices.iter().map(|&i| self.remedies[i].clone()).collect() },
        }
    }

    /// Build a set from images already in memory (all of side `size`).
    pub fn from_images(classes: Vec<String>, items: Vec<(String, String, usize, Image, Option<Image>)>) -> Result<ImageSet> {
        let size = items.first().map(|it| it.3.width).context("no images")?;
        let mut set = ImageSet { size, classes, ids: vec![], groups: vec![], labels: vec![], pixels: vec![], masks: vec![], remedies: vec![] };
        for (id, group, label, img, mask) in items {
            if img.width != size || img.height != size || img.channels != 3 {
                bail!("image {id} is {}x{}x{}, expected 3x{size}x{size}", img.channels, img.width, img.height);
            }
            set.ids.push(id);
            set.groups.push(group);
            set.labels.push(label);
            set.pixels.extend(img.to_planar_u8());
            set.masks.push(mask.map(|m| m.to_planar_u8()));
        }
        Ok(set)
    }
}

/// Identifies the inputs: ids, files (path, size, modification time) and preprocessing.
fn cache_key(ds: &Dataset, prep: &Preprocess, masks: bool) -> Result<String> {
    let mut h = Sha256::new();
    h.update(CACHE_VERSION.to_le_bytes());
    h.update(serde_json::to_vec(prep)?);
    h.update([masks as u8]);
    if let super::spec::DataSpec::Synthetic(cfg) = &ds.spec {
        h.update(serde_json::to_vec(cfg)?);
    }
    let stamp = |p: &Path, h: &mut Sha256| {
        h.update(p.to_string_lossy().as_bytes());
        if let Ok(m) = std::fs::metadata(p) {
            h.update(m.len().to_le_bytes());
            if let Ok(t) = m.modified().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).map_err(std::io::Error::other)) {
                h.update(t.as_nanos().to_le_bytes());
            }
        }
    };
    for r in &ds.records {
        h.update(r.id.as_bytes());
        if let ImageSource::File(p) = &r.source {
            stamp(p, &mut h);
        }
        if let (Some(m), true) = (&r.mask, masks) {
            stamp(m, &mut h);
        }
    }
    Ok(format!("{:x}", h.finalize())[..24].to_string())
}

fn write_cache(file: &Path, set: &ImageSet, bad: &[(String, String)]) -> Result<()> {
    let header = CacheHeader {
        version: CACHE_VERSION,
        size: set.size,
        ids: set.ids.clone(),
        has_mask: set.masks.iter().map(Option::is_some).collect(),
        bad: bad.to_vec(),
    };
    let json = serde_json::to_vec(&header)?;
    let mut bytes = Vec::with_capacity(set.pixels.len() + json.len() + 16);
    bytes.write_all(MAGIC)?;
    bytes.write_all(&(json.len() as u64).to_le_bytes())?;
    bytes.write_all(&json)?;
    bytes.write_all(&set.pixels)?;
    for m in set.masks.iter().flatten() {
        bytes.write_all(m)?;
    }
    crate::report::atomic_write(file, &bytes)
}

fn read_cache(file: &Path, ds: &Dataset, prep: &Preprocess) -> Result<(ImageSet, Vec<(String, String)>)> {
    let mut f = std::fs::File::open(file)?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)?;
    if &magic != MAGIC {
        bail!("not a dermrobust cache file");
    }
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let mut json = vec![0u8; u64::from_le_bytes(len) as usize];
    f.read_exact(&mut json)?;
    let header: CacheHeader = serde_json::from_slice(&json)?;
    if header.version != CACHE_VERSION || header.size != prep.size {
        bail!("cache from another version");
    }
    let plane = prep.size * prep.size;
    let mut pixels = vec![0u8; header.ids.len() * 3 * plane];
    f.read_exact(&mut pixels)?;
    let mut masks = Vec::with_capacity(header.ids.len());
    for &has in &header.has_mask {
        masks.push(if has {
            let mut m = vec![0u8; plane];
            f.read_exact(&mut m)?;
            Some(m)
        } else {
            None
        });
    }
    // Labels and groups come from the dataset (the label scheme may differ from the one cached).
    let index: std::collections::HashMap<&str, usize> = ds.records.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
    let mut set = ImageSet { size: prep.size, classes: ds.classes.clone(), ids: vec![], groups: vec![], labels: vec![], pixels: vec![], masks: vec![], remedies: vec![] };
    for id in &header.ids {
        let i = *index.get(id.as_str()).context("cache does not match the dataset")?;
        set.ids.push(id.clone());
        set.groups.push(ds.records[i].group.clone());
        set.labels.push(ds.labels[i]);
    }
    set.pixels = pixels;
    set.masks = masks;
    if set.len() + header.bad.len() != ds.len() {
        bail!("cache does not match the dataset");
    }
    Ok((set, header.bad))
}
