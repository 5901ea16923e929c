//! `dermrobust data summary`: counts per class, lesions, lesions with several photographs, split
//! sizes and the check that no lesion crosses parts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::split::Split;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClassCount {
    pub class: String,
    pub images: usize,
    pub lesions: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartSummary {
    pub name: String,
    pub images: usize,
    pub lesions: usize,
    /// Images per class, in class order.
    pub class_images: Vec<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SplitSummary {
    pub method: String,
    pub seed: u64,
    pub parts: Vec<PartSummary>,
    /// Lesions with photographs in more than one part; must be 0.
    pub lesions_crossing_parts: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataSummary {
    pub dataset: String,
    pub label_scheme: String,
    pub images: usize,
    pub lesions: usize,
    pub lesions_with_several_photographs: usize,
    pub images_of_lesions_with_several_photographs: usize,
    pub images_with_masks: usize,
    pub classes: Vec<ClassCount>,
    pub split: Option<SplitSummary>,
}

pub fn summarise(ds: &Dataset, split: Option<&Split>) -> anyhow::Result<DataSummary> {
    let mut photos_per_lesion: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &ds.records {
        *photos_per_lesion.entry(&r.group).or_default() += 1;
    }
    let multi: Vec<usize> = photos_per_lesion.values().copied().filter(|&n| n > 1).collect();
    let counts = ds.class_counts();
    let classes = ds
        .classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let lesions: BTreeSet<&str> = ds.records.iter().zip(&ds.labels).filter(|(_, l)| **l == c).map(|(r, _)| r.group.as_str()).collect();
            ClassCount { class: name.clone(), images: counts[c], lesions: lesions.len() }
        })
        .collect();
    let split = match split {
        None => None,
        Some(s) => {
            let mut parts = Vec::new();
            for name in &s.parts {
                let idx = s.indices(ds, name)?;
                let lesions: BTreeSet<&str> = idx.iter().map(|&i| ds.records[i].group.as_str()).collect();
                let labels: Vec<usize> = idx.iter().map(|&i| ds.labels[i]).collect();
                parts.push(PartSummary {
                    name: name.clone(),
                    images: idx.len(),
                    lesions: lesions.len(),
                    class_images: super::balance::class_counts(&labels, ds.num_classes()),
                });
            }
            Some(SplitSummary { method: s.method.clone(), seed: s.seed, parts, lesions_crossing_parts: s.group_overlap(ds).len() })
        }
    };
    Ok(DataSummary {
        dataset: ds.spec.to_string(),
        label_scheme: ds.scheme.to_string(),
        images: ds.len(),
        lesions: photos_per_lesion.len(),
        lesions_with_several_photographs: multi.len(),
        images_of_lesions_with_several_photographs: multi.iter().sum(),
        images_with_masks: ds.records.iter().filter(|r| r.mask.is_some()).count(),
        classes,
        split,
    })
}

impl DataSummary {
    /// A plain-text table for the terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "dataset        {}", self.dataset);
        let _ = writeln!(s, "label scheme   {}", self.label_scheme);
        let _ = writeln!(s, "images         {}", self.images);
        let _ = writeln!(s, "lesions        {}", self.lesions);
        let _ = writeln!(
            s,
            "lesions with several photographs  {} ({} images)",
            self.lesions_with_several_photographs, self.images_of_lesions_with_several_photographs
        );
        let _ = writeln!(s, "images with masks  {}", self.images_with_masks);
        let _ = writeln!(s, "\n{:<10} {:>8} {:>8} {:>7}", "class", "images", "lesions", "share");
        for c in &self.classes {
            let _ = writeln!(s, "{:<10} {:>8} {:>8} {:>6.1}%", c.class, c.images, c.lesions, 100.0 * c.images as f64 / self.images as f64);
        }
        if let Some(split) = &self.split {
            let _ = writeln!(s, "\nsplit ({}, seed {})", split.method, split.seed);
            let header: Vec<String> = self.classes.iter().map(|c| format!("{:>7}", c.class)).collect();
            let _ = writeln!(s, "{:<8} {:>8} {:>8} {}", "part", "images", "lesions", header.join(""));
            for p in &split.parts {
                let per: Vec<String> = p.class_images.iter().map(|n| format!("{n:>7}")).collect();
                let _ = writeln!(s, "{:<8} {:>8} {:>8} {}", p.name, p.images, p.lesions, per.join(""));
            }
            let verdict = if split.lesions_crossing_parts == 0 { "OK" } else { "LEAK" };
            let _ = writeln!(s, "lesions in more than one part: {} ({verdict})", split.lesions_crossing_parts);
        }
        s
    }
}
