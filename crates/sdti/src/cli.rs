//! Command-line pieces the subcommands share. The commands are thin: everything they do is
//! library code from the `sd-*` crates; this module only turns flags into library calls.

use std::path::PathBuf;

use sd_textual_inversion::sd_core::bundled::{self, BundledFolder};
use sd_textual_inversion::sd_core::model::Precision;
use sd_textual_inversion::sd_core::sd_schedulers::{SamplerSpec, SigmaSchedule};

/// Where the bundled model and sample set are written: a folder under the system's
/// temporary directory, shared by every run (files already there are kept).
fn bundled_dir() -> PathBuf {
    std::env::temp_dir().join("sdti-bundled")
}

/// The checkpoint a `--model` flag names, or the bundled tiny concept model
/// ([`bundled::TINY_SD1_CONCEPT`]: it draws coloured circles and squares from their
/// captions) when the flag is absent.
///
/// # Errors
/// When the bundled model cannot be written to the temporary folder.
pub fn model_or_bundled(model: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match model {
        Some(path) => Ok(path),
        None => Ok(bundled::TINY_SD1_CONCEPT.extract_to(bundled_dir())?),
    }
}

macro_rules! sample {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!("../assets/sample-set/", $path)) as &[u8],
        )
    };
}

/// The bundled sample set: four 64×64 pictures of a red disc on different grounds, each
/// captioned "a red disc" (`assets/sample-set/`, public domain).
pub const SAMPLE_SET: BundledFolder = BundledFolder {
    name: "sample-set",
    files: &[
        sample!("00000-0-disc.png"),
        sample!("00000-0-disc.txt"),
        sample!("00001-0-disc.png"),
        sample!("00001-0-disc.txt"),
        sample!("00002-0-disc.png"),
        sample!("00002-0-disc.txt"),
        sample!("00003-0-disc.png"),
        sample!("00003-0-disc.txt"),
    ],
};

/// The folder a `--data` flag names, or the bundled sample set ([`SAMPLE_SET`]) when the
/// flag is absent.
///
/// # Errors
/// When the sample set cannot be written to the temporary folder.
pub fn data_or_sample_set(data: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match data {
        Some(path) => Ok(path),
        None => Ok(SAMPLE_SET.extract_to(bundled_dir())?),
    }
}

/// `--sampler`'s parser: an A1111 sampler name, alias or combined name ("Euler a",
/// "k_dpmpp_2m", "DPM++ 2M Karras"), checked here so a typo fails before a model loads.
///
/// # Errors
/// An unknown name, with the list of known ones.
pub fn parse_sampler(text: &str) -> Result<String, String> {
    text.parse::<SamplerSpec>()
        .map(|_| text.to_owned())
        .map_err(|e| format!("{e}; the samplers: {}", sampler_names()))
}

/// `--schedule`'s parser: a schedule type as A1111 names it (`karras`, `exponential`, ...).
///
/// # Errors
/// An unknown name, with the list of known ones.
pub fn parse_schedule(text: &str) -> Result<String, String> {
    text.parse::<SigmaSchedule>()
        .map(|_| text.to_owned())
        .map_err(|e| format!("{e}; the schedules: {}", schedule_names()))
}

