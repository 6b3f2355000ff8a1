//! Command-line pieces the example programs share. The examples are thin: everything they do
//! is library code from the `sd-*` crates; this module only turns flags into library calls.

use std::path::PathBuf;

use sd_textual_inversion::sd_core::bundled;

/// The checkpoint a `--model` flag names, or the bundled tiny model (written once to a folder
/// under the system's temporary directory) when the flag is absent.
///
/// # Errors
/// When the bundled model cannot be written to the temporary folder.
pub fn model_or_bundled(model: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match model {
        Some(path) => Ok(path),
        None => {
            let dir = std::env::temp_dir().join("sd-examples-bundled");
            Ok(bundled::TINY_SD1.extract_to(&dir)?)
        }
    }
}
