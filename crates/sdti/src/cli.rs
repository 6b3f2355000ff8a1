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

/// The autodiff device training runs on: `--device` parsed, with burn's balanced gradient
/// checkpointing when `--gradient-checkpointing` asks for it (norms and activations are
/// recomputed in the backward pass instead of kept).
///
/// # Errors
/// An unknown or not compiled-in device name.
pub fn training_device(
    name: &str,
    gradient_checkpointing: bool,
) -> anyhow::Result<sd_textual_inversion::sd_core::burn::tensor::Device> {
    let device = name
        .parse::<sd_textual_inversion::sd_core::DeviceChoice>()?
        .device()?
        .autodiff();
    Ok(if gradient_checkpointing {
        device.gradient_checkpointing()
    } else {
        device
    })
}

/// The flags txt2img and img2img share (A1111's generation settings).
#[derive(Debug, clap::Args)]
pub struct GenerationArgs {
    /// A checkpoint: a single `.safetensors`/`.ckpt` file (A1111's) or a diffusers folder.
    /// Default: the bundled tiny model (its pictures are noise; it exists to run everything
    /// in seconds).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A diffusers-style config folder for a single-file checkpoint whose architecture is not
    /// a standard SD 1.x/2.x one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A separate VAE file, replacing the checkpoint's own.
    #[arg(long)]
    pub vae: Option<PathBuf>,
    /// The prompt (A1111 syntax: `(word:1.2)`, `[a|b]`, `[from:to:0.5]`, AND, BREAK).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// The negative prompt.
    #[arg(long, default_value = "")]
    pub negative_prompt: String,
    /// Sampling steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Sampler, as A1111 names it ("Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", ...).
    #[arg(long, default_value = "Euler a")]
    pub sampler: String,
    /// Schedule type: automatic, uniform, karras, exponential, polyexponential, sgm_uniform,
    /// kl_optimal, align_your_steps, simple, normal, ddim, beta.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 7.0)]
    pub cfg_scale: f32,
    /// Seed (−1: random).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub seed: i64,
    /// Variation seed (−1: random).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub subseed: i64,
    /// Variation strength (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub subseed_strength: f32,
    /// Width in pixels (a multiple of 8).
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    /// Height in pixels (a multiple of 8).
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    /// Pictures per run (image i uses seed + i).
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// CLIP skip (1 = last layer; SD 2.x ignores it, as A1111 does).
    #[arg(long, default_value_t = 1)]
    pub clip_skip: usize,
    /// Noise source: gpu (A1111's default; NVIDIA's Philox stream, = nv), cpu (torch's CPU
    /// generator) or nv.
    #[arg(long, default_value = "gpu")]
    pub rng: String,
    /// η of ancestral samplers (default: the sampler's own, 1).
    #[arg(long)]
    pub eta: Option<f64>,
    /// "Resize seed from" width in pixels (A1111's `seed_resize_from_w`; 0: off). With
    /// `--seed-resize-from-h`, the initial noise is drawn at that size and pasted centred.
    #[arg(long, default_value_t = 0)]
    pub seed_resize_from_w: u32,
    /// "Resize seed from" height in pixels (A1111's `seed_resize_from_h`; 0: off).
    #[arg(long, default_value_t = 0)]
    pub seed_resize_from_h: u32,
    /// A1111's "Eta noise seed delta" setting (ENSD; 0: off, NovelAI's is 31337): per-step
    /// noise of ancestral samplers from generators seeded with seed + delta.
    #[arg(long, default_value_t = 0)]
    pub eta_noise_seed_delta: u64,
    /// A folder of textual-inversion embeddings, searched recursively; use them in the prompt
    /// by file name.
    #[arg(long)]
    pub embeddings_dir: Option<PathBuf>,
    /// Compute device: cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where to write the picture (PNG with A1111's `parameters`; the name must end in .png);
    /// batch item i > 0 goes to `<stem>-<i>.png`.
    #[arg(long, default_value = "output.png")]
    pub output: PathBuf,
    /// Also write the final latents (key `latents`, `[B, 4, H/8, W/8]`, f32) before decoding
    /// (to a file that is not one of the pictures).
    #[arg(long)]
    pub save_latents: Option<PathBuf>,
}

use std::ops::ControlFlow;

use sd_textual_inversion::sd_core::{
    DeviceChoice, Generation, GenerationRequest, LoadOptions, StableDiffusion,
    conditioning::EmbeddingLookup,
    embeddings::{EmbeddingDatabase, SkipReason},
    infotext,
    noise::SeedResize,
    pipeline,
};

