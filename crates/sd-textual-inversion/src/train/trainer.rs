//! The training loop: A1111's `train_embedding` (and `train_hypernetwork`, the same loop
//! around another trained thing: [`Subject`]), step for step (learning-rate schedule,
//! batches, gradient accumulation and clipping, saves, previews, loss CSV), around
//! [`loss_and_grad`](super::loss_and_grad) and [`AdamW`].

use std::ops::ControlFlow;
use std::path::PathBuf;

use sd_core::StableDiffusion;
use sd_core::conditioning::{EmbeddingId, EmbeddingLookup};
use sd_core::embeddings::Embedding;
use sd_core::model::Precision;
use sd_core::noise::TorchCpuGenerator;
use serde::Serialize;

use super::adamw::{AdamW, AdamWConfig};
use super::config::TrainConfig;
use super::data::TrainingSet;
use super::events::{CancelToken, StopReason, TrainEvent};
use super::kind::TrainedKind;
use super::log::{LossRow, RunFolder};
use super::loss_scale::LossScale;
use super::preflight::{Checked, PromptCheck, RunLock};
use super::save::SavedOptimizer;
use super::step::{StepBatch, StepResult, clip_gradient, freeze};
use super::subject::Subject;
use super::validation::ValidationState;
use crate::create::check_vectors;
use crate::dataset::batching::{EpochPlan, GroupedBatchSampler};
use crate::dataset::caption::CaptionBuilder;
use crate::dataset::learn_rate_schedule::{ClipGradMode, LearnRateScheduler};
use crate::dataset::rng::SplitMix64;
use crate::dataset::template::Template;
use crate::error::{Result, TrainError};
use crate::preprocess::SkippedFile;

/// How a run ended and what it left.
#[derive(Debug)]
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
    pub skipped: Vec<SkippedFile>,
    /// The model, handed back (frozen, on the autodiff device): generate with the new
    /// embedding or train another one without loading the checkpoint again.
    pub model: StableDiffusion,
    /// The step of the best validation loss, when validation was on and evaluated.
    pub best: Option<BestStep>,
}

/// The step whose validation loss was the lowest of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct BestStep {
    /// The step.
    pub step: usize,
    /// Its validation loss.
    pub loss: f32,
    /// Its vectors: `<run folder>/embeddings/<name>-best.pt`.
    pub path: PathBuf,
}

/// Trains one embedding on one model, and hands the model back: train, then generate with
/// the new embedding (or train another) without loading the checkpoint again.
///
/// ```no_run
/// use std::ops::ControlFlow;
/// use sd_textual_inversion::sd_core::{DeviceChoice, GenerationRequest, StableDiffusion};
/// use sd_textual_inversion::train::{CancelToken, TrainConfig, Trainer};
///
/// let device = DeviceChoice::Cpu.device()?.autodiff();
/// let model = StableDiffusion::load("v1-5-pruned-emaonly.safetensors", &device)?;
/// let embedding = sd_textual_inversion::create::create_embedding(&model, "realbenny-t1", "person", 1)?;
/// let config = TrainConfig { data_dir: "benny-512".into(), steps: 3000, ..Default::default() };
/// let outcome = Trainer::new(model, embedding, config)?
///     .run(&mut |event| println!("{event:?}"), &CancelToken::new())?;
/// // The same model, now with the trained file in a prompt.
/// let model = outcome.model;
/// let lookup = model.load_embedding(&outcome.path)?;
/// let request = GenerationRequest { prompt: "a photo of realbenny-t1".into(), ..Default::default() };
/// let pictures = model.txt2img(&request, &lookup, &mut |_| ControlFlow::Continue(()))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer {
    pub(super) model: StableDiffusion,
    pub(super) config: TrainConfig,
    pub(super) subject: Subject,
    pub(super) optimizer: AdamW,
}

/// What a run left, whatever it trained.
pub(super) struct Finished {
    pub subject: Subject,
    pub path: PathBuf,
    pub run_folder: PathBuf,
    pub reason: StopReason,
    pub skipped: Vec<SkippedFile>,
    pub model: StableDiffusion,
    pub best: Option<BestStep>,
}

