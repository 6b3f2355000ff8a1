//! Errors of the preprocessing step.

use std::path::PathBuf;

/// Why preprocessing, or one picture of it, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreprocessError {
    /// Reading or writing a file or folder failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The input and output folders are the same (A1111 refuses this too).
    #[error("input and output are the same folder: {}", path.display())]
    SameDirectory {
        /// The folder.
        path: PathBuf,
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
    /// The picture (from its header, before decoding) or a processing step would need more
    /// than the allowed number of pixels (e.g. a 1×20000 strip covering a 512×512 target needs
    /// 512×10 240 000 pixels).
    #[error("{}: processing needs a {width}×{height} picture, over the limit of {limit} pixels", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width of the source or intermediate picture.
        width: u64,
        /// Height of the source or intermediate picture.
        height: u64,
        /// [`super::PreprocessOptions::max_pixels`].
        limit: u64,
    },
    /// A caption sidecar is not valid UTF-8.
    #[error("{}: caption file is not UTF-8", path.display())]
    CaptionNotUtf8 {
        /// The `.txt` file.
        path: PathBuf,
    },
    /// Encoding an output PNG failed.
    #[error("{}: cannot encode PNG: {source}", path.display())]
    Encode {
        /// The output file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// An option is out of its range.
    #[error("invalid {name} {value:?}: expected {expected}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

/// The shared loader's errors, as preprocessing has always reported them.
impl From<sd_core::image_file::ImageFileError> for PreprocessError {
    fn from(e: sd_core::image_file::ImageFileError) -> Self {
        use sd_core::image_file::ImageFileError as E;
        match e {
            E::Io { path, source } => Self::Io { path, source },
            E::Decode { path, source } => Self::Decode { path, source },
            E::TooLarge {
                path,
                width,
                height,
                limit,
            } => Self::TooLarge {
                path,
                width,
                height,
                limit,
            },
            E::Truncated { path, format } => Self::Truncated { path, format },
            E::UnsupportedColor { path, color } => Self::UnsupportedColor { path, color },
            // A variant added later: its message, under the decoder's error.
            other => Self::Decode {
                path: PathBuf::new(),
                source: image::ImageError::IoError(std::io::Error::other(other)),
            },
        }
    }
}
