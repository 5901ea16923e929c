//! The parameters of a synthetic dataset. Kept apart from the generator so that dataset specs
//! ([`crate::data::spec`]) can name a synthetic dataset without depending on the rendering code.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// What to generate: how many lesions, how many photographs each, their size and artefacts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// Number of lesions (each has 1 or more photographs).
    pub lesions: usize,
    pub seed: u64,
    /// Photographs per lesion are drawn from 1..=this (1 gives one photograph per lesion).
    pub max_photos_per_lesion: usize,
    /// Side of the generated square photographs in pixels.
    pub size: usize,
    /// Probability that a photograph has hairs.
    pub hair_probability: f32,
    /// Probability that a photograph shows the dark circular border of a dermoscope.
    pub vignette_probability: f32,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig { lesions: 800, seed: 7, max_photos_per_lesion: 3, size: 96, hair_probability: 0.3, vignette_probability: 0.25 }
    }
}

impl SyntheticConfig {
    pub fn validate(&self) -> Result<()> {
        if self.lesions < 4 {
            bail!("synthetic data needs at least 4 lesions, got {}", self.lesions);
        }
        if self.max_photos_per_lesion == 0 {
            bail!("photos must be at least 1");
        }
        if !(16..=2048).contains(&self.size) {
            bail!("synthetic image size must be between 16 and 2048 pixels, got {}", self.size);
        }
        if !(0.0..=1.0).contains(&self.hair_probability) || !(0.0..=1.0).contains(&self.vignette_probability) {
            bail!("hair and vignette are probabilities between 0 and 1");
        }
        Ok(())
    }
}
