//! Step 3: train an embedding, as A1111's Train tab; optionally generate with it afterwards.
//!
//! ```text
//! # On the bundled model and the bundled sample set (a red disc), then a picture with it:
//! sdti train --name red-disc --init-text disc \
//!     --steps 30 --generate "a photo of red-disc" --output red-disc.png
//! # A real run:
//! sdti train --model sd15.safetensors \
//!     --embedding embeddings/realbenny-t1.pt --data benny-512 --template subject_filewords \
//!     --learn-rate "0.005:100, 1e-3:1000, 1e-5" --steps 3000 --log-dir textual_inversion
//! ```
//!
//! Ctrl-C stops after the current step, saves the embedding and exits cleanly.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::{data_or_sample_set, model_or_bundled, training_device};
use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use sd_textual_inversion::TrainError;
use sd_textual_inversion::create::{check_vectors, create_embedding, sanitized_name};
use sd_textual_inversion::sd_core::model::Precision;
use sd_textual_inversion::sd_core::sd_clip::ClipTokenizer;
use sd_textual_inversion::sd_core::{
    GenerationRequest, StableDiffusion, embeddings::read_file, infotext,
};
use sd_textual_inversion::train::{
    CancelToken, SavedOptimizer, StopReason, TrainConfig, TrainEvent, Trainer, Validation,
    optimizer_path,
};

/// Train a textual-inversion embedding (A1111's Train tab).
#[derive(Parser, serde::Serialize)]
#[command(args_override_self = true)]
pub struct Args {
    /// Read the flags from a TOML file (`learn_rate = "0.005"`, `steps = 3000`; flags on the
    /// command line win), or from a run's `settings.toml` / `settings.json` to repeat it.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The checkpoint (default: the bundled tiny model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// An existing embedding to train (resumes from its step).
    #[arg(long, conflicts_with = "name")]
    embedding: Option<PathBuf>,
    /// Or create one with this name.
    #[arg(long)]
    name: Option<String>,
    /// Initialization text of a created embedding.
    #[arg(long, default_value = "*")]
    init_text: String,
    /// Vectors per token of a created embedding.
    #[arg(long, default_value_t = 1)]
    vectors: usize,
    /// Folder of training pictures (default: the bundled sample set).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Prompt template: style, style_filewords, subject, subject_filewords, none, filewords,
    /// or a file.
    #[arg(long, default_value = "subject_filewords")]
    template: String,
    /// Learning rate or schedule (`0.005:100, 1e-3:1000, 1e-5`).
    #[arg(long, default_value = "0.005")]
    learn_rate: String,
    /// Pictures per step.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    gradient_accumulation: usize,
    /// The step to stop at.
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
    /// Write the loss CSV (`textual_inversion_loss.csv`) every N steps (0: never); A1111's
    /// "Save a csv containing the loss to log directory every N steps".
    #[arg(long, default_value_t = 500)]
    csv_every: usize,
    /// Where the run folder goes.
    #[arg(long, default_value = "textual_inversion")]
    log_dir: PathBuf,
    /// Where the final `<name>.pt` goes.
    #[arg(long, default_value = "embeddings")]
    embeddings_dir: PathBuf,
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
    /// Replace an existing `<embeddings-dir>/<name>.pt` (a resumed `--embedding` always may).
    #[arg(long)]
    overwrite: bool,
    /// Preview prompt (default: the batch's first caption).
    #[arg(long)]
    preview_prompt: Option<String>,
    /// After training, generate a picture of this prompt with the new embedding.
    #[arg(long)]
    generate: Option<String>,
    /// Where the generated picture goes.
    #[arg(long, default_value = "output.png")]
    output: PathBuf,
    /// Compute device (wgpu and cuda when built with that feature).
    #[arg(long, default_value = "cpu", value_parser = crate::cli::DEVICE_NAMES)]
    device: String,
    /// What the frozen networks compute in: f32 (the reference results), f16 (the loss
    /// scaled as PyTorch's GradScaler does) or bf16; the embedding is trained in f32 always.
    #[arg(long, default_value = "f32", value_parser = crate::cli::parse_precision)]
    precision: Precision,
    /// Evaluate a validation loss every N steps (0: never, as A1111): the training loss at
    /// fixed timesteps and noise, in the CSV and the plot; the best step's vectors are kept as
    /// `<run folder>/embeddings/<name>-best.pt`.
    #[arg(long, default_value_t = 0)]
    validate_every: usize,
    /// Validate on these held-out pictures instead of the training ones.
    #[arg(long)]
    validation_data: Option<PathBuf>,
    /// Stop when the validation loss has not improved for this many evaluations.
    #[arg(long)]
    validation_patience: Option<usize>,
    /// The timesteps the validation loss averages over, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,300,500,700,900")]
    validation_timesteps: Vec<usize>,
    /// Recompute memory-bound operations (norms, activations) in the backward pass instead of
    /// keeping them: burn's balanced gradient checkpointing (about 5 % less peak memory for an
    /// SD 1.5 step at 512², no measurable time cost).
    #[arg(long)]
    gradient_checkpointing: bool,
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    train(args).map_err(name_the_flag)
}

