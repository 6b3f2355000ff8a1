//! What can go wrong with a hypernetwork file.

use std::path::PathBuf;

/// A hypernetwork file that cannot be read; every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HypernetworkError {
    /// Not a readable torch pickle.
    #[error(transparent)]
    TorchFile(#[from] sd_torch_file::TorchFileError),
    /// A pickle that is not a hypernetwork, or whose weights do not fit its settings.
    #[error("{path}: not a usable hypernetwork: {reason}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The folder of hypernetworks cannot be listed.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Results of this module.
pub type Result<T, E = HypernetworkError> = std::result::Result<T, E>;
