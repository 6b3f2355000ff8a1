//! Opening a picture as A1111 does: `Image.open`, `ImageOps.exif_transpose`, `convert("RGB")`.
//!
//! The loader itself is [`sd_core::image_file`], the one every program uses (img2img's init
//! image and mask too): EXIF orientation applied, the pixel cap checked against the header,
//! truncated files refused, Pillow's RGB conversions. These functions keep preprocessing's and
//! training's error type ([`PreprocessError`]).

use std::path::Path;

use image::{DynamicImage, RgbImage};
use sd_core::image_file;

use super::error::PreprocessError;

/// Decodes `path` into upright 8-bit RGB, refusing pictures over
/// [`super::options::DEFAULT_MAX_PIXELS`] (see [`load_rgb_limited`]).
///
/// # Errors
/// As [`load_rgb_limited`].
pub fn load_rgb(path: &Path) -> Result<RgbImage, PreprocessError> {
    load_rgb_limited(path, super::options::DEFAULT_MAX_PIXELS)
}

/// Decodes `path` into upright 8-bit RGB; a picture whose header declares more than
/// `max_pixels` pixels is refused before anything is allocated for it.
///
/// # Errors
/// [`PreprocessError::Io`] when the file cannot be opened, [`PreprocessError::TooLarge`] when
/// the header declares more than `max_pixels`, [`PreprocessError::Truncated`] for a file cut
/// short, [`PreprocessError::Decode`] when the format is unknown or the data corrupt,
/// [`PreprocessError::UnsupportedColor`] for colour types without an RGB conversion (see
/// [`sd_core::image_file::ImageFileError`]).
pub fn load_rgb_limited(path: &Path, max_pixels: u64) -> Result<RgbImage, PreprocessError> {
    let image = open_limited(path, max_pixels)?;
    to_rgb8(image, path)
}

/// Decodes `path` (upright, in its own colour type): [`sd_core::image_file::open_limited`].
///
/// # Errors
/// As [`load_rgb_limited`], without the colour conversion.
pub fn open_limited(path: &Path, max_pixels: u64) -> Result<DynamicImage, PreprocessError> {
    Ok(image_file::open_limited(path, max_pixels)?)
}

/// [`open_limited`] on a picture already in memory; `path` only names it in errors.
///
/// # Errors
/// As [`open_limited`].
pub fn open_limited_bytes(
    bytes: &[u8],
    path: &Path,
    max_pixels: u64,
) -> Result<DynamicImage, PreprocessError> {
    Ok(image_file::open_limited_bytes(bytes, path, max_pixels)?)
}

/// `convert("RGB")`: [`sd_core::image_file::to_rgb8`].
///
/// # Errors
/// [`PreprocessError::UnsupportedColor`] for a colour type without a conversion.
pub fn to_rgb8(image: DynamicImage, path: &Path) -> Result<RgbImage, PreprocessError> {
    Ok(image_file::to_rgb8(image, path)?)
}