/// Every sampler's A1111 label, comma-separated, for `--help`.
pub fn sampler_names() -> String {
    use sd_textual_inversion::sd_core::sd_schedulers::SamplerKind;
    SamplerKind::ALL
        .iter()
        .map(|k| k.label())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every schedule type's name, comma-separated, for `--help`.
pub fn schedule_names() -> String {
    SigmaSchedule::ALL
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The compute devices `--device` accepts (whether one is compiled in is checked when it is
/// used).
pub const DEVICE_NAMES: [&str; 3] = sd_textual_inversion::sd_core::DeviceChoice::NAMES;

/// `--precision`: the type the networks compute in (`f32`, `f16`, `bf16`; also `fp16`,
/// `half`, `bfloat16`), parsed when the command line is.
///
/// # Errors
/// Any other name, with the ones it takes.
pub fn parse_precision(name: &str) -> Result<Precision, String> {
    name.parse::<Precision>().map_err(|e| e.to_string())
}

/// The noise sources `--rng` accepts, as A1111's "Random number generator source" setting.
pub const RNG_NAMES: [&str; 3] = ["gpu", "cpu", "nv"];

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

/// `--sampler`'s long help: the names.
fn sampler_help() -> String {
    format!(
        "Sampler, as A1111 names it (aliases such as k_euler_a and old combined names such as \
         \"DPM++ 2M Karras\" too): {}",
        sampler_names()
    )
}

/// `--schedule`'s long help: the names.
fn schedule_help() -> String {
    format!(
        "Schedule type (default: the sampler's own, A1111's \"Automatic\"): {}",
        schedule_names()
    )
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
    /// Sampler, as A1111 names it (or an old combined name such as "DPM++ 2M Karras").
    #[arg(long, default_value = "Euler a", value_parser = parse_sampler, long_help = sampler_help())]
    pub sampler: String,
    /// Schedule type (default: the sampler's own).
    #[arg(long, value_parser = parse_schedule, long_help = schedule_help())]
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
    #[arg(long, default_value = "gpu", value_parser = RNG_NAMES)]
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
    /// Compute device (wgpu and cuda when built with that feature).
    #[arg(long, default_value = "cpu", value_parser = DEVICE_NAMES)]
    pub device: String,
    /// What the networks compute in: f32 (the reference results), f16 or bf16 (half the
    /// weights' memory; on GPUs, A1111's default).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    pub precision: Precision,
    /// Where the prompt's `<lora:name:weight>` (or `<lora:name:te:unet>`) tags find their
    /// `.safetensors` files (subfolders too; a file name or its `ss_output_name`), as
    /// A1111's `models/Lora`.
    #[arg(long, default_value = "models/Lora")]
    pub lora_dir: PathBuf,
    /// Where the prompt's `<hypernet:name:multiplier>` tags find their A1111 `.pt` files
    /// (subfolders too), as A1111's `models/hypernetworks`.
    #[arg(long, default_value = "models/hypernetworks")]
    pub hypernetwork_dir: PathBuf,
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
    hypernetwork::HypernetworkLibrary,
    infotext,
    lora::{LoraLibrary, PromptLoras},
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
        Ok(StableDiffusion::load_with(&path, &options, &device)?.with_precision(self.precision)?)
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
            hires: None,
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

    /// The prompt's `<lora:…>` tags applied to a copy of `model` from `--lora-dir`; prints
    /// each tag that was skipped (unknown name, a multiplier that is not a number, a file
    /// that does not fit), as A1111 goes on without it.
    ///
    /// # Errors
    /// When `--lora-dir` cannot be listed, or the applicable files do not fit together.
    pub fn loras(&self, model: &StableDiffusion) -> anyhow::Result<PromptLoras> {
        let (_, tags) =
            sd_textual_inversion::sd_core::sd_prompt::parse_extra_networks(&self.prompt);
        let library = if tags.iter().any(|t| t.kind == "lora" || t.kind == "lyco") {
            LoraLibrary::scan(&self.lora_dir)?
        } else {
            LoraLibrary::default()
        };
        let loras = library.activate(model, &self.prompt)?;
        for skipped in &loras.skipped {
            eprintln!("Skipping LoRA {}: {}", skipped.name, skipped.reason);
        }
        for (path, modules) in &loras.report.failed {
            for (module, reason) in modules {
                eprintln!("{}: left out {module}: {reason}", path.display());
            }
        }
        for (path, modules) in &loras.report.unmatched {
            eprintln!(
                "{}: {} modules name no layer of this model and were left out (first: {})",
                path.display(),
                modules.len(),
                modules.first().map_or("", String::as_str)
            );
        }
        Ok(loras)
    }

    /// The prompt's extra networks applied to a copy of `model`: its `<lora:…>` tags
    /// ([`loras`](Self::loras)), then its `<hypernet:…>` tags from `--hypernetwork-dir`
    /// (each skipped tag printed with the reason).
    ///
    /// # Errors
    /// As [`loras`](Self::loras); a `--hypernetwork-dir` that cannot be listed.
    pub fn extra_networks(&self, model: &StableDiffusion) -> anyhow::Result<PromptLoras> {
        let mut loras = self.loras(model)?;
        let (_, tags) =
            sd_textual_inversion::sd_core::sd_prompt::parse_extra_networks(&self.prompt);
        if tags.iter().any(|t| t.kind == "hypernet") {
            let library = HypernetworkLibrary::scan(&self.hypernetwork_dir)?;
            let (model, skipped) = library.activate(&loras.model, &self.prompt);
            for skipped in &skipped {
                eprintln!("Skipping hypernetwork {}: {}", skipped.name, skipped.reason);
            }
            loras.model = model;
        }
        Ok(loras)
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
