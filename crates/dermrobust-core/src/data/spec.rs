//! The one command-line syntax for choosing a dataset: `KIND[:PATH][,KEY=VALUE...]`.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

// Only the configuration module: specs do not depend on the generator.
use crate::synth::config::SyntheticConfig;

/// Help text shown by every command that takes `--data`.
pub const DATA_SPEC_HELP: &str = "\
Dataset, written KIND[:PATH][,KEY=VALUE...]:
  synthetic[:n=800,seed=7,photos=3]   dermrobust's own synthetic dermoscopy (the default; no files)
  ham10000:DIR[,images=DIR,masks=DIR,metadata=CSV]
                                      HAM10000 layout: DIR/HAM10000_metadata.csv, DIR/images/,
                                      optional DIR/masks/{image_id}_segmentation.png
  isic:CSV,images=DIR[,masks=DIR]     ISIC challenge one-hot ground truth (2017: image_id,melanoma,
                                      seborrheic_keratosis; 2018: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC)
  manifest:CSV                        generic CSV with columns path,label[,mask][,group]
                                      (relative paths are relative to the CSV)
  folders:DIR                         one sub-folder per class: DIR/<class>/*.jpg|png
Every kind but synthetic also takes label_map=FILE: rename the labels the dataset holds (labels,
ISIC class columns, class folders) before they are read, from a CSV file of from,to lines (an
optional from,to header; # starts a comment) or a TOML file of \"from\" = \"to\" pairs. Labels
match ignoring case, spaces, _ and -. Common spellings need no map: melanoma -> mel; nevus,
common_nevus, atypical_nevus (PH2) -> nv; seborrheic keratosis -> bkl; basal cell carcinoma -> bcc;
actinic keratosis -> akiec; dermatofibroma -> df; vascular lesion -> vasc.";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    Synthetic(SyntheticConfig),
    Ham10000 {
        metadata: PathBuf,
        images: PathBuf,
        masks: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label_map: Option<PathBuf>,
    },
    Isic {
        csv: PathBuf,
        images: PathBuf,
        masks: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label_map: Option<PathBuf>,
    },
    Manifest {
        csv: PathBuf,
        /// A file renaming labels before they are read (see [`crate::data::labels::LabelMap`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label_map: Option<PathBuf>,
    },
    Folders {
        dir: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label_map: Option<PathBuf>,
    },
}

impl DataSpec {
    /// The label map file the spec names, if any.
    pub fn label_map(&self) -> Option<&std::path::Path> {
        match self {
            DataSpec::Synthetic(_) => None,
            DataSpec::Ham10000 { label_map, .. }
            | DataSpec::Isic { label_map, .. }
            | DataSpec::Manifest { label_map, .. }
            | DataSpec::Folders { label_map, .. } => label_map.as_deref(),
        }
    }
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec::Synthetic(SyntheticConfig::default())
    }
}

impl FromStr for DataSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let mut path: Option<String> = None;
        let mut options = Vec::new();
        for part in rest.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) => options.push((k.trim().to_string(), v.trim().to_string())),
                None if path.is_none() => path = Some(part.to_string()),
                None => bail!("data spec '{s}': unexpected '{part}' (options are KEY=VALUE)"),
            }
        }
        let take = |key: &str| options.iter().find(|(k, _)| k == key).map(|(_, v)| PathBuf::from(v));
        let allowed = |keys: &[&str]| -> Result<()> {
            for (k, _) in &options {
                if !keys.contains(&k.as_str()) {
                    bail!("data spec '{s}': unknown option '{k}' for {kind} (allowed: {})", keys.join(", "));
                }
            }
            Ok(())
        };
        let need_path = || path.clone().map(PathBuf::from).with_context(|| format!("data spec '{s}': {kind} needs a path, e.g. {kind}:DIR"));
        Ok(match kind {
            "synthetic" => {
                allowed(&["n", "seed", "photos", "size", "hair", "vignette"])?;
                let mut cfg = SyntheticConfig::default();
                for (k, v) in &options {
                    let bad = || format!("data spec '{s}': {k}={v} is not a valid value");
                    match k.as_str() {
                        "n" => cfg.lesions = v.parse().with_context(bad)?,
                        "seed" => cfg.seed = v.parse().with_context(bad)?,
                        "photos" => cfg.max_photos_per_lesion = v.parse().with_context(bad)?,
                        "size" => cfg.size = v.parse().with_context(bad)?,
                        "hair" => cfg.hair_probability = v.parse().with_context(bad)?,
                        "vignette" => cfg.vignette_probability = v.parse().with_context(bad)?,
                        _ => unreachable!(),
                    }
                }
                cfg.validate().with_context(|| format!("data spec '{s}'"))?;
                DataSpec::Synthetic(cfg)
            }
            "ham10000" => {
                allowed(&["images", "masks", "metadata", "label_map"])?;
                let dir = need_path()?;
                let default_masks = dir.join("masks");
                DataSpec::Ham10000 {
                    metadata: take("metadata").unwrap_or_else(|| dir.join("HAM10000_metadata.csv")),
                    images: take("images").unwrap_or_else(|| dir.join("images")),
                    masks: take("masks").or_else(|| default_masks.is_dir().then_some(default_masks)),
                    label_map: take("label_map"),
                }
            }
            "isic" => {
                allowed(&["images", "masks", "label_map"])?;
                DataSpec::Isic {
                    csv: need_path()?,
                    images: take("images").with_context(|| format!("data spec '{s}': isic needs images=DIR"))?,
                    masks: take("masks"),
                    label_map: take("label_map"),
                }
            }
            "manifest" => {
                allowed(&["label_map"])?;
                DataSpec::Manifest { csv: need_path()?, label_map: take("label_map") }
            }
            "folders" => {
                allowed(&["label_map"])?;
                DataSpec::Folders { dir: need_path()?, label_map: take("label_map") }
            }
            other => bail!("data spec '{s}': unknown kind '{other}'.\n{DATA_SPEC_HELP}"),
        })
    }
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSpec::Synthetic(c) => write!(f, "synthetic:n={},seed={},photos={}", c.lesions, c.seed, c.max_photos_per_lesion)?,
            DataSpec::Ham10000 { images, .. } => write!(f, "ham10000:{}", images.parent().unwrap_or(images).display())?,
            DataSpec::Isic { csv, .. } => write!(f, "isic:{}", csv.display())?,
            DataSpec::Manifest { csv, .. } => write!(f, "manifest:{}", csv.display())?,
            DataSpec::Folders { dir, .. } => write!(f, "folders:{}", dir.display())?,
        }
        match self.label_map() {
            Some(m) => write!(f, ",label_map={}", m.display()),
            None => Ok(()),
        }
    }
}