impl GenerationArgs {
    /// Loads the model the flags name (the bundled one without `--model`) on `--device`.
    ///
    /// # Errors
    /// Unknown device, unreadable or unrecognised checkpoint.
    pub fn load_model(&self) -> anyhow::Result<StableDiffusion> {
        let device = self.device.parse::<DeviceChoice>()?.device()?;
        let path = model_or_bundled(self.model.clone())?;
        let options = LoadOptions {
            config_dir: self.config.clone(),
            vae: self.vae.clone(),
        };
        Ok(StableDiffusion::load_with(&path, &options, &device)?)
    }

    /// The library's parameters for these flags, checked ([`GenerationRequest::validate`]:
    /// every number in range, every float finite) before any model is loaded.
    ///
    /// # Errors
    /// An unknown `--rng` name; a value out of range, named by its field (`cfg_scale` is
    /// `--cfg-scale`).
    pub fn params(&self) -> anyhow::Result<GenerationRequest> {
        let params = GenerationRequest {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            steps: self.steps,
            sampler: self.sampler.clone(),
            sigma_schedule: self.schedule.clone(),
            cfg_scale: self.cfg_scale,
            seed: self.seed,
            subseed: self.subseed,
            subseed_strength: self.subseed_strength,
            width: self.width,
            height: self.height,
            batch_size: self.batch_size,
            clip_skip: self.clip_skip,
            rng: self.rng.parse()?,
            eta: self.eta,
            // A1111 turns the resize off unless both sides are positive.
            seed_resize_from: (self.seed_resize_from_w > 0 && self.seed_resize_from_h > 0)
                .then_some(SeedResize {
                    width: self.seed_resize_from_w,
                    height: self.seed_resize_from_h,
                }),
            eta_noise_seed_delta: self.eta_noise_seed_delta,
        };
        params.validate()?;
        Ok(params)
    }

    /// The files `--output` (and `--save-latents`) will write for a batch of `batch`,
    /// checked before anything runs ([`pipeline::output_paths`]).
    ///
    /// # Errors
    /// An `--output` not named `.png`, or a `--save-latents` that is one of the pictures.
    pub fn output_paths(&self, batch: usize) -> anyhow::Result<Vec<PathBuf>> {
        Ok(pipeline::output_paths(
            &self.output,
            batch,
            self.save_latents.as_deref(),
        )?)
    }

    /// The embeddings `--embeddings-dir` holds (none without the flag), as A1111 loads its
    /// `embeddings` folder: prints what was loaded and what was skipped, and why.
    ///
    /// # Errors
    /// When an embedding cannot be matched against the tokenizer.
    pub fn embeddings(&self, model: &StableDiffusion) -> anyhow::Result<EmbeddingLookup> {
        let Some(dir) = &self.embeddings_dir else {
            return Ok(EmbeddingLookup::new());
        };
        let width = model.architecture().text_encoder.hidden_size;
        let database = EmbeddingDatabase::load_dirs(std::slice::from_ref(dir), Some(width));
        eprintln!("{}", database.summary());
        // A1111 prints every file it could not load, with the reason (model preview
        // pictures beside the embeddings are not embeddings: passed over quietly).
        let skipped = database
            .skipped()
            .iter()
            .filter(|s| !matches!(s.reason, SkipReason::Preview));
        for skipped in skipped {
            eprintln!(
                "Skipping embedding {}: {}",
                skipped.path.display(),
                skipped.reason
            );
        }
        Ok(database.lookup(&model.tokenizer)?)
    }

    /// Writes each picture as a PNG with its A1111 `parameters` text (`--output`, then
    /// `<stem>-<i>.png`), and the latents when `--save-latents` asks; prints the paths.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn save(&self, generation: &Generation, model: &StableDiffusion) -> anyhow::Result<()> {
        let paths = self.output_paths(generation.images.len())?;
        for (i, (image, path)) in generation.images.iter().zip(&paths).enumerate() {
            let text = generation.infotext(i, model);
            infotext::write_png_rgb8(path, image.width(), image.height(), image.as_raw(), &text)?;
            println!("{}", path.display());
        }
        if let Some(path) = &self.save_latents {
            pipeline::save_latents(path, generation.latents.clone())?;
            println!("{}", path.display());
        }
        Ok(())
    }
}

/// A terminal progress bar over sampling steps; Ctrl-C is not intercepted (the run stops).
pub fn progress_bar(steps: usize) -> impl FnMut(&pipeline::Progress<'_>) -> ControlFlow<()> {
    let bar = indicatif::ProgressBar::new(steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps, {elapsed} ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    move |p| {
        bar.set_length(p.total_steps as u64);
        bar.set_position(p.step as u64 + 1);
        if p.step + 1 >= p.total_steps {
            bar.finish_and_clear();
        }
        ControlFlow::Continue(())
    }
}
