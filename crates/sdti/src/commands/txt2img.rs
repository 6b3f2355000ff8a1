//! Text to image, as A1111's txt2img tab.
//!
//! ```text
//! sdti txt2img --prompt "a red fox in the snow" --steps 20 \
//!     --sampler "DPM++ 2M Karras" --seed 3711471449 --output fox.png
//! ```
//!
//! Without `--model` it runs the bundled tiny concept model (coloured circles and squares on
//! grey, 64×64: pass `--width 64 --height 64`, in a second). The PNG carries A1111's
//! `parameters` text, so A1111's "PNG Info" tab (or `sdti png-info`) reads the settings back.
//! `<lora:name:0.8>` in the prompt applies `--lora-dir`'s `name.safetensors` (kohya or
//! diffusers/PEFT LoRA), as A1111's Lora extension; `<hypernet:name:0.5>` an A1111
//! hypernetwork from `--hypernetwork-dir`.

use crate::cli::{GenerationArgs, progress_bar};
use clap::Parser;

/// Generate pictures from a prompt (A1111's txt2img).
#[derive(Parser)]
pub struct Args {
    #[command(flatten)]
    generation: GenerationArgs,
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    let args = args.generation;
    // Every flag is checked before the model loads.
    let params = args.params()?;
    args.output_paths(params.batch_size)?;
    let model = args.load_model()?;
    let embeddings = args.embeddings(&model)?;
    let loras = args.extra_networks(&model)?;
    let mut progress = progress_bar(params.steps);
    let mut generation = loras.model.txt2img(&params, &embeddings, &mut progress)?;
    generation.lora_hashes = loras.hashes;
    args.save(&generation, &loras.model)
}
