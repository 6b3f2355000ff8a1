//! Prompt conditioning with AUTOMATIC1111's semantics: from a prompt to the tensor the UNet
//! cross-attends to.
//!
//! The stages, each A1111's function of the same job:
//! 1. [`Chunker`] (`sd_hijack_clip.tokenize_line`): a text → 77-token [`PromptChunk`]s with a
//!    weight per token, `BREAK`, the comma backtrack, and embeddings from an
//!    [`EmbeddingLookup`] (`EmbeddingDatabase.find_embedding_at_position`).
//! 2. [`PromptEncoder`] (`FrozenCLIPEmbedderWithCustomWords.forward` / `process_tokens`): chunks
//!    through the CLIP text model with embedding vectors spliced in
//!    ([`sd_clip::EmbeddingOverride`], so they may carry gradients), CLIP skip and the SD 2.x
//!    padding per [`ModelFlavour`], then the emphasis ([`Emphasis`]); chunks concatenate to
//!    `[batch, 77·k, hidden]`.
//! 3. [`schedule`](PromptEncoder::multicond_learned_conditioning) (`prompt_parser`): `AND`
//!    parts and prompt editing over the steps → [`MultiCond`] / [`CondPromptSchedule`], and per step
//!    [`MultiCond::reconstruct`] / [`reconstruct_cond_batch`].
//! 4. [`CondUncondPadding`] (`sd_samplers_cfg_denoiser`): cond and uncond of different lengths.
//!
//! ```no_run
//! # fn demo(tokenizer: &sd_clip::ClipTokenizer, model: &sd_clip::ClipTextModel)
//! #     -> Result<(), sd_core::conditioning::ConditioningError> {
//! use sd_core::conditioning::{
//!     reconstruct_cond_batch, CondUncondPadding, EmbeddingLookup, ModelFlavour, PromptEncoder,
//! };
//! use sd_prompt::Steps;
//!
//! let embeddings = EmbeddingLookup::new();
//! let encoder = PromptEncoder::new(tokenizer, model, &embeddings, ModelFlavour::Sd1);
//! let steps = Steps::new(20);
//! let cond = encoder.multicond_learned_conditioning(&["a [cat:dog:0.5] AND a hat:0.5"], &steps)?;
//! let uncond = encoder.learned_conditioning(&["blurry"], &steps)?;
//! let empty = encoder.encode("")?;
//! for step in 0..20 {
//!     let c = cond.reconstruct(step);
//!     let u = reconstruct_cond_batch(&uncond, step)?;
//!     let (c, u) = CondUncondPadding::Off.apply(c.tensor, u, &empty);
//!     // ... the UNet on c and u, combined with c.conds_list's weights
//! #   let _ = (c, u);
//! }
//! # Ok(()) }
//! ```

mod chunk;
mod embedding;
mod emphasis;
mod encoder;
mod error;
mod flavour;
mod pad;
mod prompt_schedule;
mod usage;

pub use chunk::{
    CHUNK_LENGTH, CHUNK_TOKENS, COMMA_PADDING_BACKTRACK, ChunkFix, Chunker, Emphasis, PromptChunk,
    TokenizedPrompt, target_token_count,
};
pub use embedding::{EmbeddingId, EmbeddingLookup, TextualInversionVectors};
pub use encoder::PromptEncoder;
pub use error::{ConditioningError, Result};
pub use flavour::ModelFlavour;
pub use pad::{CondUncondPadding, pad_cond_uncond, pad_cond_uncond_v0};
pub use prompt_schedule::{
    ComposableCond, CondPromptSchedule, CondPromptScheduleEntry, MultiCond, StepConds,
    reconstruct_cond_batch, stack_conds,
};
pub use usage::EmbeddingUsage;
