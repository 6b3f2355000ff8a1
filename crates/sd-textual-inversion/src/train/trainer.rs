//! The training loop: A1111's `train_embedding`, step for step (learning-rate schedule,
//! batches, gradient accumulation and clipping, saves, previews, loss CSV), around
//! [`loss_and_grad`] and [`AdamW`].

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use sd_core::conditioning::{EmbeddingId, EmbeddingLookup, TextualInversionVectors};
use sd_core::embeddings::Embedding;
use sd_core::noise::{RngSource, TorchCpuGenerator};
use sd_core::{GenerationParams, StableDiffusion};
use serde::{Deserialize, Serialize};

use super::adamw::{AdamW, AdamWConfig, AdamWState};
use super::config::TrainConfig;
use super::data::TrainingSet;
use super::events::{CancelToken, StopReason, TrainEvent};
use super::log::{LossRow, RunFolder};
use super::preflight::{PromptCheck, RunLock};
use super::step::{StepBatch, freeze, loss_and_grad};
use crate::create::check_vectors;
use crate::dataset::batching::{EpochPlan, GroupedBatchSampler};
use crate::dataset::caption::CaptionBuilder;
use crate::dataset::rng::{RandomSource, SplitMix64};
use crate::error::{Result, TrainError};

/// How a run ended and what it left.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The embedding as trained (its `step` is the last completed step).
    pub embedding: Embedding,
    /// Where the final embedding was written.
    pub path: PathBuf,
    /// The run's folder (copies, previews, loss CSV, settings).
    pub run_folder: PathBuf,
    /// Why it ended.
    pub reason: StopReason,
    /// Pictures of the data folder that could not be used, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The optimizer state saved beside an embedding (`<file>.optim.json`), used on resume when
/// its checksum matches the embedding's (A1111 keeps a `.optim` file with the same rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedOptimizer {
    /// The embedding checksum the state belongs to.
    pub hash: String,
    /// AdamW's moments and step count.
    pub state: AdamWState,
}

/// Trains one embedding on one model.
///
/// ```no_run
/// use sd_textual_inversion::sd_core::{DeviceChoice, StableDiffusion};
/// use sd_textual_inversion::train::{CancelToken, TrainConfig, Trainer};
///
/// let device = DeviceChoice::Cpu.device()?.autodiff();
/// let model = StableDiffusion::load("v1-5-pruned-emaonly.safetensors", &device)?;
/// let embedding = sd_textual_inversion::create::create_embedding(&model, "realbenny-t1", "person", 1)?;
/// let config = TrainConfig { data_dir: "benny-512".into(), steps: 3000, ..Default::default() };
/// let outcome = Trainer::new(model, embedding, config)?
///     .run(&mut |event| println!("{event:?}"), &CancelToken::new())?;
/// println!("{}", outcome.path.display());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer {
    model: StableDiffusion,
    config: TrainConfig,
    embedding: Embedding,
    optimizer: AdamW,
}