/// Refuses a model off an autodiff device.
pub(super) fn check_autodiff(model: &StableDiffusion) -> Result<()> {
    if model.device().gradient_checkpointing_strategy().is_none() {
        return Err(TrainError::InvalidConfig {
            name: "device",
            reason: "training needs the model on an autodiff device (`device.autodiff()`)".into(),
        });
    }
    Ok(())
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
        check_autodiff(&model)?;
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
            subject: Subject::Embedding(embedding),
            optimizer,
        })
    }

    /// Continues from a saved optimizer state (see [`SavedOptimizer`]) when it belongs to
    /// this embedding; otherwise starts AdamW afresh, as A1111 does.
    pub fn with_saved_optimizer(mut self, saved: &SavedOptimizer) -> Self {
        let fits = saved.state.exp_avg.len() == self.subject.values().len();
        let hash = self.subject.resume_hash();
        if fits && hash.as_deref() == Some(saved.hash.as_str()) {
            self.optimizer.state = saved.state.clone();
        }
        self
    }

    /// The model (frozen, on the autodiff device).
    pub fn model(&self) -> &StableDiffusion {
        &self.model
    }

    /// The model back, without training (a finished run hands it back in
    /// [`TrainOutcome::model`]).
    pub fn into_model(self) -> StableDiffusion {
        self.model
    }

    /// Runs until the configured step, the end of the learning-rate schedule, a NaN loss, an
    /// update that overflows, or `cancel`; then writes the embedding to
    /// `<embeddings_dir>/<name>.pt` (also on cancel and NaN, with the last good vectors) and
    /// returns. An embedding already at or past the configured step is written unchanged
    /// (A1111 stops there too, without writing).
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
        self,
        events: &mut dyn FnMut(&TrainEvent),
        cancel: &CancelToken,
    ) -> Result<TrainOutcome> {
        let finished = self.train(events, cancel)?;
        let Subject::Embedding(embedding) = finished.subject else {
            return Err(TrainError::InvalidConfig {
                name: "embedding",
                reason: "the run trained something else".into(),
            });
        };
        Ok(TrainOutcome {
            embedding,
            path: finished.path,
            run_folder: finished.run_folder,
            reason: finished.reason,
            skipped: finished.skipped,
            model: finished.model,
            best: finished.best,
        })
    }

    /// [`run`](Self::run) for either kind of subject.
    pub(super) fn train(
        mut self,
        events: &mut dyn FnMut(&TrainEvent),
        cancel: &CancelToken,
    ) -> Result<Finished> {
        let name = self.subject.name().to_owned();
        let kind = self.subject.kind();
        let initial_step = self.subject.step();
        // Before anything else: a second run of this embedding stops here, before it can
        // touch the first one's files.
        let _lock = RunLock::acquire_for(kind, &self.config, &name)?;
        let checked = self
            .config
            .check(kind, &name, initial_step, &self.model.tokenizer)?;
        let folder = RunFolder::of_kind(&self.config.log_dir, &name, kind);
        // A run killed while writing leaves `.<file>.<pid>.tmp` files; the real files are
        // whole (they are renamed into place), so the temporaries of dead processes are only
        // litter.
        folder.remove_stale_temporaries()?;
        if initial_step >= self.config.steps {
            // A1111's loop ends at once (and returns without saving); the file is written
            // unchanged here, so that the outcome's path holds it.
            let end = (folder.root, initial_step, StopReason::Completed, Vec::new());
            return self.finish(end, None, events);
        }
        let root = folder.root.clone();
        let Some(mut run) = self.prepare(checked, folder, initial_step, events, cancel)? else {
            // Cancelled while the pictures were encoded: the embedding is saved unchanged.
            let end = (root, initial_step, StopReason::Cancelled, Vec::new());
            return self.finish(end, None, events);
        };
        let reason = loop {
            if let ControlFlow::Break(reason) = self.epoch(&mut run, events, cancel)? {
                break reason;
            }
        };
        let best = run.validation.as_ref().and_then(ValidationState::best);
        let best = best.map(|(step, loss)| BestStep {
            step,
            loss,
            path: best_path(&run.folder, &name),
        });
        self.finish(
            (run.folder.root, run.step, reason, run.set.skipped),
            best,
            events,
        )
    }

    /// Loads and encodes the pictures (reporting [`TrainEvent::Encoding`]; `None` when
    /// cancelled meanwhile), plans the epochs, builds the validation batches, writes the
    /// run's settings and reports [`TrainEvent::Started`].
    fn prepare(
        &self,
        checked: Checked,
        mut folder: RunFolder,
        initial_step: usize,
        events: &mut dyn FnMut(&TrainEvent),
        cancel: &CancelToken,
    ) -> Result<Option<RunState>> {
        let config = &self.config;
        let learn_rate = checked.learn_rate.scheduler();
        let clip = checked.clip.map(|(mode, s)| (mode, s.scheduler()));
        let template = checked.template;
        let captions = CaptionBuilder::new(template.clone(), self.subject.name())
            .shuffle_tags(config.shuffle_tags)
            .tag_drop_out(f64::from(config.tag_dropout));
        let mut rng = SplitMix64::new(config.seed);
        let mut noise = TorchCpuGenerator::new(config.seed);
        let mut encoding = |done, total| {
            events(&TrainEvent::Encoding { done, total });
            if cancel.is_cancelled() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let Some(set) = TrainingSet::load(
            &self.model,
            config,
            &captions,
            (&mut rng, &mut noise),
            &mut encoding,
        )?
        else {
            return Ok(None);
        };
        // Held-out validation pictures, with generators of their own: the training run's
        // random choices stay those of a run without validation.
        let held_out = match config.validation.as_ref().and_then(|v| v.data_dir.clone()) {
            Some(data_dir) => {
                let seed = config.validation.as_ref().map_or(0, |v| v.seed);
                let held_out_config = TrainConfig {
                    data_dir,
                    ..config.clone()
                };
                let generators = (
                    &mut SplitMix64::new(seed),
                    &mut TorchCpuGenerator::new(seed),
                );
                let Some(held_out) = TrainingSet::load(
                    &self.model,
                    &held_out_config,
                    &captions,
                    generators,
                    &mut encoding,
                )?
                else {
                    return Ok(None);
                };
                Some(held_out)
            }
            None => None,
        };
        folder.set_validation_column(config.validation.is_some());
        // The plot's running mean is the loss A1111's progress bar shows: the mean of the last
        // `3 × len(dataset)` steps.
        let mean_window = set.items.len().saturating_mul(3);
        folder.set_plot_window(mean_window);
        let plan = EpochPlan::new(
            set.items.len(),
            config.batch_size,
            config.gradient_accumulation,
        )?;
        let sampler =
            GroupedBatchSampler::new(vec![(0..set.items.len()).collect()], plan.batch_size())?;
        let name = self.subject.name();
        let (embedding_name, hypernetwork_name) = match self.subject.kind() {
            TrainedKind::Embedding => (Some(name), None),
            TrainedKind::Hypernetwork => (None, Some(name)),
        };
        folder.write_settings(&RunSettings {
            embedding_name,
            hypernetwork_name,
            initial_step,
            model: self.model.name(),
            model_hash: self.model.hash().map(|h| h.short().to_owned()),
            images: set.paths().map(|p| p.display().to_string()).collect(),
            config,
        })?;
        events(&TrainEvent::Started {
            initial_step,
            steps: config.steps,
            images: set.items.len(),
            steps_per_epoch: plan.steps_per_epoch(),
            run_folder: folder.root.clone(),
        });
        let mut lookup = EmbeddingLookup::new();
        let id = match self.subject.kind() {
            TrainedKind::Embedding => {
                Some(self.subject.register(&mut lookup, &self.model.tokenizer)?)
            }
            TrainedKind::Hypernetwork => None,
        };
        let validation = match &config.validation {
            Some(settings) => {
                let prompts = PromptCheck {
                    tokenizer: &self.model.tokenizer,
                    lookup: &lookup,
                    id,
                    name: self.subject.name(),
                    template: &template,
                    max_chars: config.limits.max_prompt_chars,
                };
                let pictures = held_out.as_ref().unwrap_or(&set);
                Some(ValidationState::new(
                    settings,
                    pictures,
                    &self.model,
                    (&captions, &prompts),
                )?)
            }
            None => None,
        };
        Ok(Some(RunState {
            grad_sum: vec![0f32; self.subject.values().len()],
            loss_sum: 0.0,
            step: initial_step,
            pending_image_embedding: None,
            folder,
            set,
            plan,
            sampler,
            template,
            captions,
            learn_rate,
            clip,
            rng,
            noise,
            lookup,
            id,
            validation,
            recent: RecentLosses::new(mean_window),
            loss_scale: (self.model.precision() == Precision::F16).then(LossScale::new),
        }))
    }

    /// One pass over the dataset (A1111 caps it at `max_batches_per_epoch` micro-batches).
    fn epoch(
        &mut self,
        run: &mut RunState,
        events: &mut dyn FnMut(&TrainEvent),
        cancel: &CancelToken,
    ) -> Result<ControlFlow<StopReason>> {
        let batches = run.sampler.epoch(&mut run.rng);
        let max = run.plan.max_batches_per_epoch();
        for (j, indices) in batches.iter().enumerate().take(max) {
            if let ControlFlow::Break(reason) = self.micro_batch(run, j, indices, events, cancel)? {
                return Ok(ControlFlow::Break(reason));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// One micro-batch: A1111's checks before it (end of the schedule, cancel), the loss and
    /// gradient, summed; every `gradient_step`-th one ends with an optimizer step.
    fn micro_batch(
        &mut self,
        run: &mut RunState,
        j: usize,
        indices: &[usize],
        events: &mut dyn FnMut(&TrainEvent),
        cancel: &CancelToken,
    ) -> Result<ControlFlow<StopReason>> {
        run.learn_rate.step(run.step as u64);
        if run.learn_rate.finished() || run.step >= self.config.steps {
            return Ok(ControlFlow::Break(StopReason::Completed));
        }
        if cancel.is_cancelled() {
            return Ok(ControlFlow::Break(StopReason::Cancelled));
        }
        if let Some((_, s)) = run.clip.as_mut() {
            s.step(run.step as u64);
        }
        let batch = self.batch(run, indices)?;
        let Some(out) = self.scaled_loss_and_grad(run, &batch)? else {
            events(&TrainEvent::NaN { step: run.step + 1 });
            return Ok(ControlFlow::Break(StopReason::NaN { step: run.step + 1 }));
        };
        let gradient_step = run.plan.gradient_step();
        run.loss_sum += out.loss / gradient_step as f32;
        for (acc, g) in run.grad_sum.iter_mut().zip(&out.grad) {
            *acc += g / gradient_step as f32;
        }
        if !run.plan.is_optimizer_step(j) {
            return Ok(ControlFlow::Continue(()));
        }
        let learn_rate = match self.optimizer_step(run, events)? {
            ControlFlow::Continue(learn_rate) => learn_rate,
            ControlFlow::Break(reason) => return Ok(ControlFlow::Break(reason)),
        };
        if let ControlFlow::Break(reason) =
            self.after_step(run, &batch, learn_rate, events, cancel)?
        {
            return Ok(ControlFlow::Break(reason));
        }
        run.loss_sum = 0.0;
        run.grad_sum.iter_mut().for_each(|g| *g = 0.0);
        Ok(ControlFlow::Continue(()))
    }

    /// The micro-batch's loss and gradient, `None` when either is not finite. Networks in
    /// f16 scale the loss ([`LossScale`]): a gradient that overflowed is computed again at
    /// half the scale, until the scale reaches 1.
    fn scaled_loss_and_grad(
        &self,
        run: &mut RunState,
        batch: &StepBatch,
    ) -> Result<Option<StepResult>> {
        loop {
            let scale = run.loss_scale.as_ref().map_or(1.0, LossScale::scale);
            // A1111 encodes a hypernetwork's prompts one by one when captions are fixed.
            let per_text = self.config.tag_dropout == 0.0 && !self.config.shuffle_tags;
            let out = self.subject.loss_and_grad(
                &self.model,
                (&run.lookup, run.id),
                self.config.clip_skip,
                batch,
                scale,
                per_text,
            )?;
            let finite = out.loss.is_finite() && out.grad.iter().all(|g| g.is_finite());
            match run.loss_scale.as_mut() {
                _ if !out.loss.is_finite() => return Ok(None),
                Some(loss_scale) if !finite => {
                    if !loss_scale.back_off() {
                        return Ok(None);
                    }
                }
                Some(loss_scale) => {
                    loss_scale.record_clean();
                    return Ok(Some(out));
                }
                None => return Ok(finite.then_some(out)),
            }
        }
    }

    /// Clips the summed gradient and lets AdamW update the vectors, then registers them for
    /// the next prompts. An update that overflows is undone and stops the run. Continues
    /// with the learning rate used.
    fn optimizer_step(
        &mut self,
        run: &mut RunState,
        events: &mut dyn FnMut(&TrainEvent),
    ) -> Result<ControlFlow<StopReason, f64>> {
        if let Some((mode, s)) = &run.clip {
            clip_gradient(&mut run.grad_sum, *mode, s.learn_rate());
        }
        let learn_rate = run.learn_rate.learn_rate();
        let before = self.subject.values().to_vec();
        self.optimizer
            .step(self.subject.values_mut(), &run.grad_sum, learn_rate);
        if self.subject.values().iter().any(|v| !v.is_finite()) {
            // The loss and gradient were finite; the update overflowed (a learning rate too
            // large for f32): keep the last good vectors.
            *self.subject.values_mut() = before;
            let step = run.step + 1;
            events(&TrainEvent::Diverged { step, learn_rate });
            return Ok(ControlFlow::Break(StopReason::Diverged { step }));
        }
        run.step += 1;
        run.id = self
            .subject
            .commit(run.step, &mut run.lookup, &self.model.tokenizer)?;
        Ok(ControlFlow::Continue(learn_rate))
    }

    /// What follows an optimizer step, in A1111's order: the step's event, a copy of the
    /// embedding every `save_every` steps, a loss row every `csv_every`, a preview (and the
    /// image embedding of the copy just saved) every `preview_every`. With validation on, the
    /// validation loss when due (before the loss row, which then also gets written), a copy
    /// of a new best step, and the stop when the patience has run out.
    fn after_step(
        &self,
        run: &mut RunState,
        batch: &StepBatch,
        learn_rate: f64,
        events: &mut dyn FnMut(&TrainEvent),
        cancel: &CancelToken,
    ) -> Result<ControlFlow<StopReason>> {
        let step = run.step;
        let (epoch, epoch_step) = run.plan.csv_epoch(step as u64);
        let (epoch, epoch_step) = (epoch.max(0) as usize, epoch_step.max(0) as usize);
        let loss = run.loss_sum;
        run.recent.push(loss);
        events(&TrainEvent::Step {
            step,
            epoch,
            epoch_step,
            loss,
            mean_loss: run.recent.mean(),
            learn_rate,
        });
        // A1111 names saves and previews by `embedding.step + 1`.
        let steps_done = step + 1;
        let name = self.subject.name();
        if every(self.config.save_every, steps_done) {
            let path = run.folder.copies().join(format!("{name}-{steps_done}.pt"));
            self.save(&path)?;
            events(&TrainEvent::Saved { step, path });
            run.pending_image_embedding = Some(steps_done);
        }
        let evaluation = match (run.validation.as_mut(), run.id) {
            (Some(validation), Some(id)) if validation.is_due(step) => {
                let evaluation = validation.evaluate(
                    step,
                    &self.model,
                    (&run.lookup, id),
                    self.subject.values(),
                    self.config.clip_skip,
                )?;
                let (best_step, best_loss) = evaluation.best;
                events(&TrainEvent::Validation {
                    step,
                    loss: evaluation.loss,
                    best_step,
                    best_loss,
                });
                if evaluation.improved {
                    let path = best_path(&run.folder, name);
                    self.save(&path)?;
                    events(&TrainEvent::Saved { step, path });
                }
                Some(evaluation)
            }
            _ => None,
        };
        if every(self.config.csv_every, step) || evaluation.is_some() {
            let row = LossRow {
                step,
                epoch,
                epoch_step,
                loss,
                learn_rate,
                validation_loss: evaluation.map(|e| e.loss),
                mean_loss: Some(run.recent.mean()),
            };
            run.folder.write_loss(row)?;
        }
        if every(self.config.preview_every, steps_done) {
            // A batch is never empty (`batch_size` is at least 1).
            let prompt = batch.texts.first().cloned().unwrap_or_default();
            // Cancelled while it rendered: no preview (the next batch stops the run).
            if let Some((path, image)) = self.preview(
                &run.folder,
                &run.lookup,
                steps_done,
                &prompt,
                (events, cancel),
            )? {
                events(&TrainEvent::Preview { step, path, prompt });
                if self.config.save_image_embeddings
                    && run.pending_image_embedding == Some(steps_done)
                {
                    self.save_image_embedding(&run.folder, steps_done, &image)?;
                    run.pending_image_embedding = None;
                }
            }
        }
        Ok(match evaluation {
            Some(e) if e.exhausted => ControlFlow::Break(StopReason::NoImprovement {
                best_step: e.best.0,
            }),
            _ => ControlFlow::Continue(()),
        })
    }

    /// Writes the final file to `<embeddings_dir>/<name>.pt` (`<hypernetwork_dir>/...`),
    /// reports it, and hands back what the run left: its folder, the step, why it stopped,
    /// the pictures skipped.
    fn finish(
        self,
        (run_folder, step, reason, skipped): (PathBuf, usize, StopReason, Vec<SkippedFile>),
        best: Option<BestStep>,
        events: &mut dyn FnMut(&TrainEvent),
    ) -> Result<Finished> {
        let path = self
            .subject
            .kind()
            .output_file(&self.config, self.subject.name());
        self.save(&path)?;
        events(&TrainEvent::Saved {
            step,
            path: path.clone(),
        });
        Ok(Finished {
            subject: self.subject,
            path,
            run_folder,
            reason,
            skipped,
            model: self.model,
            best,
        })
    }

    /// The micro-batch of dataset items `indices`, each prompt checked (to contain the
    /// embedding, when training one).
    fn batch(&self, run: &mut RunState, indices: &[usize]) -> Result<StepBatch> {
        let prompts = PromptCheck {
            tokenizer: &self.model.tokenizer,
            lookup: &run.lookup,
            id: run.id,
            name: self.subject.name(),
            template: &run.template,
            max_chars: self.config.limits.max_prompt_chars,
        };
        run.set.step_batch(
            indices,
            &self.model,
            (&run.captions, &prompts),
            &mut run.rng,
            &mut run.noise,
        )
    }
}

/// Everything a run carries from one micro-batch to the next.
struct RunState {
    folder: RunFolder,
    set: TrainingSet,
    plan: EpochPlan,
    sampler: GroupedBatchSampler,
    template: Template,
    captions: CaptionBuilder,
    learn_rate: LearnRateScheduler,
    clip: Option<(ClipGradMode, LearnRateScheduler)>,
    rng: SplitMix64,
    noise: TorchCpuGenerator,
    /// The embedding as the prompts see it, registered again after every update.
    lookup: EmbeddingLookup,
    /// The embedding's id in `lookup` (none for a hypernetwork).
    id: Option<EmbeddingId>,
    /// The embedding's step: optimizer steps taken, earlier runs' included.
    step: usize,
    /// Loss and gradient summed over the micro-batches of the optimizer step in progress.
    loss_sum: f32,
    grad_sum: Vec<f32>,
    /// The `steps_done` of the copy saved last, until a preview writes its image embedding.
    pending_image_embedding: Option<usize>,
    /// The validation loss's batches and best step, when validation is on.
    validation: Option<ValidationState>,
    /// The losses of the last 3 × pictures steps, for the plot's mean line.
    recent: RecentLosses,
    /// The loss scale, when the networks compute in f16.
    loss_scale: Option<LossScale>,
}

/// The step losses whose mean A1111's progress bar shows: a deque of the last
/// `3 × len(dataset)` (its `loss_logging`).
struct RecentLosses {
    window: usize,
    losses: std::collections::VecDeque<f32>,
}

impl RecentLosses {
    fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            losses: std::collections::VecDeque::new(),
        }
    }

    fn push(&mut self, loss: f32) {
        if self.losses.len() == self.window {
            self.losses.pop_front();
        }
        self.losses.push_back(loss);
    }

    /// The mean (NaN before the first step).
    fn mean(&self) -> f32 {
        self.losses.iter().sum::<f32>() / self.losses.len() as f32
    }
}

/// Where a run keeps the vectors of its best validation step.
fn best_path(folder: &RunFolder, name: &str) -> PathBuf {
    folder.copies().join(format!("{name}-best.pt"))
}

/// The run's `settings.json`: what was trained, on what, from which pictures.
#[derive(Serialize)]
struct RunSettings<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hypernetwork_name: Option<&'a str>,
    initial_step: usize,
    model: String,
    model_hash: Option<String>,
    images: Vec<String>,
    config: &'a TrainConfig,
}

/// Whether an action due every `n` steps (0 = never) is due at `k`.
fn every(n: usize, k: usize) -> bool {
    n > 0 && k.is_multiple_of(n)
}
