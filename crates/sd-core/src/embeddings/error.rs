//! The error type of the embeddings module.

use std::path::PathBuf;

use crate::error::cause_suffix;

/// What can go wrong reading, writing or registering an embedding. Every variant names the
/// file (or the label given to an in-memory reader).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddingError {
    /// The file could not be read or written.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A torch file (`.pt`, `.bin`) is corrupt, truncated or names code.
    #[error(transparent)]
    TorchFile(#[from] sd_torch_file::TorchFileError),
    /// A `.safetensors` file is truncated or malformed.
    #[error("{path}: not a valid safetensors file: {source}", path = path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the safetensors reader said (it names the tensor where there is one).
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// An image could not be decoded, or its embedding data (text chunk or pixels) is
    /// malformed.
    #[error("{path}: {reason}{}", cause_suffix(.source), path = path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// The error beneath, when one was converted (the PNG decoder's, the JSON parser's,
        /// ...).
        #[source]
        source: Option<Box<EmbeddingErrorCause>>,
    },
    /// The file decodes but holds no layout A1111 reads as an embedding (A1111: "Couldn't
    /// identify ... as neither textual inversion embedding nor diffuser concept").
    #[error("{path}: {reason}", path = path.display())]
    Layout {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A tensor has a shape no embedding has (not `[dim]` or `[n, dim]`, or empty, or huge).
    #[error("{path}: tensor `{key}` has shape {shape:?}: {reason}", path = path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor's key.
        key: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Why it is refused.
        reason: String,
    },
    /// A vector holds NaN or an infinity (A1111 would fail computing its checksum).
    #[error("{path}: tensor `{key}` holds a non-finite value ({value}) at index {index}", path = path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor's key.
        key: String,
        /// Flat index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The file is larger than any embedding ([`super::MAX_EMBEDDING_FILE_BYTES`]); probably
    /// a checkpoint put in the wrong folder.
    #[error("{path}: {len} bytes is too large for an embedding file (limit {limit})", path = path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// An image that carries no embedding (no `sd-ti-embedding` chunk, no pixel data): A1111
    /// takes it for a preview picture and passes over it.
    #[error("{path}: an image without embedding data (a preview picture?)", path = path.display())]
    NoEmbeddingInImage {
        /// The file.
        path: PathBuf,
    },
    /// The file name's extension is not one embeddings are stored in.
    #[error("{path}: unknown embedding file extension (expected .pt, .bin, .safetensors or .png)", path = path.display())]
    UnknownExtension {
        /// The file.
        path: PathBuf,
    },
    /// The embedding cannot be written in the format asked for.
    #[error("{path}: cannot write this embedding: {reason}{}", cause_suffix(.source), path = path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
        /// The error beneath, when one was converted (the safetensors serialiser's, the PNG
        /// encoder's).
        #[source]
        source: Option<Box<EmbeddingErrorCause>>,
    },
    /// The embedding's values do not fit its declared shape, or it has none.
    #[error("embedding `{name}`: {reason}")]
    Invalid {
        /// The embedding's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The file's embedding was trained for a text encoder of another width (an SD 2.x
    /// embedding on an SD 1.x model, or the reverse).
    #[error("{path}: trained for a {embedding}-wide text encoder; this model's is {model}", path = path.display())]
    WrongWidth {
        /// The file.
        path: PathBuf,
        /// The embedding's width.
        embedding: usize,
        /// The model's text encoder width.
        model: usize,
    },
    /// Registering the embedding with a tokenizer failed.
    #[error(transparent)]
    Conditioning(#[from] crate::conditioning::ConditioningError),
}

/// The library error beneath an [`EmbeddingError::Image`] or [`EmbeddingError::Write`]: the
/// error travels typed, the reason says where it arose. Boxed in those variants, so that a
/// `Result` stays small.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddingErrorCause {
    /// The PNG decoder refused the picture.
    #[error(transparent)]
    Decode(#[from] image::ImageError),
    /// The picture is over one of the configured [`crate::limits::Limits`].
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitExceeded),
    /// The PNG's chunks could not be read, or the PNG could not be encoded.
    #[error(transparent)]
    Png(#[from] sd_infotext::InfotextError),
    /// The embedding data is not valid JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The text chunk is not base64.
    #[error(transparent)]
    Base64(#[from] base64::DecodeError),
    /// The embedding data hidden in the pixels is corrupt.
    #[error(transparent)]
    PixelData(#[from] super::formats::png_pixels::ExtractError),
    /// The safetensors serialiser refused the tensors.
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafeTensorError),
}

impl EmbeddingError {
    /// [`EmbeddingError::Image`] with a reason in words only.
    pub(crate) fn image(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::Image {
            path: path.to_path_buf(),
            reason: reason.into(),
            source: None,
        }
    }

    /// [`EmbeddingError::Image`]: `reason`, caused by `source`.
    pub(crate) fn image_caused(
        path: &std::path::Path,
        reason: impl Into<String>,
        source: impl Into<EmbeddingErrorCause>,
    ) -> Self {
        Self::Image {
            path: path.to_path_buf(),
            reason: reason.into(),
            source: Some(Box::new(source.into())),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`EmbeddingError`].
pub type Result<T, E = EmbeddingError> = std::result::Result<T, E>;
