//! Derivative-free optimisation: the differential-evolution optimiser that every black-box
//! attack shares (few-pixel, colour balance, rotation + translation).

pub mod de;

pub use de::{minimise, DeConfig, DeResult, DeStop};
