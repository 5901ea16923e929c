//! Image representation, file I/O and the shared library of image operations.

pub mod artefacts;
pub mod caption;
mod colour;
mod filter;
mod image;
pub mod io;
pub mod npy;
mod ops;
pub mod phash;
pub mod procedural;
pub mod remedy;
pub mod warp;

pub use self::image::{contact_sheet, to_u8, Image};
pub use colour::{ciede2000, hsv_to_rgb, mean_delta_e, rgb_to_hsv, srgb_to_lab};
pub use ops::{compose_affine, Anchor, ImageOp, PixelValue, StampMode};
pub use warp::BorderFill;
