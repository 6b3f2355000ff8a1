//! Step 1: a new embedding, as A1111's "Create embedding".
//!
//! ```text
//! sdti create --model sd15.safetensors \
//!     --name realbenny-t1 --init-text person --vectors 1 --output-dir embeddings
//! ```

use std::path::PathBuf;

use crate::cli::model_or_bundled;
use clap::Parser;
use sd_textual_inversion::create::{check_vectors, create_embedding, sanitized_name};
use sd_textual_inversion::sd_core::{DeviceChoice, StableDiffusion, embeddings::write_file};

/// Create a textual-inversion embedding (A1111's Create embedding).
#[derive(Parser)]
pub struct Args {
    /// The checkpoint whose token embeddings seed the vectors (default: the bundled model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The embedding's name: the word that triggers it in prompts.
    #[arg(long)]
    name: String,
    /// Text whose token embeddings start the vectors (empty: zeros).
    #[arg(long, default_value = "*")]
    init_text: String,
    /// Vectors per token.
    #[arg(long, default_value_t = 1)]
    vectors: usize,
    /// Replace an existing file of the same name.
    #[arg(long)]
    overwrite: bool,
    /// Where the `.pt` goes.
    #[arg(long, default_value = "embeddings")]
    output_dir: PathBuf,
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    // Name, vector count and the file to write are checked before the model loads.
    let name = sanitized_name(&args.name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    check_vectors(args.vectors).map_err(|e| anyhow::anyhow!("--vectors: {e}"))?;
    let path = args.output_dir.join(format!("{name}.pt"));
    if path.exists() && !args.overwrite {
        anyhow::bail!(
            "{}: already exists (pass --overwrite to replace it)",
            path.display()
        );
    }
    let device = DeviceChoice::Cpu.device()?;
    let model = StableDiffusion::load(model_or_bundled(args.model)?, &device)?;
    let embedding = create_embedding(&model, &args.name, &args.init_text, args.vectors)?;
    write_file(&path, &embedding)?;
    println!("{}", path.display());
    Ok(())
}