impl Args {
    /// With `--config FILE`, the flags again from the file's keys followed by `tokens`, the
    /// command line's tokens after the subcommand (see [`crate::run_config`]); without it,
    /// `self`. A bad value gets clap's own message and exit status.
    ///
    /// # Errors
    /// The file cannot be read, or holds a key that is not a flag (named with the file).
    pub fn with_config(self, tokens: &[OsString]) -> anyhow::Result<Self> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let command = Self::command().name("train");
        let merged = crate::run_config::merged_args(&path, &command, tokens)?;
        let matches = command
            .try_get_matches_from(merged)
            .unwrap_or_else(|e| e.exit());
        Self::from_arg_matches(&matches).map_err(|e| e.exit())
    }
}

/// Writes `settings.toml` into the run folder: every flag of this run of `sdti <command>`
/// (defaults included), the keys `--config` reads.
pub(crate) fn write_settings_toml(
    args: &impl serde::Serialize,
    command: &str,
    run_folder: &std::path::Path,
) -> anyhow::Result<()> {
    let text = toml::to_string(args).context("the flags as TOML")?;
    let header =
        format!("# The flags of this run: `sdti {command} --config settings.toml` repeats it.\n");
    let path = run_folder.join("settings.toml");
    sd_textual_inversion::sd_core::fs::write_atomic(&path, format!("{header}{text}").as_bytes())
        .with_context(|| path.display().to_string())?;
    Ok(())
}

