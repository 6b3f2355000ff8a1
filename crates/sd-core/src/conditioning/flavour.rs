//! What differs between the SD 1.x and SD 2.x text encoders in A1111's conditioning.

use sd_clip::ClipTokenizer;

/// The text encoder family, as A1111 tells them apart by class
/// (`FrozenCLIPEmbedderWithCustomWords` vs `FrozenOpenCLIPEmbedderWithCustomWords`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModelFlavour {
    /// SD 1.x, OpenAI CLIP ViT-L/14: pads with EOS; CLIP skip `n` takes the hidden state `n`
    /// layers from the end, then the final layer norm.
    #[default]
    Sd1,
    /// SD 2.x, OpenCLIP ViT-H/14: after a chunk's first EOS every token is 0 (`!`); the output
    /// is always the penultimate layer with `ln_final` (ldm's `layer = "penultimate"`), and
    /// A1111 ignores the CLIP skip setting for it. The loaded [`sd_clip::ClipTextModel`] already
    /// ends at that layer (diffusers and our LDM loader drop the last one), so it runs whole.
    Sd2,
}

impl ModelFlavour {
    /// The token after a chunk's first EOS: EOS for SD 1.x (so nothing changes), 0 for SD 2.x
    /// (A1111's `id_pad`, hard-coded 0 for OpenCLIP).
    pub fn pad_id(self, tokenizer: &ClipTokenizer) -> u32 {
        match self {
            Self::Sd1 => tokenizer.eos_id(),
            Self::Sd2 => 0,
        }
    }

    /// The `clip_skip` to run the loaded model with for A1111's setting `clip_skip`
    /// (`CLIP_stop_at_last_layers`): itself for SD 1.x, always 1 for SD 2.x.
    ///
    /// ```
    /// use sd_core::conditioning::ModelFlavour;
    /// assert_eq!(ModelFlavour::Sd1.effective_clip_skip(2), 2);
    /// assert_eq!(ModelFlavour::Sd2.effective_clip_skip(2), 1);
    /// ```
    pub fn effective_clip_skip(self, clip_skip: usize) -> usize {
        match self {
            Self::Sd1 => clip_skip,
            Self::Sd2 => 1,
        }
    }
}
