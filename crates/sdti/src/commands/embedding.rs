//! Inspect and convert textual-inversion embedding files, in every layout A1111, diffusers and
//! kohya use.
//!
//! ```text
//! sdti embedding inspect embeddings/realbenny-t2.pt
//! {"name":"realbenny-t2","format":"a1111-pt","vectors":3,"dim":768,"step":500,"checkpoint":"a1b2c3d4e5","checksum":"3b1f"}
//! sdti embedding convert realbenny-t2.pt realbenny-t2.safetensors
//! ```
//!
//! `convert` writes the format the output's extension implies: `.pt` A1111's
//! `Embedding.save`, `.bin` diffusers' `learned_embeds.bin`, `.safetensors` diffusers'
//! `learned_embeds.safetensors` (`--kohya`: `emb_params`), `.png` A1111's image embedding.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sd_textual_inversion::sd_core::embeddings::{
    self, SafetensorsLayout, formats::safetensors as st,
};

/// Inspect or convert a textual-inversion embedding file.
#[derive(Parser)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the embedding's name, format, shape, training step, checkpoint and A1111 checksum
    /// as one JSON object.
    Inspect {
        /// An embedding file: .pt, .bin, .safetensors or .png.
        file: PathBuf,
    },
    /// Read IN and write OUT in the format OUT's extension implies.
    Convert {
        /// The embedding to read.
        input: PathBuf,
        /// The file to write (.pt, .bin, .safetensors or .png).
        output: PathBuf,
        /// Store this name instead of the input's (the trigger word of an image embedding,
        /// the token of a diffusers file).
        #[arg(long)]
        name: Option<String>,
        /// Write a `.safetensors` as kohya's `{emb_params: [n, dim]}` instead of diffusers'
        /// `{name: [n, dim]}`.
        #[arg(long)]
        kohya: bool,
    },
}

fn inspect(file: &Path) -> anyhow::Result<()> {
    let (e, format) = embeddings::read_file(file)?;
    let json = serde_json::json!({
        "name": e.name,
        "format": format.name(),
        "vectors": e.vectors.n,
        "dim": e.shape(),
        "step": e.step,
        "checkpoint": e.sd_checkpoint,
        "checksum": e.checksum(),
    });
    println!("{}", serde_json::to_string(&json)?);
    Ok(())
}

fn convert(input: &Path, output: &Path, name: Option<String>, kohya: bool) -> anyhow::Result<()> {
    let (mut e, _) = embeddings::read_file(input)?;
    if let Some(name) = name {
        e.name = name;
    }
    let is_safetensors = output
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("safetensors"));
    if kohya && is_safetensors {
        let bytes = st::write(output, &e, SafetensorsLayout::Kohya)?;
        sd_textual_inversion::sd_core::fs::write_atomic(output, &bytes)?;
    } else {
        anyhow::ensure!(!kohya, "--kohya applies to a .safetensors output");
        embeddings::write_file(output, &e)
            .with_context(|| format!("writing {}", output.display()))?;
    }
    Ok(())
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Inspect { file } => inspect(&file),
        Command::Convert {
            input,
            output,
            name,
            kohya,
        } => convert(&input, &output, name, kohya),
    }
}
