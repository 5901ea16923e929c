//! A labelled dataset: records with class indices under one label scheme.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::labels::LabelScheme;
use super::record::Record;
use super::sources::read_records;
use super::spec::DataSpec;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dataset {
    pub spec: DataSpec,
    pub scheme: LabelScheme,
    pub classes: Vec<String>,
    pub records: Vec<Record>,
    /// Class index of each record.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Read a dataset and label it. Records the scheme leaves out (e.g. keratoses under
    /// mel-vs-nevus) are dropped; an unknown diagnosis or an empty class is an error.
    pub fn open(spec: &DataSpec, scheme: LabelScheme) -> Result<Self> {
        let all = read_records(spec)?;
        let present: Vec<String> = all.iter().map(|r| r.dx.clone()).collect();
        let classes = scheme.classes(&present);
        let mut records = Vec::with_capacity(all.len());
        let mut labels = Vec::with_capacity(all.len());
        for r in all {
            match scheme.class_of(&r.dx, &classes) {
                Ok(Some(label)) => {
                    records.push(r);
                    labels.push(label);
                }
                Ok(None) => {}
                Err(msg) => bail!("{}: {msg}", r.origin),
            }
        }
        let ds = Dataset { spec: spec.clone(), scheme, classes, records, labels };
        ds.check_classes()?;
        Ok(ds)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    pub fn class_counts(&self) -> Vec<usize> {
        super::balance::class_counts(&self.labels, self.num_classes())
    }

    /// The same dataset restricted to `indices` (in that order).
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            spec: self.spec.clone(),
            scheme: self.scheme,
            classes: self.classes.clone(),
            records: indices.iter().map(|&i| self.records[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    fn check_classes(&self) -> Result<()> {
        if self.records.is_empty() {
            bail!("dataset {} has no images under the label scheme '{}'", self.spec, self.scheme);
        }
        let counts = self.class_counts();
        let empty: Vec<&str> = self.classes.iter().zip(&counts).filter(|(_, n)| **n == 0).map(|(c, _)| c.as_str()).collect();
        if !empty.is_empty() {
            bail!(
                "dataset {} has no images of class {} under the label scheme '{}' (choose another --labels scheme)",
                self.spec,
                empty.join(", "),
                self.scheme
            );
        }
        Ok(())
    }
}
