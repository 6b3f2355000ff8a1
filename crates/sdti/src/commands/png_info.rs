//! The generation parameters stored in a picture (ours or A1111's), as JSON.
//!
//! ```text
//! sdti png-info fox.png
//! {"prompt":"a red fox in the snow","negative_prompt":"","steps":20,"sampler":"DPM++ 2M", ...}
//! ```
//!
//! Prints the typed fields A1111's `parse_generation_parameters` understands plus every
//! other key in `extra`, and the raw text under `"infotext"`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sd_textual_inversion::sd_core::infotext::{GenerationParameters, read_png_parameters_file};

/// Print the A1111 generation parameters of a PNG as JSON.
#[derive(Parser)]
pub struct Args {
    /// The picture.
    file: PathBuf,
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    let text = read_png_parameters_file(&args.file)?
        .with_context(|| format!("{}: no `parameters` text in this PNG", args.file.display()))?;
    let mut params = GenerationParameters::parse(&text);
    params.layout.clear();
    let mut json = serde_json::to_value(&params)?;
    if let Some(object) = json.as_object_mut() {
        object.insert("infotext".into(), serde_json::Value::String(text));
    }
    println!("{}", serde_json::to_string(&json)?);
    Ok(())
}
