//! The errors of reading and writing infotexts in image files.

use std::path::PathBuf;

/// What went wrong reading or writing an image's generation parameters. Parsing an infotext
/// itself never fails (like A1111, unreadable text is prompt).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InfotextError {
    /// Reading a file failed (or, through `sd-core`'s `infotext::write_png_rgb8`, writing one).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An error inside the named file.
    #[error("{path}: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What was wrong with its contents.
        source: Box<InfotextError>,
    },
    /// The bytes do not start with the PNG signature.
    #[error("not a PNG file (the 8-byte PNG signature is missing)")]
    NotPng,
    /// A chunk runs past the end of the data.
    #[error("truncated PNG: chunk `{chunk}` at byte {offset} runs past the end of the file")]
    Truncated {
        /// The chunk type (or `?` where even its header is cut off).
        chunk: String,
        /// Where the chunk starts.
        offset: usize,
    },
    /// A text chunk's CRC does not match its contents (PIL refuses such a file too).
    #[error("broken PNG: bad CRC in chunk `{chunk}` at byte {offset}")]
    BadCrc {
        /// The chunk type.
        chunk: String,
        /// Where the chunk starts.
        offset: usize,
    },
    /// A zTXt chunk names a compression method other than 0 (zlib).
    #[error("unknown compression method {method} in zTXt chunk at byte {offset}")]
    UnknownCompression {
        /// The method byte.
        method: u8,
        /// Where the chunk starts.
        offset: usize,
    },
    /// A compressed text chunk inflates beyond the limit.
    #[error("text chunk `{keyword}` decompresses to more than {limit} bytes")]
    TextTooLarge {
        /// The chunk's keyword.
        keyword: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// A text chunk keyword PNG cannot store: empty, over 79 bytes, holding a NUL or a
    /// character outside Latin-1.
    #[error("invalid PNG text keyword {keyword:?}: must be 1 to 79 Latin-1 characters without NUL")]
    InvalidKeyword {
        /// The keyword.
        keyword: String,
    },
    /// The pixel buffer does not hold `width * height * 3` bytes, or a side is zero.
    #[error("RGB8 image {width}x{height} needs {expected} bytes, got {actual}")]
    PixelBuffer {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `width * height * 3`.
        expected: usize,
        /// The buffer's length.
        actual: usize,
    },
    /// The PNG has no IDAT chunk to put text chunks before.
    #[error("PNG has no IDAT chunk")]
    NoImageData,
    /// The PNG encoder failed.
    #[error("encoding PNG: {0}")]
    Encode(#[from] png::EncodingError),
}

/// The result of the infotext functions.
pub type Result<T, E = InfotextError> = std::result::Result<T, E>;
