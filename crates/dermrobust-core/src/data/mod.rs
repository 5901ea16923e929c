//! Datasets: reading records, label schemes, lesion-aware splits, decoded pixels with a cache,
//! class balance, duplicate detection and the data summary.

pub mod balance;
pub mod dataset;
pub mod duplicates;
pub mod imageset;
pub mod labels;
pub mod record;
pub mod sources;
pub mod spec;
pub mod split;
pub mod summary;

pub use dataset::Dataset;
pub use imageset::{default_cache_dir, ImageSet, LoadOptions, LoadReport, Preprocess};
pub use labels::{LabelMap, LabelScheme};
pub use record::{ImageSource, Record};
pub use spec::{DataSpec, DATA_SPEC_HELP};
pub use split::Split;