impl Trainer {
    /// A trainer for `embedding` on `model`, which must live on an autodiff device
    /// (`device.autodiff()`); its weights are frozen here.
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] for a model off an autodiff device or an embedding whose
    /// width is not the text encoder's; [`TrainError::OverLimit`] for an embedding of more
    /// than [`MAX_VECTORS`](super::MAX_VECTORS) vectors.
    pub fn new(model: StableDiffusion, embedding: Embedding, config: TrainConfig) -> Result<Self> {
        if model.device().gradient_checkpointing_strategy().is_none() {
            return Err(TrainError::InvalidConfig {
                name: "device",
                reason: "training needs the model on an autodiff device (`device.autodiff()`)"
                    .into(),
            });
        }
        let width = model.architecture().text_encoder.hidden_size;
        if embedding.vectors.dim != width {
            return Err(TrainError::InvalidConfig {
                name: "embedding",
                reason: format!(
                    "{} is {} wide; this model's text encoder is {width}",
                    embedding.name, embedding.vectors.dim
                ),
            });
        }
        check_vectors(embedding.vectors.n)?;
        let optimizer = AdamW::new(AdamWConfig::default(), embedding.vectors.data.len());
        Ok(Self {
            model: freeze(model),
            config,
            embedding,
            optimizer,
        })
    }

    /// Continues from a saved optimizer state (see [`SavedOptimizer`]) when it belongs to
    /// this embedding; otherwise starts AdamW afresh, as A1111 does.
    pub fn with_saved_optimizer(mut self, saved: &SavedOptimizer) -> Self {
        let fits = saved.state.exp_avg.len() == self.embedding.vectors.data.len();
        if fits && self.embedding.checksum().as_deref() == Some(saved.hash.as_str()) {
            self.optimizer.state = saved.state.clone();
        }
        self
    }

    /// The model (frozen, on the autodiff device).
    pub fn model(&self) -> &StableDiffusion {
        &self.model
    }

    /// Runs until the configured step, the end of the learning-rate schedule, a NaN loss, an
    /// update that overflows, or `cancel`; then writes the embedding to
    /// `<embeddings_dir>/<name>.pt` (also on cancel and NaN, with the last good vectors) and
    /// returns. An embedding already at or past the configured step is written unchanged, as
    /// A1111 does.
    ///
    /// First it takes the run's locks ([`RunLock`]) and makes every check of
    /// [`TrainConfig::preflight`] with the model's tokenizer, so a bad setting fails before the
    /// pictures are encoded. During the run each prompt built from a caption whose tags are
    /// shuffled or dropped is checked again ([`TrainError::EmbeddingNotInPrompt`]).
    ///
    /// # Errors
    /// Those of [`TrainConfig::preflight`]; unreadable pictures folder, files that cannot be
    /// written, network errors.
    pub fn run(
        mut self,
        events: &mut dyn FnMut(&TrainEvent),
        cancel: &CancelToken,
    ) -> Result<TrainOutcome> {
        let config = self.config.clone();
        let name = self.embedding.name.clone();
        let steps = config.steps;
        let initial_step = self.embedding.step.unwrap_or(0).max(0) as usize;
        // Before anything else: a second run of this embedding stops here, before it can
        // touch the first one's files.
        let _lock = RunLock::acquire(&config, &name)?;
        let checked = config.check(&name, initial_step, &self.model.tokenizer)?;
        let final_path = config.embeddings_dir.join(format!("{name}.pt"));
        let mut folder = RunFolder::new(&config.log_dir, &name);
        // A run killed while writing leaves `.<file>.<pid>.tmp` files; the real files are
        // whole (they are renamed into place), so the temporaries of dead processes are only
        // litter.
        folder.remove_stale_temporaries()?;
        if initial_step >= steps {
            // A1111's loop ends at once and saves the embedding as it is.
            self.save(&final_path)?;
            events(&TrainEvent::Saved {
                step: initial_step,
                path: final_path.clone(),
            });
            return Ok(TrainOutcome {
                embedding: self.embedding,
                path: final_path,
                run_folder: folder.root,
                reason: StopReason::Completed,
                skipped: Vec::new(),
            });
        }
        let mut scheduler = checked.schedule.scheduler();
        let mut clip_scheduler = checked.clip.map(|(mode, s)| (mode, s.scheduler()));
        let template = checked.template;
        let captions = CaptionBuilder::new(template.clone(), &name)
            .shuffle_tags(config.shuffle_tags)
            .tag_drop_out(f64::from(config.tag_dropout));
        let mut rng = SplitMix64::new(config.seed);
        let mut noise = TorchCpuGenerator::new(config.seed);
        let set = TrainingSet::load(&self.model, &config, &captions, &mut rng, &mut noise)?;
        let plan = EpochPlan::new(
            set.items.len(),
            config.batch_size,
            config.gradient_accumulation,
        )?;
        let mut sampler =
            GroupedBatchSampler::new(vec![(0..set.items.len()).collect()], plan.batch_size())?;
        let settings = serde_json::json!({
            "embedding_name": name,
            "initial_step": initial_step,
            "model": self.model.name(),
            "model_hash": self.model.hash().map(|h| h.short().to_owned()),
            "images": set.paths().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "config": config,
        });
        folder.write_settings(&settings)?;
        events(&TrainEvent::Started {
            initial_step,
            steps,
            images: set.items.len(),
            steps_per_epoch: plan.steps_per_epoch(),
            run_folder: folder.root.clone(),
        });

        let mut lookup = EmbeddingLookup::new();
        let mut id = self.register(&mut lookup)?;
        let gradient_step = plan.gradient_step();
        let mut step = initial_step;
        let mut grad_sum = vec![0f32; self.embedding.vectors.data.len()];
        let mut loss_sum = 0f32;
        let mut pending_image_embedding = None;
        let mut reason = StopReason::Completed;
        'training: loop {
            let batches = sampler.epoch(&mut rng);
            for (j, batch) in batches.iter().enumerate() {
                if j == plan.max_batches_per_epoch() {
                    break;
                }
                scheduler.step(step as u64);
                if scheduler.finished() || step >= steps {
                    break 'training;
                }
                if cancel.is_cancelled() {
                    reason = StopReason::Cancelled;
                    break 'training;
                }
                if let Some((_, s)) = clip_scheduler.as_mut() {
                    s.step(step as u64);
                }
                let prompts = PromptCheck {
                    tokenizer: &self.model.tokenizer,
                    lookup: &lookup,
                    id,
                    name: &name,
                    template: &template,
                    max_chars: config.limits.max_prompt_chars,
                };
                let batch = self.batch(&set, batch, &captions, &prompts, &mut rng, &mut noise)?;
                let out = loss_and_grad(
                    &self.model,
                    &lookup,
                    id,
                    &self.embedding.vectors.data,
                    config.clip_skip,
                    &batch,
                )?;
                if !out.loss.is_finite() || out.grad.iter().any(|g| !g.is_finite()) {
                    events(&TrainEvent::NaN { step: step + 1 });
                    reason = StopReason::NaN { step: step + 1 };
                    break 'training;
                }
                loss_sum += out.loss / gradient_step as f32;
                for (acc, g) in grad_sum.iter_mut().zip(&out.grad) {
                    *acc += g / gradient_step as f32;
                }
                if !plan.is_optimizer_step(j) {
                    continue;
                }
                if let Some((mode, s)) = &clip_scheduler {
                    clip_gradient(&mut grad_sum, *mode, s.learn_rate());
                }
                let learn_rate = scheduler.learn_rate();
                let before = self.embedding.vectors.data.clone();
                self.optimizer
                    .step(&mut self.embedding.vectors.data, &grad_sum, learn_rate);
                if self.embedding.vectors.data.iter().any(|v| !v.is_finite()) {
                    // The loss and gradient were finite; the update overflowed (a learning
                    // rate too large for f32): keep the last good vectors.
                    self.embedding.vectors.data = before;
                    events(&TrainEvent::Diverged {
                        step: step + 1,
                        learn_rate,
                    });
                    reason = StopReason::Diverged { step: step + 1 };
                    break 'training;
                }
                step += 1;
                self.embedding.step = Some(step as i64);
                id = lookup.register(self.lookup_vectors()?, &self.model.tokenizer)?;
                let (epoch, epoch_step) = plan.csv_epoch(step as u64);
                events(&TrainEvent::Step {
                    step,
                    epoch: epoch.max(0) as usize,
                    epoch_step: epoch_step.max(0) as usize,
                    loss: loss_sum,
                    learn_rate,
                });
                // A1111 names saves and previews by `embedding.step + 1`.
                let steps_done = step + 1;
                if config.save_every > 0 && steps_done.is_multiple_of(config.save_every) {
                    let path = folder.embeddings().join(format!("{name}-{steps_done}.pt"));
                    self.save(&path)?;
                    events(&TrainEvent::Saved {
                        step,
                        path: path.clone(),
                    });
                    pending_image_embedding = Some(steps_done);
                }
                if config.csv_every > 0 && step.is_multiple_of(config.csv_every) {
                    folder.write_loss(LossRow {
                        step,
                        epoch: epoch.max(0) as usize,
                        epoch_step: epoch_step.max(0) as usize,
                        loss: loss_sum,
                        learn_rate,
                    })?;
                }
                if config.preview_every > 0 && steps_done.is_multiple_of(config.preview_every) {
                    let prompt = batch.texts.first().cloned().unwrap_or_default();
                    let (path, image) = self.preview(&folder, &lookup, steps_done, &prompt)?;
                    events(&TrainEvent::Preview { step, path, prompt });
                    if config.save_image_embeddings && pending_image_embedding == Some(steps_done) {
                        self.save_image_embedding(&folder, steps_done, &image)?;
                        pending_image_embedding = None;
                    }
                }
                loss_sum = 0.0;
                grad_sum.iter_mut().for_each(|g| *g = 0.0);
            }
        }
        self.save(&final_path)?;
        events(&TrainEvent::Saved {
            step,
            path: final_path.clone(),
        });
        Ok(TrainOutcome {
            embedding: self.embedding,
            path: final_path,
            run_folder: folder.root,
            reason,
            skipped: set.skipped,
        })
    }

    fn register(&self, lookup: &mut EmbeddingLookup) -> Result<EmbeddingId> {
        Ok(lookup.register(self.lookup_vectors()?, &self.model.tokenizer)?)
    }

    fn lookup_vectors(&self) -> Result<TextualInversionVectors> {
        let v = &self.embedding.vectors;
        Ok(TextualInversionVectors::new(
            self.embedding.name.clone(),
            v.data.clone(),
            v.n,
            v.dim,
        )?)
    }

    /// The micro-batch of dataset items `indices`: prompts (each checked to contain the
    /// embedding), latents, fresh noise and timesteps (uniform over the training timesteps,
    /// as ldm's `torch.randint`).
    fn batch(
        &self,
        set: &TrainingSet,
        indices: &[usize],
        captions: &CaptionBuilder,
        prompts: &PromptCheck<'_>,
        rng: &mut SplitMix64,
        noise: &mut TorchCpuGenerator,
    ) -> Result<StepBatch> {
        let device = self.model.device();
        let mut texts = Vec::with_capacity(indices.len());
        for &i in indices {
            let (line, text) = set.text(i, captions, rng);
            prompts.check(line, Some(&set.items[i].caption_source), &text)?;
            texts.push(text);
        }
        let latents: Vec<Tensor<3>> = indices
            .iter()
            .map(|&i| set.latent(i, &self.model, noise))
            .collect();
        let latents = Tensor::stack::<4>(latents, 0);
        let dims = latents.dims();
        let noise_values = noise.randn(dims.iter().product());
        let noise = Tensor::<4>::from_data(TensorData::new(noise_values, dims), device);
        let timesteps_max = self.model.noise_schedule().num_train_timesteps();
        let timesteps = indices.iter().map(|_| rng.below(timesteps_max)).collect();
        let weights: Option<Vec<Tensor<3>>> = indices
            .iter()
            .map(|&i| set.items[i].weight.clone())
            .collect();
        Ok(StepBatch {
            texts,
            latents,
            noise,
            timesteps,
            weight: weights.map(|w| Tensor::stack::<4>(w, 0)),
        })
    }

    /// Writes the embedding as it is now to `path` (A1111's `.pt`, with the checkpoint it was
    /// trained on), and the optimizer state beside it.
    fn save(&self, path: &Path) -> Result<()> {
        let mut e = self.embedding.clone();
        e.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| e.name.clone());
        e.sd_checkpoint = self.model.hash().map(|h| h.short().to_owned());
        e.sd_checkpoint_name = Some(self.model.name());
        e.requires_grad = true;
        sd_core::embeddings::write_file(path, &e).map_err(sd_core::CoreError::from)?;
        if let Some(hash) = e.checksum() {
            let saved = SavedOptimizer {
                hash,
                state: self.optimizer.state.clone(),
            };
            let json = serde_json::to_vec(&saved).unwrap_or_default();
            sd_core::fs::write_atomic(&optimizer_path(path), &json)?;
        }
        Ok(())
    }

    /// txt2img with the current vectors: the configured preview settings, or the batch's
    /// first prompt with 20 steps at the training size.
    fn preview(
        &self,
        folder: &RunFolder,
        lookup: &EmbeddingLookup,
        steps_done: usize,
        prompt: &str,
    ) -> Result<(PathBuf, image::RgbImage)> {
        let params = match &self.config.preview {
            Some(p) => p.clone(),
            None => GenerationParams {
                prompt: prompt.to_owned(),
                steps: 20,
                width: self.config.width,
                height: self.config.height,
                seed: self.config.seed as i64,
                rng: RngSource::Cpu,
                ..GenerationParams::default()
            },
        };
        let generation = self
            .model
            .txt2img(&params, lookup, &mut |_| ControlFlow::Continue(()))?;
        let image = generation.images.into_iter().next().unwrap_or_default();
        let path = folder
            .images()
            .join(format!("{}-{steps_done}.png", self.embedding.name));
        let text = format!(
            "{}\nSteps: {}, Seed: {}",
            params.prompt, params.steps, params.seed
        );
        sd_core::infotext::write_png_rgb8(
            &path,
            image.width(),
            image.height(),
            image.as_raw(),
            &text,
        )
        .map_err(sd_core::CoreError::from)?;
        Ok((path, image))
    }

    fn save_image_embedding(
        &self,
        folder: &RunFolder,
        steps_done: usize,
        image: &image::RgbImage,
    ) -> Result<()> {
        let path = folder
            .image_embeddings()
            .join(format!("{}-{steps_done}.png", self.embedding.name));
        let mut e = self.embedding.clone();
        e.sd_checkpoint = self.model.hash().map(|h| h.short().to_owned());
        e.sd_checkpoint_name = Some(self.model.name());
        let preview = sd_core::embeddings::formats::png_pixels::RgbImage {
            width: image.width() as usize,
            height: image.height() as usize,
            pixels: image.as_raw().clone(),
        };
        let bytes = sd_core::embeddings::formats::png_image::write(&path, &e, Some(&preview), None)
            .map_err(sd_core::CoreError::from)?;
        sd_core::fs::write_atomic(&path, &bytes)?;
        Ok(())
    }
}

/// `<file>.optim.json` beside an embedding file.
pub fn optimizer_path(embedding: &Path) -> PathBuf {
    let mut name = embedding.as_os_str().to_owned();
    name.push(".optim.json");
    PathBuf::from(name)
}

/// `clip_grad_value_` / `clip_grad_norm_` on the flat gradient.
fn clip_gradient(grad: &mut [f32], mode: crate::dataset::schedule::ClipGradMode, limit: f64) {
    use crate::dataset::schedule::ClipGradMode;
    // The schedules are checked to be finite and non-negative; `max` also keeps a NaN from
    // reaching `clamp`, which panics on it.
    let limit = (limit as f32).max(0.0);
    match mode {
        ClipGradMode::Value => grad.iter_mut().for_each(|g| *g = g.clamp(-limit, limit)),
        ClipGradMode::Norm => {
            let norm = grad.iter().map(|g| g * g).sum::<f32>().sqrt();
            // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
            let coef = (limit / (norm + 1e-6)).min(1.0);
            grad.iter_mut().for_each(|g| *g *= coef);
        }
    }
}
