//! The transformation suite of the brittleness audit: named sets of image operations, loaded
//! from TOML or the documented default.
//!
//! Maron et al. 2021 used 11 single transformations (rotation, zoom, brightness at several
//! magnitudes) and 6 stronger combinations, all small enough that a dermatologist still
//! recognises the lesion; their exact magnitudes are in a supplement we do not have, so the
//! default below chooses magnitudes of the same kinds and adds the colour-balance shift of
//! Du-Harpur et al. 2021 (green -10/255) and the gamma of Mishra et al. 2019 (1.2-1.5).

use std::path::Path;

use anyhow::{bail, Context, Result};
use dermrobust_core::imaging::{BorderFill, ImageOp};
use serde::{Deserialize, Serialize};

/// One transformed copy of the test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformSet {
    pub name: String,
    /// `single` or `combined` (Maron's two families), or any label of the user's.
    #[serde(default = "single")]
    pub family: String,
    pub op: ImageOp,
}

fn single() -> String {
    "single".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    #[serde(rename = "set")]
    pub sets: Vec<TransformSet>,
}

fn set(name: &str, family: &str, ops: Vec<ImageOp>) -> TransformSet {
    let op = if ops.len() == 1 { ops.into_iter().next().unwrap() } else { ImageOp::Sequence { ops } };
    TransformSet { name: name.into(), family: family.into(), op }
}

fn rot(d: f32) -> ImageOp {
    ImageOp::Rotate { degrees: d, fill: BorderFill::Reflect }
}
fn zoom(f: f32) -> ImageOp {
    ImageOp::Zoom { factor: f, cx: 0.5, cy: 0.5, fill: BorderFill::Reflect }
}
fn bright(f: f32) -> ImageOp {
    ImageOp::Brightness { factor: f }
}

impl Suite {
    /// The documented default: 11 single transformations and 6 combinations.
    pub fn default_suite() -> Suite {
        let green = ImageOp::ColourBalance { gain: [1.0; 3], offset: [0.0, -10.0 / 255.0, 0.0] };
        Suite {
            sets: vec![
                set("rotate 10", "single", vec![rot(10.0)]),
                set("rotate 45", "single", vec![rot(45.0)]),
                set("rotate 90", "single", vec![rot(90.0)]),
                set("zoom 0.9", "single", vec![zoom(0.9)]),
                set("zoom 1.1", "single", vec![zoom(1.1)]),
                set("zoom 1.2", "single", vec![zoom(1.2)]),
                set("brightness 0.9", "single", vec![bright(0.9)]),
                set("brightness 1.1", "single", vec![bright(1.1)]),
                set("brightness 1.2", "single", vec![bright(1.2)]),
                set("green -10/255", "single", vec![green.clone()]),
                set("gamma 1.3", "single", vec![ImageOp::Gamma { gamma: 1.3 }]),
                set("rotate 30 + zoom 1.2", "combined", vec![rot(30.0), zoom(1.2)]),
                set("rotate 60 + brightness 1.2", "combined", vec![rot(60.0), bright(1.2)]),
                set("zoom 0.85 + brightness 0.85", "combined", vec![zoom(0.85), bright(0.85)]),
                set("rotate 90 + zoom 1.25 + brightness 1.15", "combined", vec![rot(90.0), zoom(1.25), bright(1.15)]),
                set("rotate 135 + zoom 0.9 + gamma 1.3", "combined", vec![rot(135.0), zoom(0.9), ImageOp::Gamma { gamma: 1.3 }]),
                set("rotate 180 + zoom 1.3 + green -10/255", "combined", vec![rot(180.0), zoom(1.3), green]),
            ],
        }
    }

    /// Read a suite from TOML: `[[set]]` tables with `name`, optional `family`, and `op` (an
    /// image operation, e.g. `op = { op = "rotate", degrees = 10 }`).
    pub fn load(path: &Path) -> Result<Suite> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read suite {}", path.display()))?;
        let suite: Suite = toml::from_str(&text).with_context(|| format!("{} is not a valid transformation suite", path.display()))?;
        if suite.sets.is_empty() {
            bail!("suite {} has no [[set]]", path.display());
        }
        for t in &suite.sets {
            t.op.validate().with_context(|| format!("suite {}, set '{}'", path.display(), t.name))?;
        }
        Ok(suite)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }
}
