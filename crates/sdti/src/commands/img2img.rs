//! Image to image and inpainting, as A1111's img2img tab ("Just resize", whole picture).
//!
//! ```text
//! sdti img2img --init-image photo.png --denoising-strength 0.6 \
//!     --prompt "an oil painting" --output painted.png
//! sdti img2img --init-image photo.png --mask mask.png \
//!     --mask-blur 4 --inpainting-fill original --prompt "a red hat" --output hat.png
//! ```

use std::path::PathBuf;

use crate::cli::{GenerationArgs, progress_bar};
use clap::{Parser, ValueEnum};
use sd_textual_inversion::sd_core::{Img2ImgInput, pipeline::InpaintingFill};

#[derive(Clone, Copy, ValueEnum)]
enum MaskedContent {
    Original,
    Fill,
    LatentNoise,
    LatentNothing,
}

/// Repaint a picture from a prompt, optionally only under a mask (A1111's img2img).
#[derive(Parser)]
pub struct Args {
    #[command(flatten)]
    generation: GenerationArgs,
    /// The picture to start from (resized to --width × --height).
    #[arg(long)]
    init_image: PathBuf,
    /// How much to change it: 0 keeps it, 1 ignores it.
    #[arg(long, default_value_t = 0.75)]
    denoising_strength: f32,
    /// Inpainting mask: white is repainted (a picture with transparency: its alpha).
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Mask blur in pixels.
    #[arg(long, default_value_t = 4)]
    mask_blur: u32,
    /// What the masked area starts from.
    #[arg(long, value_enum, default_value_t = MaskedContent::Original)]
    inpainting_fill: MaskedContent,
    /// Repaint where the mask is black instead.
    #[arg(long)]
    inpainting_mask_invert: bool,
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    let gen_args = &args.generation;
    // Every flag and file is checked before the model loads; the pictures go through the
    // library's one loader (EXIF orientation, pixel cap, truncated files refused).
    let params = gen_args.params()?;
    gen_args.output_paths(params.batch_size)?;
    let mut input = Img2ImgInput::open(&args.init_image, args.denoising_strength)?;
    if let Some(mask) = &args.mask {
        input.open_mask(mask)?;
    }
    input.mask_blur = args.mask_blur;
    input.inpainting_mask_invert = args.inpainting_mask_invert;
    input.inpainting_fill = match args.inpainting_fill {
        MaskedContent::Original => InpaintingFill::Original,
        MaskedContent::Fill => InpaintingFill::Fill,
        MaskedContent::LatentNoise => InpaintingFill::LatentNoise,
        MaskedContent::LatentNothing => InpaintingFill::LatentNothing,
    };
    input.validate()?;
    let model = gen_args.load_model()?;
    let embeddings = gen_args.embeddings(&model)?;
    let loras = gen_args.extra_networks(&model)?;
    let mut progress = progress_bar(params.steps);
    let mut generation = loras
        .model
        .img2img(&params, &input, &embeddings, &mut progress)?;
    generation.lora_hashes = loras.hashes;
    gen_args.save(&generation, &loras.model)
}
