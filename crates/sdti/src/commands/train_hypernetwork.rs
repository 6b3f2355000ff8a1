//! Train a hypernetwork, as A1111's Train tab ("Train Hypernetwork"); optionally generate
//! with it afterwards.
//!
//! ```text
//! # Create one, train it on the bundled model and sample set, then a picture with it:
//! sdti create-hypernetwork --name discs --sizes 32,16 --output-dir models/hypernetworks
//! sdti train-hypernetwork --name discs --steps 30 --learn-rate 0.0001 \
//!     --generate "a photo of a disc <hypernet:discs:1>" --output discs.png
//! # A real run:
//! sdti train-hypernetwork --model sd15.safetensors --name pixar --data pixar-512 \
//!     --template hypernetwork --learn-rate "0.00001" --steps 10000
//! ```
//!
//! The hypernetwork is read from `<hypernetwork-dir>/<name>.pt` (or `--hypernetwork FILE`)
//! and written back to `<hypernetwork-dir>/<name>.pt`, with copies in the run folder's
//! `hypernetworks/`. Ctrl-C stops after the current step, saves and exits cleanly.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use sd_textual_inversion::sd_core::hypernetwork::{HypernetworkFile, HypernetworkLibrary};
use sd_textual_inversion::sd_core::sd_clip::ClipTokenizer;
use sd_textual_inversion::sd_core::{GenerationRequest, StableDiffusion, infotext};
use sd_textual_inversion::train::{
    HypernetworkTrainer, SavedOptimizer, TrainConfig, TrainEvent, TrainedKind, optimizer_path,
};

use super::train::{
    cancel_on_ctrl_c, name_the_flag, progress_bar, report_stop, show_progress, write_settings_toml,
};
use crate::cli::{data_or_sample_set, model_or_bundled, training_device};

/// Train a hypernetwork (A1111's Train tab, "Train Hypernetwork").
#[derive(Parser, serde::Serialize)]
#[command(args_override_self = true)]
pub struct Args {
    /// Read the flags from a TOML file (flags on the command line win), or from a run's
    /// `settings.toml` to repeat it.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The checkpoint (default: the bundled tiny model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The hypernetwork to train, by name: `<hypernetwork-dir>/<name>.pt`, as
    /// `create-hypernetwork` wrote it (a trained one continues from its step).
    #[arg(long)]
    name: Option<String>,
    /// Or the hypernetwork file itself; the result still goes to `<hypernetwork-dir>`.
    #[arg(long, conflicts_with = "name")]
    hypernetwork: Option<PathBuf>,
    /// Where hypernetworks are read by name and the trained one is written.
    #[arg(long, default_value = "models/hypernetworks")]
    hypernetwork_dir: PathBuf,
    /// Folder of training pictures (default: the bundled sample set).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Prompt template: hypernetwork, style_filewords, subject_filewords, filewords, ... or a
    /// file. `[name]` is the hypernetwork's name, as words.
    #[arg(long, default_value = "hypernetwork")]
    template: String,
    /// Learning rate or schedule (A1111's hypernetwork default: 0.00001).
    #[arg(long, default_value = "0.00001")]
    learn_rate: String,
    /// Pictures per step.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    gradient_accumulation: usize,
    /// The step to stop at (counting the file's earlier steps).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Training width.
    #[arg(long)]
    width: Option<u32>,
    /// Training height.
    #[arg(long)]
    height: Option<u32>,
    /// Save a copy every N steps (0: never).
    #[arg(long, default_value_t = 500)]
    save_every: usize,
    /// Preview picture every N steps (0: never).
    #[arg(long, default_value_t = 500)]
    preview_every: usize,
    /// Write the loss CSV (`hypernetwork_loss.csv`) every N steps (0: never).
    #[arg(long, default_value_t = 500)]
    csv_every: usize,
    /// Where the run folder goes.
    #[arg(long, default_value = "textual_inversion")]
    log_dir: PathBuf,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Gradient clipping: `value:SCHEDULE` or `norm:SCHEDULE`.
    #[arg(long)]
    clip_grad: Option<String>,
    /// Latent sampling: once, deterministic or random.
    #[arg(long, default_value = "once")]
    latent_sampling: String,
    /// Shuffle caption tags.
    #[arg(long)]
    shuffle_tags: bool,
    /// Drop each caption tag with this probability.
    #[arg(long, default_value_t = 0.0)]
    tag_dropout: f32,
    /// Weight the loss by PNG alpha.
    #[arg(long)]
    use_alpha_weight: bool,
    /// Replace a trained `<hypernetwork-dir>/<name>.pt` when training another file
    /// (`--hypernetwork`) of that name.
    #[arg(long)]
    overwrite: bool,
    /// Preview prompt (default: the batch's first caption).
    #[arg(long)]
    preview_prompt: Option<String>,
    /// After training, generate a picture of this prompt (`<hypernet:NAME:1>` in it uses the
    /// trained file).
    #[arg(long)]
    generate: Option<String>,
    /// Where the generated picture goes.
    #[arg(long, default_value = "output.png")]
    output: PathBuf,
    /// Compute device (wgpu and cuda when built with that feature).
    #[arg(long, default_value = "cpu", value_parser = crate::cli::DEVICE_NAMES)]
    device: String,
    /// Recompute memory-bound operations in the backward pass instead of keeping them.
    #[arg(long)]
    gradient_checkpointing: bool,
}

