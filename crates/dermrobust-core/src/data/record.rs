//! The record of one photograph: the lowest layer of the data model. Readers ([`super::sources`])
//! and the synthetic generator ([`crate::synth`]) both produce records; this module depends on
//! neither.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the pixels of a record come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ImageSource {
    File(PathBuf),
    /// The `photo`-th photograph of synthetic lesion `lesion`.
    Synthetic { lesion: usize, photo: usize },
}

/// One photograph: its id, diagnosis, lesion (group) and files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Canonical diagnosis code (see [`super::labels`]).
    pub dx: String,
    /// The lesion this photograph shows; photographs of one lesion never cross splits.
    pub group: String,
    pub source: ImageSource,
    pub mask: Option<PathBuf>,
    /// `file:line` this record came from, for error messages.
    pub origin: String,
}
