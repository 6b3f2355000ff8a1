//! Writing outputs through a temporary name and a rename, so an interrupted run never leaves
//! a truncated picture or caption behind.

use std::path::Path;

use image::RgbImage;

use super::error::PreprocessError;

/// Writes `bytes` to `path` atomically ([`sd_core::fs::write_atomic`]: a temporary file in
/// the same folder, synced, then renamed over `path`).
///
/// # Errors
/// [`PreprocessError::Io`] naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PreprocessError> {
    sd_core::fs::write_atomic(path, bytes).map_err(|e| PreprocessError::Io {
        path: e.path,
        source: e.source,
    })
}

/// Encodes `image` as an 8-bit RGB PNG and writes it atomically.
///
/// # Errors
/// [`PreprocessError::Encode`] or [`PreprocessError::Io`] naming `path`.
pub fn write_png(path: &Path, image: &RgbImage) -> Result<(), PreprocessError> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|source| PreprocessError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, &bytes)
}
