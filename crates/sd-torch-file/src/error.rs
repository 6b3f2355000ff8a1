//! The one error type of the torch-file reader and writer.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing a PyTorch file. Every variant names
/// the file (or the label given to [`super::TorchFile::from_bytes`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TorchFileError {
    /// The operating system refused to open, read, seek or write the file.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is neither a torch zip archive nor a legacy torch pickle stream (for example a
    /// safetensors file given a `.ckpt` name).
    #[error("{path}: not a PyTorch file: {reason}", path = path.display())]
    NotTorchFile {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The file ends before a structure it declares (a truncated download or copy).
    #[error("{path}: the file is truncated: {what}", path = path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which structure ran past the end.
        what: String,
    },
    /// The zip container is inconsistent (bad signatures, offsets out of range, missing
    /// records).
    #[error("{path}: malformed zip archive: {reason}", path = path.display())]
    Zip {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The pickle names a global (a Python class or function) outside the allow-list of tensor
    /// and container types. Python's unpickler would import and call it, which is how
    /// malicious checkpoints run code; we refuse before reading anything further.
    #[error(
        "{path}: refused pickle global `{module}.{name}`: not a known tensor or container type \
         (loading this file in Python would import and possibly run it)",
        path = path.display()
    )]
    ForbiddenGlobal {
        /// The file.
        path: PathBuf,
        /// The global's module, e.g. `posix` or `builtins`.
        module: String,
        /// The global's name, e.g. `system` or `eval`.
        name: String,
    },
    /// The pickle stream is malformed (unknown opcode, stack underflow, wrong argument types).
    #[error("{path}: malformed pickle at byte {offset}: {reason}", path = path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Offset of the offending opcode inside the pickle stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The pickled value nests deeper than the reader's limit, or expands (through shared
    /// references) to more values than the limit allows.
    #[error("{path}: pickled data exceeds the limit of {limit} {what}", path = path.display())]
    LimitExceeded {
        /// The file.
        path: PathBuf,
        /// The limit that was hit.
        limit: u64,
        /// `"nesting levels"` or `"values"`.
        what: &'static str,
    },
    /// A valid file uses a feature this reader does not implement.
    #[error("{path}: unsupported: {what}", path = path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The feature.
        what: String,
    },
    /// A tensor's description does not fit its storage, or its storage record is missing.
    #[error("{path}: tensor in storage `{storage}`: {reason}", path = path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The storage key (zip record `data/<key>`).
        storage: String,
        /// What is wrong.
        reason: String,
    },
    /// The root value does not have the layout asked for (e.g. no tensor dict for
    /// [`super::TorchFile::state_dict`]).
    #[error("{path}: unexpected content: {reason}", path = path.display())]
    Layout {
        /// The file.
        path: PathBuf,
        /// What was expected and found.
        reason: String,
    },
    /// The writer a caller handed in (for example to [`super::TorchFile::write_safetensors`])
    /// refused the bytes.
    #[error("writing {what}: {source}")]
    Output {
        /// What was being written (`"safetensors"`).
        what: &'static str,
        /// What the writer said.
        source: std::io::Error,
    },
    /// The value handed to the writer cannot be written as a torch file.
    #[error("cannot write torch file: {reason}")]
    Write {
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = TorchFileError> = std::result::Result<T, E>;
