//! The one picture loader: every picture a user hands the crates (img2img's init image and
//! mask, preprocessing's photos, training's data set) is opened here, as A1111 opens it:
//! `Image.open`, `ImageOps.exif_transpose`, and `convert("RGB")` where RGB is wanted.
//!
//! - **PNG, JPEG, WebP, BMP, TIFF and GIF** (the formats A1111 users hand PIL; the `image`
//!   crate's features enabled for the workspace), recognised from the content (the extension
//!   only when the content says nothing). A GIF or an animated WebP gives its first frame, as
//!   `Image.open` does.
//! - **The EXIF orientation** is applied, so a phone photo stored sideways comes out upright.
//!   A missing or unreadable orientation tag means "upright", as in Pillow.
//! - **The pixel cap** ([`crate::limits::Limits::max_image_pixels`]) is checked against the
//!   header before anything is allocated for the pixels (a 20000×20000 PNG is a few hundred KB
//!   on disk and 1.2 GB decoded), and the decoder runs under
//!   [`crate::limits::Limits::image_decoder_limits`].
//! - **Truncation is refused**: a JPEG cut short is [`ImageFileError::Truncated`] (the `image`
//!   crate would fill its missing rows with grey; Pillow raises "image file is truncated"); a
//!   cut PNG fails in its decoder ([`ImageFileError::Decode`]).
//!
//! [`to_rgb8`] follows Pillow's conversions: alpha is dropped (Pillow's `RGBA → RGB` copies
//! the colour channels; it does not composite on a background), grey is replicated, a GIF's
//! palette is looked up (the decoder gives RGBA). Two deliberate differences: 16-bit samples
//! are scaled to 8 bits (`round(v / 257)`), where Pillow's `I;16 → RGB` clips every value
//! above 255 to white, which makes A1111 turn 16-bit greyscale PNGs into blank white pictures;
//! and 32-bit float TIFFs are read as 0..1 (scaled by 255, clamped, NaN as white), where
//! Pillow's `F → RGB` clips 0..255 and so makes them black.
//!
//! ```no_run
//! let photo = sd_core::image_file::open_rgb("photo.jpg".as_ref())?;
//! println!("{}×{} upright", photo.width(), photo.height());
//! # Ok::<(), sd_core::image_file::ImageFileError>(())
//! ```

mod jpeg_end;

use std::io::{BufRead, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::limits::{DEFAULT_MAX_IMAGE_PIXELS, Limits};

/// Why a picture file could not be opened; every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageFileError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a picture the `image` crate can decode (unknown format, corrupt data,
    /// or over the decoder's memory limits).
    #[error("{}: cannot decode picture: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The header declares more pixels than the cap allows; nothing was decoded.
    #[error(
        "{}: a {width}×{height} picture is over the limit of {limit} pixels (`Limits::max_image_pixels`)",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The cap.
        limit: u64,
    },
    /// The file ends before its picture does (Pillow: "image file is truncated").
    #[error("{}: image file is truncated (the {format} data ends before its end marker)", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The format (`"JPEG"`).
        format: &'static str,
    },
    /// The picture decoded to a colour type that cannot be converted to RGB.
    #[error("{}: unsupported colour type {color}", path.display())]
    UnsupportedColor {
        /// The file.
        path: PathBuf,
        /// The colour type, as the decoder names it.
        color: String,
    },
}

/// [`open_limited`] under the default pixel cap, converted to 8-bit RGB ([`to_rgb8`]).
///
/// # Errors
/// As [`open_limited`] and [`to_rgb8`].
pub fn open_rgb(path: &Path) -> Result<RgbImage, ImageFileError> {
    to_rgb8(open(path)?, path)
}

/// [`open_limited`] under the default pixel cap ([`DEFAULT_MAX_IMAGE_PIXELS`]).
///
/// # Errors
/// As [`open_limited`].
pub fn open(path: &Path) -> Result<DynamicImage, ImageFileError> {
    open_limited(path, DEFAULT_MAX_IMAGE_PIXELS)
}

/// Decodes `path` upright, in its own colour type, refusing from its header a picture of
/// more than `max_pixels` pixels and refusing a truncated file.
///
/// # Errors
/// [`ImageFileError::Io`] when the file cannot be read, [`ImageFileError::TooLarge`] over the
/// cap, [`ImageFileError::Truncated`] for a JPEG that ends before its EOI marker,
/// [`ImageFileError::Decode`] for an unknown format, corrupt data, or a decoder that would
/// allocate more than 8 bytes per allowed pixel.
pub fn open_limited(path: &Path, max_pixels: u64) -> Result<DynamicImage, ImageFileError> {
    let io = |source| ImageFileError::Io {
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
) -> Result<DynamicImage, ImageFileError> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImageFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    decode_limited(reader, path, max_pixels)
}

/// The truncation check, the header check, the decoder limits, the decoding and the EXIF
/// orientation.
fn decode_limited<R: BufRead + Seek>(
    reader: ImageReader<R>,
    path: &Path,
    max_pixels: u64,
) -> Result<DynamicImage, ImageFileError> {
    let reader = refuse_truncated(reader, path)?;
    let limits = Limits {
        max_image_pixels: max_pixels,
        ..Limits::default()
    };
    let decode = |source| ImageFileError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mut decoder = reader.into_decoder().map_err(decode)?;
    let (width, height) = decoder.dimensions();
    if limits.check_image_pixels(width, height).is_err() {
        return Err(ImageFileError::TooLarge {
            path: path.to_path_buf(),
            width: u64::from(width),
            height: u64::from(height),
            limit: max_pixels,
        });
    }
    decoder
        .set_limits(limits.image_decoder_limits())
        .map_err(decode)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// A JPEG is walked to its EOI marker before decoding (see `jpeg_end`); other formats pass.
fn refuse_truncated<R: BufRead + Seek>(
    reader: ImageReader<R>,
    path: &Path,
) -> Result<ImageReader<R>, ImageFileError> {
    if reader.format() != Some(ImageFormat::Jpeg) {
        return Ok(reader);
    }
    let io = |source| ImageFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut inner = reader.into_inner();
    let start = inner.stream_position().map_err(io)?;
    if jpeg_end::is_cut_short(&mut inner).map_err(io)? {
        return Err(ImageFileError::Truncated {
            path: path.to_path_buf(),
            format: "JPEG",
        });
    }
    inner.seek(SeekFrom::Start(start)).map_err(io)?;
    Ok(ImageReader::with_format(inner, ImageFormat::Jpeg))
}

/// `convert("RGB")` with the conversions described in the module docs.
///
/// # Errors
/// [`ImageFileError::UnsupportedColor`] for a colour type without a conversion.
pub fn to_rgb8(image: DynamicImage, path: &Path) -> Result<RgbImage, ImageFileError> {
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
        other => Err(ImageFileError::UnsupportedColor {
            path: path.to_path_buf(),
            color: format!("{:?}", other.color()),
        }),
    }
}
