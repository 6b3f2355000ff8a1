//! The validation loss of a run (see [`Validation`]): fixed batches built once, evaluated
//! every few steps without a gradient, the best step remembered, early stopping.

use sd_core::StableDiffusion;
use sd_core::conditioning::{EmbeddingId, EmbeddingLookup};
use sd_core::noise::TorchCpuGenerator;

use super::config::Validation;
use super::data::TrainingSet;
use super::preflight::PromptCheck;
use super::step::{StepBatch, denoising_loss};
use crate::dataset::caption::CaptionBuilder;
use crate::dataset::rng::SplitMix64;
use crate::error::Result;

/// What an evaluation found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Evaluation {
    /// The mean loss.
    pub loss: f32,
    /// Whether it is the best so far (its vectors should be kept).
    pub improved: bool,
    /// The best step and its loss.
    pub best: (usize, f32),
    /// Whether the patience ran out with this evaluation.
    pub exhausted: bool,
}

/// The fixed batches and the best step so far.
pub(super) struct ValidationState {
    settings: Validation,
    /// One batch per picture and timestep: prompt, latent and noise fixed.
    batches: Vec<StepBatch>,
    best: Option<(usize, f32)>,
    /// Evaluations since the best one.
    since_best: usize,
}

impl ValidationState {
    /// The batches for `set`'s pictures (the training set or the held-out one): each
    /// picture's prompt and latent drawn once, and its noise once per timestep, all from
    /// `settings.seed`; prompts checked as the training ones are.
    pub(super) fn new(
        settings: &Validation,
        set: &TrainingSet,
        model: &StableDiffusion,
        (captions, prompts): (&CaptionBuilder, &PromptCheck<'_>),
    ) -> Result<Self> {
        let mut rng = SplitMix64::new(settings.seed);
        let mut noise = TorchCpuGenerator::new(settings.seed);
        let mut batches = Vec::with_capacity(set.items.len() * settings.timesteps.len());
        for i in 0..set.items.len() {
            let picture = set.step_batch(&[i], model, (captions, prompts), &mut rng, &mut noise)?;
            for &t in &settings.timesteps {
                let dims = picture.noise.dims();
                let values = noise.randn(dims.iter().product());
                batches.push(StepBatch {
                    noise: burn::tensor::Tensor::from_data(
                        burn::tensor::TensorData::new(values, dims),
                        model.device(),
                    ),
                    timesteps: vec![t],
                    ..picture.clone()
                });
            }
        }
        Ok(Self {
            settings: settings.clone(),
            batches,
            best: None,
            since_best: 0,
        })
    }

    /// Whether an evaluation is due after optimizer step `step`.
    pub(super) fn is_due(&self, step: usize) -> bool {
        step > 0 && step.is_multiple_of(self.settings.every)
    }

    /// The mean loss of the embedding `id` with `vectors` over the fixed batches, recorded
    /// as the loss of `step`.
    pub(super) fn evaluate(
        &mut self,
        step: usize,
        model: &StableDiffusion,
        (lookup, id): (&EmbeddingLookup, EmbeddingId),
        vectors: &[f32],
        clip_skip: usize,
    ) -> Result<Evaluation> {
        let mut total = 0.0f64;
        for batch in &self.batches {
            total += f64::from(denoising_loss(
                model, lookup, id, vectors, clip_skip, batch,
            )?);
        }
        let loss = (total / self.batches.len().max(1) as f64) as f32;
        let improved = loss.is_finite() && self.best.is_none_or(|(_, best)| loss < best);
        if improved {
            self.best = Some((step, loss));
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        let best = self.best.unwrap_or((step, loss));
        let exhausted = self
            .settings
            .patience
            .is_some_and(|patience| self.since_best >= patience);
        Ok(Evaluation {
            loss,
            improved,
            best,
            exhausted,
        })
    }

    /// The best step and its loss so far.
    pub(super) fn best(&self) -> Option<(usize, f32)> {
        self.best
    }
}