impl Args {
    /// With `--config FILE`, the flags again from the file's keys followed by `tokens` (see
    /// [`crate::run_config`]); without it, `self`.
    ///
    /// # Errors
    /// The file cannot be read, or holds a key that is not a flag.
    pub fn with_config(self, tokens: &[OsString]) -> anyhow::Result<Self> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let command = Self::command().name("train-hypernetwork");
        let merged = crate::run_config::merged_args(&path, &command, tokens)?;
        let matches = command
            .try_get_matches_from(merged)
            .unwrap_or_else(|e| e.exit());
        Self::from_arg_matches(&matches).map_err(|e| e.exit())
    }
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    train(args).map_err(name_the_flag)
}

fn train(args: Args) -> anyhow::Result<()> {
    let device = training_device(&args.device, args.gradient_checkpointing)?;
    let model_path = model_or_bundled(args.model.clone())?;
    let bundled_data = args.data.is_none();
    let data = data_or_sample_set(args.data.clone())?;
    let default_side = if bundled_data && args.model.is_none() {
        64
    } else {
        512
    };
    let source = match (&args.hypernetwork, &args.name) {
        (Some(path), _) => path.clone(),
        (None, Some(name)) => args.hypernetwork_dir.join(format!("{name}.pt")),
        (None, None) => anyhow::bail!("pass --name NAME or --hypernetwork FILE"),
    };
    let file = HypernetworkFile::read(&source)
        .with_context(|| format!("--name/--hypernetwork: {}", source.display()))?;
    let name = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.name.clone());
    let initial_step = file.step.unwrap_or(0).max(0) as usize;
    let side = (
        args.width.unwrap_or(default_side),
        args.height.unwrap_or(default_side),
    );
    let preview = args.preview_prompt.clone().map(|prompt| GenerationRequest {
        prompt,
        width: side.0,
        height: side.1,
        seed: args.seed as i64,
        ..GenerationRequest::default()
    });
    let config = TrainConfig {
        data_dir: data,
        log_dir: args.log_dir.clone(),
        hypernetwork_dir: args.hypernetwork_dir.clone(),
        template: args.template.clone(),
        learn_rate: args.learn_rate.clone(),
        batch_size: args.batch_size,
        gradient_accumulation: args.gradient_accumulation,
        clip_grad: args.clip_grad.clone(),
        steps: args.steps,
        width: side.0,
        height: side.1,
        save_every: args.save_every,
        preview_every: args.preview_every,
        csv_every: args.csv_every,
        preview,
        latent_sampling: args
            .latent_sampling
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--latent-sampling: {e}"))?,
        shuffle_tags: args.shuffle_tags,
        tag_dropout: args.tag_dropout,
        use_alpha_weight: args.use_alpha_weight,
        seed: args.seed,
        overwrite: args.overwrite,
        // Training by name continues the file in the folder; another file replaces a
        // trained one of its name only with --overwrite.
        resume_from: args.name.as_ref().map(|_| source.clone()),
        ..TrainConfig::default()
    };
    config.preflight_for(
        TrainedKind::Hypernetwork,
        &name,
        initial_step,
        &ClipTokenizer::standard()?,
    )?;
    let model = StableDiffusion::load(&model_path, &device)?;
    let mut trainer = HypernetworkTrainer::new(model, file, config)?;
    // Resume AdamW's state when it was saved beside the file (and belongs to it).
    if let Ok(text) = std::fs::read(optimizer_path(&source))
        && let Ok(saved) = serde_json::from_slice::<SavedOptimizer>(&text)
    {
        trainer = trainer.with_saved_optimizer(&saved);
    }
    let cancel = cancel_on_ctrl_c()?;
    let bar = progress_bar(args.steps);
    let outcome = trainer.run(
        &mut |event| {
            if let TrainEvent::Started { run_folder, .. } = event
                && let Err(e) = write_settings_toml(&args, "train-hypernetwork", run_folder)
            {
                bar.println(format!("could not write the run's settings.toml: {e:#}"));
            }
            show_progress(&bar, event);
        },
        &cancel,
    )?;
    bar.finish_and_clear();
    for skipped in &outcome.skipped {
        eprintln!("skipped {}: {}", skipped.path.display(), skipped.error);
    }
    println!("{}", outcome.path.display());
    report_stop(outcome.reason, &outcome.path, "hypernetwork")?;

    if let Some(prompt) = &args.generate {
        // `<hypernet:...>` tags of the prompt, from the folder the file was written to (the
        // generation removes the tags from the text).
        let library = HypernetworkLibrary::scan(&args.hypernetwork_dir)?;
        let (styled, skipped) = library.activate(&outcome.model, prompt);
        for skipped in &skipped {
            eprintln!("Skipping hypernetwork {}: {}", skipped.name, skipped.reason);
        }
        let params = GenerationRequest {
            prompt: prompt.clone(),
            width: side.0,
            height: side.1,
            seed: args.seed as i64,
            ..GenerationRequest::default()
        };
        let lookup = Default::default();
        let generation = styled.txt2img(&params, &lookup, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })?;
        let image = &generation.images[0];
        let text = generation.infotext(0, &styled);
        infotext::write_png_rgb8(
            &args.output,
            image.width(),
            image.height(),
            image.as_raw(),
            &text,
        )?;
        println!("{}", args.output.display());
    }
    Ok(())
}
