//! Report writing shared by every command: atomic files, JSON/CSV, plots and the HTML report.

mod files;
pub mod html;
pub mod plots;

pub use files::{atomic_write, read_json, write_csv, write_json, write_table};
