//! Opening a picture as A1111 does: `Image.open`, `ImageOps.exif_transpose`, `convert("RGB")`.
//!
//! Any format the `image` crate decodes with the features it is built with; the EXIF
//! orientation is applied; the result is 8-bit RGB. Conversions follow Pillow's: alpha is
//! dropped (Pillow's `RGBA → RGB` copies the colour channels and ignores alpha; it does not
//! composite on a background), grey is replicated. One deliberate difference: 16-bit samples
//! are scaled to 8 bits (`round(v / 257)`), where Pillow's `I;16 → RGB` clips every value above
//! 255 to white, which makes A1111 turn 16-bit greyscale PNGs into blank white pictures.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

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
/// `max_pixels` pixels is refused before anything is allocated for it (a 20000×20000 PNG is a
/// few hundred KB on disk and 1.2 GB decoded).
///
/// # Errors
/// [`PreprocessError::Io`] when the file cannot be opened, [`PreprocessError::TooLarge`] when
/// the header declares more than `max_pixels`, [`PreprocessError::Decode`] when the format is
/// unknown, the data is corrupt or the decoder would allocate more than 8 bytes per allowed
/// pixel ([`sd_core::limits::Limits::image_decoder_limits`]),
/// [`PreprocessError::UnsupportedColor`] for colour types the decoder reports but cannot
/// convert (e.g. CMYK where the decoder has no conversion).
pub fn load_rgb_limited(path: &Path, max_pixels: u64) -> Result<RgbImage, PreprocessError> {
    let image = open_limited(path, max_pixels)?;
    to_rgb8(image, path)
}

/// Decodes `path` (upright, in its own colour type), refusing from its header a picture of
/// more than `max_pixels` pixels, as [`load_rgb_limited`].
///
/// # Errors
/// As [`load_rgb_limited`], without the colour conversion.
pub fn open_limited(path: &Path, max_pixels: u64) -> Result<DynamicImage, PreprocessError> {
    let io = |source| PreprocessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?;
    decode_limited(reader, path, max_pixels)
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
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| PreprocessError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    decode_limited(reader, path, max_pixels)
}

/// The header check, the decoder limits, the decoding and the EXIF orientation.
fn decode_limited<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    path: &Path,
    max_pixels: u64,
) -> Result<DynamicImage, PreprocessError> {
    let mut limits = sd_core::limits::Limits::default();
    limits.max_image_pixels = max_pixels;
    let decode = |source| PreprocessError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mut decoder = reader.into_decoder().map_err(decode)?;
    let (width, height) = decoder.dimensions();
    if limits.check_image_pixels(width, height).is_err() {
        return Err(PreprocessError::TooLarge {
            path: path.to_path_buf(),
            width: u64::from(width),
            height: u64::from(height),
            limit: max_pixels,
        });
    }
    decoder
        .set_limits(limits.image_decoder_limits())
        .map_err(decode)?;
    // A missing or unreadable orientation tag means "upright", as in Pillow.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// `convert("RGB")` with the conversions described in the module docs.
pub fn to_rgb8(image: DynamicImage, path: &Path) -> Result<RgbImage, PreprocessError> {
    match image {
        DynamicImage::ImageRgb8(rgb) => Ok(rgb),
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgba8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_)
        | DynamicImage::ImageRgb32F(_)
        | DynamicImage::ImageRgba32F(_) => Ok(image.to_rgb8()),
        other => Err(PreprocessError::UnsupportedColor {
            path: path.to_path_buf(),
            color: format!("{:?}", other.color()),
        }),
    }
}
