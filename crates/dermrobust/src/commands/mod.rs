//! The implementation of each command-line command (the CLI in `main.rs` only parses).

pub mod audit;
pub mod bench;
pub mod data;
pub mod demo;
pub mod evaluate;
pub mod experiment;
pub mod lr_find;
pub mod predict;
pub mod train;
