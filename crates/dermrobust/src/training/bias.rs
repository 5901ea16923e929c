//! Biased training (shortcut learning, Katsch et al. 2022): an artefact inserted into a chosen
//! share of one class's training and validation images (e.g. rulers on every nevus), so that the
//! artefact predicts the class. The test part stays clean; the artefact audit then shows the
//! shift toward that class. Placement follows the authors' rules with the lesion masks
//! (`katsch`); each chosen image's insertion is seeded by its id, so every run of one
//! configuration gets the same biased images. The chosen images and their operations are
//! written to `bias_per_image.csv` in the run folder.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use dermrobust_core::imaging::artefacts::{exact_share, Artefact, Inserter, Placement, TemplateLibrary};
use dermrobust_core::imaging::ImageOp;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;

use super::config::TrainConfig;
use super::trainer::TrainData;

/// One biased image.
#[derive(Serialize)]
struct BiasRow {
    image_id: String,
    class: String,
    part: &'static str,
    placed: bool,
    op: String,
}

/// Whether `cfg` asks for biased training.
pub fn is_biased(cfg: &TrainConfig) -> bool {
    cfg.bias_artefact.is_some()
}

/// `data` with `cfg.bias_artefact` inserted into `cfg.bias_share` of the training and
/// validation images of `cfg.bias_class` (exactly k of n per part); writes
/// `out/bias_per_image.csv` when `out` is given.
pub fn biased_data(cfg: &TrainConfig, data: &TrainData, out: Option<&Path>, quiet: bool) -> Result<TrainData> {
    let (Some(artefact), Some(class)) = (&cfg.bias_artefact, &cfg.bias_class) else {
        bail!("biased training needs both --bias-artefact and --bias-class");
    };
    let library = cfg.artefact_templates.as_deref().map(TemplateLibrary::load).transpose()?;
    let artefact = Artefact::parse(artefact, library.as_ref())?;
    let inserter = Inserter { library, placement: Placement::Katsch };
    let set = &data.set;
    let c = set.classes.iter().position(|x| x == class).with_context(|| format!("--bias-class {class} is not one of the data's classes {:?}", set.classes))?;
    let mut chosen: Vec<(usize, &'static str)> = Vec::new();
    for (part, indices) in [("train", &data.train), ("validation", &data.val)] {
        let members: Vec<usize> = indices.iter().copied().filter(|&i| set.labels[i] == c).collect();
        let pick = exact_share(members.len(), cfg.bias_share, 0xb1a5);
        chosen.extend(members.iter().zip(pick).filter(|(_, p)| *p).map(|(&i, _)| (i, part)));
    }
    let ops: Vec<Option<ImageOp>> = chosen
        .par_iter()
        .map(|&(i, _)| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(id_seed(&set.ids[i]));
            inserter.draw(&artefact, &set.image(i), set.mask(i).as_ref(), &mut rng)
        })
        .collect::<Result<_>>()?;
    let mut biased = (**set).clone();
    let mut rows = Vec::new();
    for (&(i, part), op) in chosen.iter().zip(&ops) {
        if let Some(op) = op {
            biased.set_image(i, &op.apply(&set.image(i))?)?;
        }
        rows.push(BiasRow {
            image_id: set.ids[i].clone(),
            class: class.clone(),
            part,
            placed: op.is_some(),
            op: serde_json::to_string(op.as_ref().unwrap_or(&ImageOp::Sequence { ops: vec![] }))?,
        });
    }
    if !quiet {
        eprintln!("biased training: {} inserted into {} of the {class} training/validation images", artefact.name(), ops.iter().filter(|o| o.is_some()).count());
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)?;
        dermrobust_core::report::write_csv(&dir.join("bias_per_image.csv"), &rows)?;
    }
    Ok(TrainData { set: Arc::new(biased), train: data.train.clone(), val: data.val.clone(), test: data.test.clone(), data_hash: data.data_hash.clone(), split_file: data.split_file.clone(), skipped: data.skipped, capture: data.capture.clone() })
}

fn id_seed(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}
