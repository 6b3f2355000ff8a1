//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while configuring or loading a VAE.
///
/// Split by who is at fault: the configuration (a `config.json` this crate cannot build), the
/// weight source (missing, unused or misshapen tensors, unreadable files) and the store that
/// reads them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaeError {
    /// A `config.json` could not be read.
    #[error("cannot read VAE config {path}: {source}")]
    ConfigIo {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A `config.json` is not valid JSON for [`AutoencoderKlConfig`](crate::AutoencoderKlConfig).
    #[error("cannot parse VAE config{}: {source}", path_suffix(.path))]
    ConfigParse {
        /// The file, when the JSON came from one.
        path: Option<PathBuf>,
        /// What serde_json said (it names the line and column).
        source: serde_json::Error,
    },
    /// The configuration asks for something this crate does not build.
    #[error("unsupported VAE config: {key} = {value} ({reason})")]
    UnsupportedConfig {
        /// The `config.json` key at fault.
        key: &'static str,
        /// Its value, as written.
        value: String,
        /// What is supported instead.
        reason: &'static str,
    },
    /// The tensor store itself failed (unreadable or truncated file, bad header).
    ///
    /// It carries the store's own error: burn's `SafetensorsStoreError` for a
    /// `SafetensorsStore` (downcast to reach it). It is boxed because the loaders take any
    /// burn `ModuleStore`, whose error type is the store's choice.
    #[error("cannot read VAE weights: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A key-rename table of this crate is not a valid regex (a bug in this crate).
    #[error("invalid VAE key table (a bug in sd-vae): {0}")]
    KeyTable(#[source] regex::Error),
    /// The weights do not fit the configured network: tensors it needs are absent, tensors of
    /// the VAE are left over, or shapes disagree.
    #[error("VAE weights ({format}) do not match the configuration:{}", describe_mismatch(.missing, .unused, .errors))]
    WeightMismatch {
        /// The key layout the weights were read as.
        format: crate::WeightFormat,
        /// Module parameters with no tensor in the file (diffusers names).
        missing: Vec<String>,
        /// VAE tensors in the file that no parameter took (file names).
        unused: Vec<String>,
        /// Shape, dtype or decoding errors, one each, naming the tensor (burn's errors as it
        /// reported them).
        errors: Vec<burn::store::ApplyError>,
    },
    /// The weight source holds no VAE tensors at all under the layout asked for.
    #[error("no VAE tensors found for the {format} layout (looked for {looked_for})")]
    NoVaeTensors {
        /// The key layout asked for.
        format: crate::WeightFormat,
        /// The key prefixes searched.
        looked_for: &'static str,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = VaeError> = std::result::Result<T, E>;

fn path_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

/// Lists up to a screenful of each kind of mismatch: a wrong-architecture file can leave
/// hundreds of keys on each side, and the first few are what tells a user what happened.
fn describe_mismatch(
    missing: &[String],
    unused: &[String],
    errors: &[burn::store::ApplyError],
) -> String {
    const SHOWN: usize = 20;
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let errors = errors.as_slice();
    let mut out = String::new();
    for (label, items) in [("missing", missing), ("unused", unused), ("errors", errors)] {
        if items.is_empty() {
            continue;
        }
        out.push_str(&format!("\n  {} {label}:", items.len()));
        for item in items.iter().take(SHOWN) {
            out.push_str(&format!("\n    {item}"));
        }
        if items.len() > SHOWN {
            out.push_str(&format!("\n    ... and {} more", items.len() - SHOWN));
        }
    }
    out
}
