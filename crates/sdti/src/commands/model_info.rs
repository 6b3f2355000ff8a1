//! Describes a Stable Diffusion checkpoint without loading its weights.
//!
//! ```text
//! sdti model-info                      # the bundled tiny model
//! sdti model-info --model v1-5.safetensors --hash
//! ```
//!
//! Prints one JSON object: format (single file or diffusers folder), family (SD 1.x/2.x),
//! UNet input channels (9 = inpainting), text context width, per-component tensor and
//! parameter counts with dtypes, and with `--hash` the two model hashes A1111 prints.

use std::path::PathBuf;

use clap::Parser;
use sd_textual_inversion::sd_core::checkpoint::{CheckpointSummary, ModelHash};

/// Describe a Stable Diffusion checkpoint (single .safetensors file or diffusers folder).
#[derive(Parser)]
pub struct Args {
    /// Checkpoint: a `.safetensors` single file or a diffusers folder. Default: the bundled
    /// tiny model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Also compute A1111's model hashes (reads the whole file).
    #[arg(long)]
    hash: bool,
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    let path = crate::cli::model_or_bundled(args.model)?;
    let summary = CheckpointSummary::read(&path)?;
    let mut json = serde_json::to_value(&summary)?;
    if args.hash && path.is_file() {
        let hash = ModelHash::compute(&path)?;
        json["hash"] = serde_json::json!({
            "legacy": hash.legacy,
            "short": hash.short(),
            "sha256": hash.sha256,
        });
    }
    println!("{json}");
    Ok(())
}
