//! The per-step conditioning of a run: the positive prompt split on AND and scheduled, the
//! negative prompt scheduled, both encoded once per distinct text.

use sd_prompt::Steps;

use super::cfg_denoiser::GuidanceConds;
use super::request::GenerationRequest;
use crate::checkpoint::ModelFamily;
use crate::conditioning::{
    CondPromptSchedule, EmbeddingLookup, EmbeddingUsage, ModelFlavour, MultiCond, PromptEncoder,
    reconstruct_cond_batch,
};
use crate::error::Result;
use crate::model::StableDiffusion;

/// A1111's `c` and `uc` of `StableDiffusionProcessing.setup_conds`.
pub(crate) struct ConditioningSchedule {
    cond: MultiCond,
    uncond: Vec<CondPromptSchedule>,
    /// A1111's `TI hashes` infotext value for the embeddings the prompts used.
    pub(crate) ti_hashes: Option<String>,
}

impl ConditioningSchedule {
    /// Encodes the batch's prompts `(prompt, negative)` (the same for every image) over
    /// `steps` (A1111's total steps, and a hires pass's).
    pub(crate) fn build(
        model: &StableDiffusion,
        params: &GenerationRequest,
        (prompt, negative): (&str, &str),
        embeddings: &EmbeddingLookup,
        steps: Steps,
    ) -> Result<Self> {
        let flavour = match model.family() {
            ModelFamily::Sd2 => ModelFlavour::Sd2,
            _ => ModelFlavour::Sd1,
        };
        let usage = EmbeddingUsage::new();
        let encoder =
            PromptEncoder::new(&model.tokenizer, &model.text_encoder, embeddings, flavour)
                .with_clip_skip(params.clip_skip)
                .with_usage(&usage);
        // A1111's `parse_extra_network_prompts`: every `<kind:…>` tag leaves the positive
        // prompt (the negative keeps its text); `lora::LoraLibrary::activate` applies them.
        let (prompt, _) = sd_prompt::parse_extra_networks(prompt);
        let prompts = vec![prompt.as_str(); params.batch_size];
        let negatives = vec![negative; params.batch_size];
        // A1111's `setup_conds` order: the negative prompt first (it decides `TI hashes`).
        let uncond = encoder.learned_conditioning(&negatives, &steps)?;
        let cond = encoder.multicond_learned_conditioning(&prompts, &steps)?;
        // NaN weights in the text encoder (or an overflow in it) would reach the sampler.
        for entry in uncond.iter().flat_map(|s| &s.entries) {
            super::ensure_finite(&entry.cond, "the negative prompt's conditioning")?;
        }
        let positive = cond
            .batch
            .iter()
            .flatten()
            .flat_map(|c| &c.schedule.entries);
        for entry in positive {
            super::ensure_finite(&entry.cond, "the prompt's conditioning")?;
        }
        Ok(Self {
            cond,
            uncond,
            ti_hashes: usage.ti_hashes(embeddings),
        })
    }

    /// The conditioning at A1111's step counter `step`.
    pub(crate) fn at_step(&self, step: usize) -> Result<GuidanceConds> {
        let step = u32::try_from(step).unwrap_or(u32::MAX);
        Ok(GuidanceConds {
            conds: self.cond.reconstruct(step),
            uncond: reconstruct_cond_batch(&self.uncond, step)?,
        })
    }
}
