//! The error type of `sd-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `sd-core`, split by who is at fault: the file a user gave,
/// the request a program made, or the build (a backend that was not compiled in).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A `.safetensors` file is truncated, malformed or claims impossible sizes.
    #[error("{path}: not a valid safetensors file: {reason}")]
    InvalidSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint's keys match no Stable Diffusion layout this crate knows.
    #[error("{path}: {reason}")]
    UnrecognisedCheckpoint {
        /// The file or folder.
        path: PathBuf,
        /// What was expected and not found.
        reason: String,
    },
    /// A device name that is not one of `cpu`, `wgpu`, `cuda`.
    #[error("unknown device `{0}`: expected cpu, wgpu or cuda")]
    UnknownDevice(String),
    /// The device exists but its backend was not compiled into this build.
    #[error("the {device} backend is not compiled in: rebuild with `--features {feature}`")]
    BackendNotCompiled {
        /// The device asked for.
        device: &'static str,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
}

impl CoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
