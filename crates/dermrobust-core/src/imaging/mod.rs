//! Image representation, file I/O and the shared library of image operations.

mod colour;
mod filter;
mod image;
pub mod io;
pub mod npy;
mod ops;
pub mod phash;
pub mod procedural;
pub mod warp;

pub use self::image::{contact_sheet, to_u8, Image};
pub use colour::{hsv_to_rgb, rgb_to_hsv};
pub use ops::{compose_affine, Anchor, ImageOp, PixelValue, StampMode};
pub use warp::BorderFill;
