//! `dermrobust data ...`: summary, split, synth, duplicates.

use std::path::PathBuf;

use anyhow::{bail, Result};
use dermrobust_core::data::duplicates::cross_part_duplicates;
use dermrobust_core::data::summary::summarise;
use dermrobust_core::data::{default_cache_dir, DataSpec, Dataset, ImageSet, LabelScheme, LoadOptions, Preprocess, Split};
use dermrobust_core::imaging::phash::perceptual_hash;
use dermrobust_core::report::write_json;
use rayon::prelude::*;

#[derive(clap::Args)]
pub struct DataArgs {
    /// Dataset (syntax below).
    #[arg(long, default_value = "synthetic")]
    pub data: DataSpec,
    /// Label scheme: native, ham7, mel-vs-nevus, mel-vs-rest.
    #[arg(long, default_value = "native")]
    pub labels: LabelScheme,
}

/// A saved split, or a fresh lesion-aware 70/15/15 split.
#[derive(clap::Args)]
pub struct SplitChoice {
    /// Use this split file instead of a fresh split.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Seed of the fresh lesion-aware 70/15/15 split.
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
}

impl SplitChoice {
    pub fn resolve(&self, ds: &Dataset) -> Result<Split> {
        match &self.split {
            Some(p) => Split::load(p),
            None => Split::holdout(ds, [0.7, 0.15, 0.15], self.split_seed),
        }
    }
}

#[derive(clap::Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub split: SplitChoice,
    /// Also write the summary as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn summary(a: &SummaryArgs, _quiet: bool) -> Result<()> {
    let ds = Dataset::open(&a.data.data, a.data.labels)?;
    let split = a.split.resolve(&ds)?;
    let s = summarise(&ds, Some(&split))?;
    print!("{}", s.to_text());
    if let Some(p) = &a.json {
        write_json(p, &s)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write the split (JSON).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Validation and test fractions (the rest trains).
    #[arg(long, default_value_t = 0.15)]
    pub val_fraction: f64,
    #[arg(long, default_value_t = 0.15)]
    pub test_fraction: f64,
    /// Make K lesion-aware stratified folds instead.
    #[arg(long)]
    pub kfold: Option<usize>,
}

pub fn split(a: &SplitArgs) -> Result<()> {
    let ds = Dataset::open(&a.data.data, a.data.labels)?;
    let split = match a.kfold {
        Some(k) => Split::kfold(&ds, k, a.seed)?,
        None => Split::holdout(&ds, [1.0 - a.val_fraction - a.test_fraction, a.val_fraction, a.test_fraction], a.seed)?,
    };
    let overlap = split.group_overlap(&ds);
    if !overlap.is_empty() {
        bail!("internal error: {} lesions cross parts", overlap.len());
    }
    split.save(&a.out)?;
    print!("{}", summarise(&ds, Some(&split))?.to_text());
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Synthetic dataset to write, e.g. synthetic:n=200,seed=3,size=128.
    #[arg(long, default_value = "synthetic:n=100")]
    pub data: DataSpec,
    /// Output folder: images/, masks/ and manifest.csv.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn synth(a: &SynthArgs, quiet: bool) -> Result<()> {
    let DataSpec::Synthetic(cfg) = &a.data else { bail!("--data must be a synthetic spec, e.g. synthetic:n=200") };
    let n = dermrobust_core::synth::write_dataset(cfg, &a.out, quiet)?;
    println!("wrote {n} photographs of {} lesions to {} (read them back with --data manifest:{}/manifest.csv)", cfg.lesions, a.out.display(), a.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct DuplicatesArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub split: SplitChoice,
    /// Largest Hamming distance (of 64 bits) counted as a near duplicate.
    #[arg(long, default_value_t = 4)]
    pub max_distance: u32,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn duplicates(a: &DuplicatesArgs, quiet: bool) -> Result<()> {
    let ds = Dataset::open(&a.data.data, a.data.labels)?;
    let split = a.split.resolve(&ds)?;
    let opts = LoadOptions { cache_dir: Some(default_cache_dir()), quiet, ..Default::default() };
    let (set, _) = ImageSet::load(&ds, &Preprocess { size: 64, centre_crop: None }, &opts)?;
    let items: Vec<(String, usize, u64, u64)> = (0..set.len())
        .into_par_iter()
        .map(|i| {
            let part = split.assignment.get(&set.ids[i]).copied().unwrap_or(usize::MAX);
            let img = set.image(i);
            let exact = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                set.pixels(i).hash(&mut h);
                h.finish()
            };
            (set.ids[i].clone(), part, perceptual_hash(&img), exact)
        })
        .collect();
    if a.max_distance > 64 {
        bail!("--max-distance counts differing bits of a 64-bit hash: at most 64, got {}", a.max_distance);
    }
    let pairs = cross_part_duplicates(&items, a.max_distance);
    println!("{} image pairs across parts within Hamming distance {} ({} exact)", pairs.len(), a.max_distance, pairs.iter().filter(|p| p.exact).count());
    for p in pairs.iter().take(20) {
        println!("  {} ~ {}  distance {}{}", p.a, p.b, p.distance, if p.exact { " (exact)" } else { "" });
    }
    if let Some(path) = &a.json {
        write_json(path, &pairs)?;
    }
    Ok(())
}
