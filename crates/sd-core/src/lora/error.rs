//! What can go wrong with a LoRA file.

use std::path::PathBuf;

/// A LoRA file that cannot be read or applied; every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoraError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a safetensors file (LoRA `.pt`/`.ckpt` files are not read).
    #[error("{path}: not a safetensors LoRA: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor of the file that does not fit what its key says.
    #[error("{path}: `{key}` {shape:?}: {reason}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor's key (for a module, its name).
        key: String,
        /// Its shape.
        shape: Vec<usize>,
        /// What is wrong.
        reason: String,
    },
    /// No module of the file names a layer of the model (a LoRA for another architecture).
    #[error(
        "{path}: none of its {modules} modules names a layer of this model (a LoRA for another model family?)"
    )]
    NothingMatched {
        /// The file.
        path: PathBuf,
        /// How many LoRA modules it has.
        modules: usize,
    },
}

/// Results of this module.
pub type Result<T, E = LoraError> = std::result::Result<T, E>;
