//! The crate's one error type.

use std::path::PathBuf;

use crate::loader::WeightFormat;

/// Everything that can go wrong building, loading or running the UNet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UNetError {
    /// A configuration value this crate does not support, or that contradicts another.
    #[error("unsupported UNet config `{field}`: {message}")]
    Config {
        /// The `config.json` key at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A `config.json` is not valid JSON for [`UNetConfig`](crate::UNetConfig).
    #[error("invalid UNet config {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The tensor store could not list or read its tensors (a truncated or corrupt file).
    ///
    /// It carries the store's own error: burn's `SafetensorsStoreError` for a
    /// `SafetensorsStore` (downcast to reach it). It is boxed because the loaders take any
    /// burn `ModuleStore`, whose error type is the store's choice.
    #[error("cannot read the UNet weights: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A key-rename table of this crate is not a valid regex (a bug in this crate).
    #[error("invalid UNet key table (a bug in sd-unet): {0}")]
    KeyTable(#[source] regex::Error),
    /// The weights lack tensors the model needs.
    #[error("{format} UNet weights lack {} tensor(s): {}", keys.len(), keys.join(", "))]
    MissingKeys {
        /// The key layout the weights were read as.
        format: WeightFormat,
        /// The missing tensors, by their diffusers key (the model's path), whatever the
        /// format.
        keys: Vec<String>,
    },
    /// The weights hold UNet tensors the model has no place for (usually: the config does
    /// not describe this checkpoint).
    #[error("{format} UNet weights hold {} unused tensor(s): {}", keys.len(), keys.join(", "))]
    UnusedKeys {
        /// The key layout the weights were read as.
        format: WeightFormat,
        /// The unused keys, as the file names them.
        keys: Vec<String>,
    },
    /// Tensors that exist but do not fit (wrong shape, unreadable data).
    #[error("{format} UNet weights do not fit the model: {}", join(errors))]
    Tensors {
        /// The key layout the weights were read as.
        format: WeightFormat,
        /// One error per tensor, naming it and the shapes involved (burn's errors as it
        /// reported them).
        errors: Vec<burn::store::ApplyError>,
    },
    /// Inputs to [`forward`](crate::UNet2DConditionModel::forward) whose shapes do not fit
    /// the model or each other.
    #[error("bad UNet input: {0}")]
    Input(String),
}

/// The errors' messages, `; `-separated.
fn join(errors: &[burn::store::ApplyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