/// A token the first Ctrl-C cancels (the run stops after the current step and saves); a
/// second one quits at once (the file then holds what was saved last).
///
/// # Errors
/// When the handler cannot be installed.
pub(crate) fn cancel_on_ctrl_c() -> anyhow::Result<CancelToken> {
    let cancel = CancelToken::new();
    let on_signal = cancel.clone();
    ctrlc::set_handler(move || {
        if on_signal.is_cancelled() {
            eprintln!("\ninterrupted again: quitting without saving");
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after this step to save (Ctrl-C again quits now)");
        on_signal.cancel();
    })
    .context("installing the Ctrl-C handler")?;
    Ok(cancel)
}

/// The training progress bar, up to `steps`.
pub(crate) fn progress_bar(steps: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// A training event on the bar (A1111's: the mean loss of the last 3 × pictures steps).
pub(crate) fn show_progress(bar: &indicatif::ProgressBar, event: &TrainEvent) {
    match event {
        TrainEvent::Started { initial_step, .. } => bar.set_position(*initial_step as u64),
        TrainEvent::Step {
            step,
            mean_loss,
            learn_rate,
            ..
        } => {
            bar.set_position(*step as u64);
            bar.set_message(format!("loss {mean_loss:.7} lr {learn_rate}"));
        }
        TrainEvent::NaN { step } => {
            bar.println(format!("loss became NaN at step {step}: stopping"))
        }
        TrainEvent::Diverged { step, learn_rate } => bar.println(format!(
            "the update at step {step} (learning rate {learn_rate}) overflowed: stopping"
        )),
        TrainEvent::Encoding { done, total } => {
            bar.set_message(format!("encoding the pictures: {done}/{total}"));
        }
        TrainEvent::Rendering { done, total } => {
            bar.set_message(format!("preview: step {done}/{total}"));
        }
        TrainEvent::Validation {
            step,
            loss,
            best_step,
            best_loss,
        } => bar.println(format!(
            "validation loss at step {step}: {loss:.7} (best: {best_loss:.7} at step {best_step})"
        )),
        TrainEvent::Saved { path, .. } => bar.println(format!("saved {}", path.display())),
        TrainEvent::Preview { path, .. } => bar.println(format!("preview {}", path.display())),
        _ => {}
    }
}

/// Says why a run of `what` (an embedding, a hypernetwork) stopped; a failed run is an
/// error (the file at `path` keeps the last finite values).
///
/// # Errors
/// For a NaN loss or an update that overflowed.
pub(crate) fn report_stop(
    reason: StopReason,
    path: &std::path::Path,
    what: &str,
) -> anyhow::Result<()> {
    match reason {
        StopReason::Cancelled => eprintln!("interrupted: saved the {what}"),
        StopReason::NoImprovement { best_step } => {
            eprintln!("stopped early: the validation loss has not improved since step {best_step}")
        }
        StopReason::NaN { step } => anyhow::bail!(
            "training stopped at step {step}: the loss is NaN; {} holds the last good values",
            path.display()
        ),
        StopReason::Diverged { step } => anyhow::bail!(
            "training stopped at step {step}: the optimizer's update overflowed (the loss was \
             finite; is --learn-rate too large?); {} holds the last good values",
            path.display()
        ),
        _ => {}
    }
    Ok(())
}

/// A library error about a setting, prefixed with the flag that sets it.
pub(crate) fn name_the_flag(error: anyhow::Error) -> anyhow::Error {
    let Some(setting) = error
        .downcast_ref::<TrainError>()
        .and_then(TrainError::setting)
    else {
        return error;
    };
    let flag = match setting {
        "data_dir" => "--data".to_owned(),
        other => format!("--{}", other.replace('_', "-")),
    };
    anyhow::anyhow!("{flag}: {error}")
}

fn train(args: Args) -> anyhow::Result<()> {
    let device = training_device(&args.device, args.gradient_checkpointing)?;
    let model_path = model_or_bundled(args.model.clone())?;
    let bundled_data = args.data.is_none();
    let data = data_or_sample_set(args.data.clone())?;
    // The bundled model and sample set are 64×64; real models train at 512.
    let default_side = if bundled_data && args.model.is_none() {
        64
    } else {
        512
    };
    // The embedding's name and step, known before the model loads.
    let (loaded, name, initial_step) = match (&args.embedding, &args.name) {
        (Some(path), _) => {
            let (e, _) = read_file(path)?;
            let (name, step) = (e.name.clone(), e.step.unwrap_or(0).max(0) as usize);
            (Some(e), name, step)
        }
        (None, Some(name)) => {
            check_vectors(args.vectors)?;
            (None, sanitized_name(name)?, 0)
        }
        (None, None) => anyhow::bail!("pass --embedding FILE or --name NAME"),
    };
    let preview = args.preview_prompt.clone().map(|prompt| GenerationRequest {
        prompt,
        width: args.width.unwrap_or(default_side),
        height: args.height.unwrap_or(default_side),
        seed: args.seed as i64,
        ..GenerationRequest::default()
    });
    let config = TrainConfig {
        data_dir: data,
        log_dir: args.log_dir.clone(),
        embeddings_dir: args.embeddings_dir.clone(),
        template: args.template.clone(),
        learn_rate: args.learn_rate.clone(),
        batch_size: args.batch_size,
        gradient_accumulation: args.gradient_accumulation,
        clip_grad: args.clip_grad.clone(),
        steps: args.steps,
        width: args.width.unwrap_or(default_side),
        height: args.height.unwrap_or(default_side),
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
        resume_from: args.embedding.clone(),
        validation: (args.validate_every > 0).then(|| Validation {
            every: args.validate_every,
            data_dir: args.validation_data.clone(),
            timesteps: args.validation_timesteps.clone(),
            seed: args.seed,
            patience: args.validation_patience,
        }),
        ..TrainConfig::default()
    };
    // Every check that needs no model, with the standard CLIP vocabulary (the trainer checks
    // again with the model's own): a bad flag fails before a checkpoint of gigabytes loads.
    config.preflight(&name, initial_step, &ClipTokenizer::standard()?)?;
    let model = StableDiffusion::load(&model_path, &device)?.with_precision(args.precision)?;
    let embedding = match loaded {
        Some(e) => e,
        None => create_embedding(&model, &name, &args.init_text, args.vectors)?,
    };
    let mut trainer = Trainer::new(model, embedding, config)?;
    // Resume AdamW's state when it was saved beside the embedding.
    if let Some(path) = &args.embedding
        && let Ok(text) = std::fs::read(optimizer_path(path))
        && let Ok(saved) = serde_json::from_slice::<SavedOptimizer>(&text)
    {
        trainer = trainer.with_saved_optimizer(&saved);
    }
    let cancel = cancel_on_ctrl_c()?;
    let bar = progress_bar(args.steps);
    let outcome = trainer.run(
        &mut |event| {
            if let TrainEvent::Started { run_folder, .. } = event {
                // The flags as given, so `--config <run folder>/settings.toml` repeats the run.
                if let Err(e) = write_settings_toml(&args, "train", run_folder) {
                    bar.println(format!("could not write the run's settings.toml: {e:#}"));
                }
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
    if let Some(best) = &outcome.best {
        eprintln!(
            "best validation loss {:.7} at step {}: {}",
            best.loss,
            best.step,
            best.path.display()
        );
    }
    report_stop(outcome.reason, &outcome.path, "embedding")?;

    if let Some(prompt) = &args.generate {
        // The trained model, handed back by the trainer (no second load), with the file just
        // written: its shorthash goes into the picture's `TI hashes`, as A1111 writes it.
        let model = outcome.model;
        let lookup = model.load_embedding(&outcome.path)?;
        let params = GenerationRequest {
            prompt: prompt.clone(),
            width: args.width.unwrap_or(default_side),
            height: args.height.unwrap_or(default_side),
            seed: args.seed as i64,
            ..GenerationRequest::default()
        };
        let generation = model.txt2img(&params, &lookup, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })?;
        let image = &generation.images[0];
        let text = generation.infotext(0, &model);
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
