//! Token + position embeddings, with textual-inversion vectors spliced in: transformers'
//! `CLIPTextEmbeddings` (`models/clip/modeling_clip.py`).

use burn::{
    module::Module,
    nn::{Embedding, EmbeddingConfig},
    tensor::{Device, Int, Tensor},
};
use sd_kernels::precision::to_dtype;

use crate::{
    config::ClipTextConfig,
    error::{ClipError, Result},
};

/// One vector that replaces the token embedding at `(batch, position)`: how a
/// textual-inversion embedding enters the model without touching the vocabulary.
///
/// The vector replaces the *token* embedding; the position embedding is still added, as it is
/// for the token it stands in for. On an autodiff device, gradients flow into `vector` (and
/// through it to whatever it was sliced from), never into the frozen embedding table.
#[derive(Debug, Clone)]
pub struct EmbeddingOverride {
    /// Index of the sequence in the batch.
    pub batch: usize,
    /// Token position in that sequence (0 is BOS).
    pub position: usize,
    /// The embedding, `[hidden_size]`, on the model's device.
    pub vector: Tensor<1>,
}

impl EmbeddingOverride {
    /// An override of position `position` in sequence `batch`.
    pub fn new(batch: usize, position: usize, vector: Tensor<1>) -> Self {
        Self {
            batch,
            position,
            vector,
        }
    }
}

/// `embeddings.{token_embedding, position_embedding}`.
#[derive(Module, Debug)]
pub struct ClipTextEmbeddings {
    /// `[vocab_size, hidden_size]`.
    pub token_embedding: Embedding,
    /// `[max_position_embeddings, hidden_size]`; OpenCLIP's `positional_embedding`.
    pub position_embedding: Embedding,
}

impl ClipTextEmbeddings {
    pub(crate) fn new(config: &ClipTextConfig, device: &Device) -> Self {
        Self {
            token_embedding: EmbeddingConfig::new(config.vocab_size, config.hidden_size)
                .init(device),
            position_embedding: EmbeddingConfig::new(
                config.max_position_embeddings,
                config.hidden_size,
            )
            .init(device),
        }
    }

    /// Token embeddings (with `overrides` spliced in) plus position embeddings.
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq_len]`, `seq_len <= max_position_embeddings`
    /// - each override's vector: `[hidden_size]`
    /// - output: `[batch, seq_len, hidden_size]`
    ///
    /// # Errors
    /// [`ClipError::TooLong`] or [`ClipError::BadOverride`] when the input or an override
    /// does not fit.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        overrides: &[EmbeddingOverride],
    ) -> Result<Tensor<3>> {
        let [batch_size, seq_len] = input_ids.dims();
        let [max, hidden] = self.position_embedding.weight.dims();
        if seq_len > max {
            return Err(ClipError::TooLong { len: seq_len, max });
        }
        let mut tokens = self.token_embedding.forward(input_ids);
        let dtype = tokens.dtype();
        for o in overrides {
            let [width] = o.vector.dims();
            if o.batch >= batch_size || o.position >= seq_len || width != hidden {
                return Err(ClipError::BadOverride {
                    batch: o.batch,
                    position: o.position,
                    width,
                    batch_size,
                    seq_len,
                    hidden,
                });
            }
            // slice_assign is differentiable in its values: the override's gradient is the
            // output gradient at that row, and the replaced table row gets none.
            tokens = tokens.slice_assign(
                [o.batch..o.batch + 1, o.position..o.position + 1, 0..hidden],
                to_dtype(o.vector.clone(), dtype).reshape([1, 1, hidden]),
            );
        }
        let positions = self
            .position_embedding
            .weight
            .val()
            .slice([0..seq_len, 0..hidden])
            .unsqueeze_dim::<3>(0);
        Ok(tokens + positions)
    }
}
