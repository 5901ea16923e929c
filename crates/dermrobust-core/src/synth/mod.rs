//! dermrobust's own synthetic dermoscopy: the embedded default dataset, so that the demo, the
//! tests and every audit run with no download.
//!
//! Each synthetic lesion is drawn on procedurally textured skin with class signal taken from the
//! dermoscopic ABCD criteria: **A**symmetry (low-order harmonics of the border and an off-centre
//! pigment mass), **B**order irregularity (high-order harmonics, abrupt edges), **C**olour
//! variegation (number and kind of colours: browns, black, blue-grey, red, white) and
//! **D**iameter. Four diagnoses are drawn: melanocytic nevus (`nv`), melanoma (`mel`), benign
//! keratosis (`bkl`, with milia-like cysts) and basal cell carcinoma (`bcc`, pink with arborising
//! vessels). A lesion can have several photographs (rotated, shifted, re-lit), which gives a
//! natural "same lesion, another photograph" set as in HAM10000. Hairs and the dark vignette of a
//! dermoscope's field of view are optional. Everything is deterministic by seed.

pub mod config;
mod noise;
mod render;

use anyhow::Result;
use rand::{Rng, SeedableRng};

use crate::data::record::{ImageSource, Record};
use crate::imaging::Image;
pub use config::SyntheticConfig;
pub use render::{LesionParams, PhotoParams};

/// Diagnoses the generator draws and their shares.
pub const CLASSES: [(&str, f64); 4] = [("nv", 0.45), ("mel", 0.25), ("bkl", 0.18), ("bcc", 0.12)];

fn rng_for(seed: u64, lesion: usize, photo: usize) -> rand_chacha::ChaCha8Rng {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    s = s.wrapping_mul(31).wrapping_add(lesion as u64).wrapping_mul(0x1000_0000_01b3).wrapping_add(photo as u64 + 1);
    rand_chacha::ChaCha8Rng::seed_from_u64(s)
}

/// Draws lesions and their photographs.
#[derive(Clone, Debug)]
pub struct Generator {
    pub config: SyntheticConfig,
}

impl Generator {
    pub fn new(config: SyntheticConfig) -> Self {
        Generator { config }
    }

    /// Diagnosis index into [`CLASSES`] and number of photographs of a lesion.
    fn lesion_header(&self, lesion: usize) -> (usize, usize) {
        let mut rng = rng_for(self.config.seed, lesion, usize::MAX);
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut class = CLASSES.len() - 1;
        for (i, (_, p)) in CLASSES.iter().enumerate() {
            acc += p;
            if u < acc {
                class = i;
                break;
            }
        }
        let photos = if self.config.max_photos_per_lesion <= 1 || rng.random::<f32>() < 0.6 {
            1
        } else {
            rng.random_range(2..=self.config.max_photos_per_lesion)
        };
        (class, photos)
    }

    pub fn lesion(&self, lesion: usize) -> LesionParams {
        let (class, _) = self.lesion_header(lesion);
        let mut rng = rng_for(self.config.seed, lesion, 0);
        LesionParams::draw(CLASSES[class].0, &mut rng)
    }

    /// The `photo`-th photograph of `lesion` and its lesion mask.
    pub fn photograph(&self, lesion: usize, photo: usize) -> (Image, Image) {
        let params = self.lesion(lesion);
        let mut rng = rng_for(self.config.seed, lesion, photo + 1);
        let shot = PhotoParams::draw(photo, &self.config, &mut rng);
        render::render(&params, &shot, self.config.size)
    }
}

/// Records of the synthetic dataset a configuration describes.
pub fn records(cfg: &SyntheticConfig) -> Vec<Record> {
    let generator = Generator::new(cfg.clone());
    let mut out = Vec::new();
    for lesion in 0..cfg.lesions {
        let (class, photos) = generator.lesion_header(lesion);
        for photo in 0..photos {
            out.push(Record {
                id: format!("syn_{lesion:05}_{photo}"),
                dx: CLASSES[class].0.to_string(),
                group: format!("synlesion_{lesion:05}"),
                source: ImageSource::Synthetic { lesion, photo },
                mask: None,
                origin: format!("synthetic lesion {lesion} photograph {photo}"),
            });
        }
    }
    out
}

/// Write every photograph as `DIR/images/ID.png` and `DIR/masks/ID_segmentation.png`, plus a
/// manifest `DIR/manifest.csv` (path,label,mask,group) that `--data manifest:DIR/manifest.csv` reads.
pub fn write_dataset(cfg: &SyntheticConfig, dir: &std::path::Path, quiet: bool) -> Result<usize> {
    use rayon::prelude::*;
    let recs = records(cfg);
    let generator = Generator::new(cfg.clone());
    std::fs::create_dir_all(dir.join("images"))?;
    std::fs::create_dir_all(dir.join("masks"))?;
    let bar = crate::progress::bar(recs.len() as u64, "writing synthetic images", quiet);
    recs.par_iter().try_for_each(|r| -> Result<()> {
        if let ImageSource::Synthetic { lesion, photo } = r.source {
            let (img, mask) = generator.photograph(lesion, photo);
            crate::imaging::io::write_png(&img, &dir.join("images").join(format!("{}.png", r.id)))?;
            crate::imaging::io::write_png(&mask, &dir.join("masks").join(format!("{}_segmentation.png", r.id)))?;
        }
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["path", "label", "mask", "group"])?;
    for r in &recs {
        w.write_record([format!("images/{}.png", r.id), r.dx.clone(), format!("masks/{}_segmentation.png", r.id), r.group.clone()])?;
    }
    crate::report::atomic_write(&dir.join("manifest.csv"), &w.into_inner()?)?;
    Ok(recs.len())
}
