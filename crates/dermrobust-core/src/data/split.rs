//! Group-aware (lesion-aware) stratified splits and k-fold, seeded, saved and reloadable.
//!
//! All photographs of one lesion go to the same part, so a model is never tested on a second
//! photograph of a lesion it was trained on. Stratification is by the lesion's (majority) class.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::dataset::Dataset;

pub const TRAIN: &str = "train";
pub const VALIDATION: &str = "val";
pub const TEST: &str = "test";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub seed: u64,
    /// `holdout` (train/val/test) or `kfold`.
    pub method: String,
    /// Names of the parts (`train`, `val`, `test` or `fold0`..).
    pub parts: Vec<String>,
    /// Image id -> part index.
    pub assignment: BTreeMap<String, usize>,
}

impl Split {
    /// Train/validation/test split with the given fractions (they must sum to 1).
    pub fn holdout(ds: &Dataset, fractions: [f64; 3], seed: u64) -> Result<Split> {
        let sum: f64 = fractions.iter().sum();
        if (sum - 1.0).abs() > 1e-6 || fractions.iter().any(|f| *f < 0.0) {
            bail!("split fractions {fractions:?} must be non-negative and sum to 1");
        }
        let parts = vec![TRAIN.to_string(), VALIDATION.to_string(), TEST.to_string()];
        Ok(Split { seed, method: "holdout".into(), assignment: assign(ds, &fractions, seed), parts })
    }

    /// `k` folds of (nearly) equal size.
    pub fn kfold(ds: &Dataset, k: usize, seed: u64) -> Result<Split> {
        if k < 2 {
            bail!("k-fold needs k >= 2, got {k}");
        }
        let fractions = vec![1.0 / k as f64; k];
        let parts = (0..k).map(|i| format!("fold{i}")).collect();
        Ok(Split { seed, method: "kfold".into(), assignment: assign(ds, &fractions, seed), parts })
    }

    pub fn part_index(&self, name: &str) -> Result<usize> {
        self.parts.iter().position(|p| p == name).with_context(|| format!("split has no part '{name}' (it has {})", self.parts.join(", ")))
    }

    /// Indices into `ds` of the records in part `name`. Every record of `ds` must be assigned.
    pub fn indices(&self, ds: &Dataset, name: &str) -> Result<Vec<usize>> {
        let p = self.part_index(name)?;
        self.indices_where(ds, |q| q == p)
    }

    /// For fold `k` of a k-fold split: (indices of the other folds, indices of fold `k`).
    pub fn fold(&self, ds: &Dataset, k: usize) -> Result<(Vec<usize>, Vec<usize>)> {
        if k >= self.parts.len() {
            bail!("fold {k} does not exist (split has {} parts)", self.parts.len());
        }
        Ok((self.indices_where(ds, |q| q != k)?, self.indices_where(ds, |q| q == k)?))
    }

    fn indices_where(&self, ds: &Dataset, keep: impl Fn(usize) -> bool) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for (i, r) in ds.records.iter().enumerate() {
            let part = *self.assignment.get(&r.id).with_context(|| format!("image '{}' ({}) is not in the split file; it was made for other data", r.id, r.origin))?;
            if keep(part) {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Lesions (groups) whose photographs sit in more than one part. Zero for a valid split.
    pub fn group_overlap(&self, ds: &Dataset) -> Vec<String> {
        let mut parts_of: HashMap<&str, usize> = HashMap::new();
        let mut crossing = Vec::new();
        for r in &ds.records {
            if let Some(&p) = self.assignment.get(&r.id) {
                match parts_of.get(r.group.as_str()) {
                    Some(&q) if q != p => crossing.push(r.group.clone()),
                    Some(_) => {}
                    None => {
                        parts_of.insert(&r.group, p);
                    }
                }
            }
        }
        crossing.sort();
        crossing.dedup();
        crossing
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::report::write_json(path, self)
    }

    pub fn load(path: &Path) -> Result<Split> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read split file {}", path.display()))?;
        let split: Split = serde_json::from_str(&text).with_context(|| format!("split file {} is not a valid split", path.display()))?;
        if let Some((id, p)) = split.assignment.iter().find(|(_, p)| **p >= split.parts.len()) {
            bail!("split file {}: image '{id}' is assigned to part {p}, which does not exist", path.display());
        }
        Ok(split)
    }

    /// Load `path` if it exists (checking it against `ds`), otherwise make a holdout split and save it.
    pub fn load_or_create(path: &Path, ds: &Dataset, fractions: [f64; 3], seed: u64) -> Result<Split> {
        let split = if path.exists() {
            Split::load(path)?
        } else {
            let s = Split::holdout(ds, fractions, seed)?;
            s.save(path)?;
            s
        };
        let overlap = split.group_overlap(ds);
        if !overlap.is_empty() {
            bail!("split {} puts photographs of {} lesions in several parts (e.g. {})", path.display(), overlap.len(), overlap[0]);
        }
        Ok(split)
    }
}

/// Assign every group to a part: per class stratum, groups in seeded random order go to the part
/// furthest below its target share (relative to that target). The order is random, not largest
/// first, so lesions with several photographs spread over the parts in proportion instead of
/// filling the largest part.
fn assign(ds: &Dataset, fractions: &[f64], seed: u64) -> BTreeMap<String, usize> {
    // group -> (members, label counts)
    let mut groups: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, r) in ds.records.iter().enumerate() {
        let e = groups.entry(r.group.as_str()).or_insert_with(|| (Vec::new(), vec![0; ds.num_classes()]));
        e.0.push(i);
        e.1[ds.labels[i]] += 1;
    }
    let mut strata: Vec<Vec<(&str, usize)>> = vec![Vec::new(); ds.num_classes()];
    for (g, (members, counts)) in &groups {
        let majority = (0..counts.len()).max_by_key(|&c| (counts[c], std::cmp::Reverse(c))).unwrap_or(0);
        strata[majority].push((g, members.len()));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut assignment = BTreeMap::new();
    for stratum in &mut strata {
        stratum.shuffle(&mut rng);
        let total: usize = stratum.iter().map(|(_, n)| n).sum();
        let mut filled = vec![0usize; fractions.len()];
        for (g, n) in stratum.iter() {
            // Relative deficit: how far each part is below its target, as a share of the target.
            let deficit = |p: usize| if fractions[p] > 0.0 { 1.0 - filled[p] as f64 / (fractions[p] * total as f64) } else { f64::MIN };
            let part = (0..fractions.len()).max_by(|&a, &b| deficit(a).partial_cmp(&deficit(b)).unwrap().then(b.cmp(&a))).unwrap();
            filled[part] += n;
            for &i in &groups[g].0 {
                assignment.insert(ds.records[i].id.clone(), part);
            }
        }
    }
    assignment
}
