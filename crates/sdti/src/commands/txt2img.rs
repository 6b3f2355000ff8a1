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
use sd_textual_inversion::sd_core::pipeline::{HiresFix, HiresUpscaler};

/// Generate pictures from a prompt (A1111's txt2img).
#[derive(Parser)]
pub struct Args {
    #[command(flatten)]
    generation: GenerationArgs,
    #[command(flatten)]
    hires: HiresArgs,
}

/// A1111's "Hires. fix", flags named after its API fields.
#[derive(clap::Args, Debug)]
pub struct HiresArgs {
    /// Turn the hires fix on: the picture is generated, upscaled and refined by a second
    /// img2img pass at the larger size.
    #[arg(long)]
    enable_hr: bool,
    /// Upscale by this factor (when --hr-resize-x and --hr-resize-y are both 0).
    #[arg(long, default_value_t = 2.0)]
    hr_scale: f32,
    /// Resize the width to this (0: from the height, keeping the aspect).
    #[arg(long, default_value_t = 0)]
    hr_resize_x: u32,
    /// Resize the height to this (0: from the width, keeping the aspect).
    #[arg(long, default_value_t = 0)]
    hr_resize_y: u32,
    /// Upscaler: Latent, "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic
    /// antialiased)", "Latent (nearest)", "Latent (nearest-exact)", None, Lanczos, Nearest.
    #[arg(long, default_value = "Latent")]
    hr_upscaler: HiresUpscaler,
    /// Steps of the second pass (0: the same as --steps).
    #[arg(long, default_value_t = 0)]
    hr_second_pass_steps: usize,
    /// Denoising strength of the second pass (above 0, at most 1).
    #[arg(long, default_value_t = 0.7)]
    denoising_strength: f32,
    /// Sampler of the second pass (default: --sampler).
    #[arg(long)]
    hr_sampler: Option<String>,
    /// Schedule type of the second pass (default: --schedule).
    #[arg(long)]
    hr_scheduler: Option<String>,
    /// Prompt of the second pass (default: --prompt); `[a:b:1.5]` switches halfway through
    /// it, as in A1111.
    #[arg(long, default_value = "")]
    hr_prompt: String,
    /// Negative prompt of the second pass (default: --negative-prompt).
    #[arg(long, default_value = "")]
    hr_negative_prompt: String,
    /// CFG scale of the second pass (default: --cfg-scale).
    #[arg(long)]
    hr_cfg_scale: Option<f32>,
}

impl HiresArgs {
    /// The hires settings, `None` without `--enable-hr`.
    fn settings(&self) -> Option<HiresFix> {
        self.enable_hr.then(|| HiresFix {
            hr_scale: self.hr_scale,
            hr_resize_x: self.hr_resize_x,
            hr_resize_y: self.hr_resize_y,
            hr_upscaler: self.hr_upscaler,
            hr_second_pass_steps: self.hr_second_pass_steps,
            denoising_strength: self.denoising_strength,
            hr_sampler: self.hr_sampler.clone(),
            hr_scheduler: self.hr_scheduler.clone(),
            hr_prompt: self.hr_prompt.clone(),
            hr_negative_prompt: self.hr_negative_prompt.clone(),
            hr_cfg_scale: self.hr_cfg_scale,
        })
    }
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    let hires = args.hires.settings();
    let args = args.generation;
    // Every flag is checked before the model loads.
    let mut params = args.params()?;
    params.hires = hires;
    params.validate()?;
    args.output_paths(params.batch_size)?;
    let model = args.load_model()?;
    let embeddings = args.embeddings(&model)?;
    let loras = args.extra_networks(&model)?;
    let mut progress = progress_bar(params.steps);
    let mut generation = loras.model.txt2img(&params, &embeddings, &mut progress)?;
    generation.lora_hashes = loras.hashes;
    args.save(&generation, &loras.model)
}
