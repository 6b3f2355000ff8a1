//! The CLIP text model: transformers' `CLIPTextModel` / `CLIPTextTransformer`
//! (`models/clip/modeling_clip.py`), as Stable Diffusion uses it.
//!
//! CLIP skip follows A1111: `clip_skip = 1` is the last layer's output, `n` is the hidden
//! state `n` layers from the end (`hidden_states[-n]`), and the final layer norm is applied
//! either way.

use burn::{
    module::Module,
    nn::{LayerNorm, LayerNormConfig},
    tensor::{DType, Device, Int, Tensor},
};
use sd_kernels::precision::to_dtype;

use crate::{
    config::ClipTextConfig,
    embeddings::{ClipTextEmbeddings, EmbeddingOverride},
    encoder::ClipEncoder,
    error::{ClipError, Result},
};

/// transformers treats `eos_token_id == 2` (the value in SD's published configs, from before
/// the tokenizer was fixed) as "pool at the largest id", which is EOS in CLIP's vocabulary.
const LEGACY_EOS_TOKEN_ID: u32 = 2;

/// A CLIP text encoder. Field names are the transformers state-dict keys (without the
/// `text_model.` prefix), so weights load by name; see [`crate::loader`].
#[derive(Module, Debug)]
pub struct ClipTextModel {
    /// Token and position embeddings.
    pub embeddings: ClipTextEmbeddings,
    /// The transformer layers.
    pub encoder: ClipEncoder,
    /// The norm applied to whichever hidden state is the output (OpenCLIP `ln_final`).
    pub final_layer_norm: LayerNorm,
    eos_token_id: u32,
}

/// Everything one forward pass computes.
#[derive(Debug, Clone)]
pub struct ClipTextOutput {
    /// `final_layer_norm(hidden_states[-1])`: `[batch, seq_len, hidden_size]`.
    pub last_hidden_state: Tensor<3>,
    /// The embeddings, then each layer's output, before any final norm:
    /// `num_hidden_layers + 1` tensors of `[batch, seq_len, hidden_size]`.
    pub hidden_states: Vec<Tensor<3>>,
    /// `last_hidden_state` at each sequence's (first) EOS: `[batch, hidden_size]`.
    pub pooled: Tensor<2>,
}

impl ClipTextModel {
    pub(crate) fn new(config: &ClipTextConfig, device: &Device) -> Self {
        Self {
            embeddings: ClipTextEmbeddings::new(config, device),
            encoder: ClipEncoder::new(config, device),
            final_layer_norm: LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            eos_token_id: config.eos_token_id,
        }
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.encoder.layers.len()
    }

    /// The last hidden state (CLIP skip 1): what SD conditions on.
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq_len]` (`seq_len <= max_position_embeddings`, 77)
    /// - output: `[batch, seq_len, hidden_size]`
    ///
    /// # Errors
    /// When the sequence is too long or an override does not fit.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        overrides: &[EmbeddingOverride],
    ) -> Result<Tensor<3>> {
        self.forward_clip_skip(input_ids, overrides, 1)
    }

    /// `final_layer_norm(hidden_states[-clip_skip])`, with A1111's numbering: 1 is the last
    /// layer, 2 the one before, ..., `num_layers + 1` the embeddings. Layers after the one
    /// asked for are not run.
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq_len]`
    /// - output: `[batch, seq_len, hidden_size]`
    ///
    /// # Errors
    /// [`ClipError::ClipSkip`] when `clip_skip` is 0 or above `num_layers + 1`; input errors
    /// as [`forward`](Self::forward).
    pub fn forward_clip_skip(
        &self,
        input_ids: Tensor<2, Int>,
        overrides: &[EmbeddingOverride],
        clip_skip: usize,
    ) -> Result<Tensor<3>> {
        let layers = self.num_layers();
        if clip_skip == 0 || clip_skip > layers + 1 {
            return Err(ClipError::ClipSkip { clip_skip, layers });
        }
        let mut x = self.embeddings.forward(input_ids, overrides)?;
        for layer in &self.encoder.layers[..layers + 1 - clip_skip] {
            x = layer.forward(x);
        }
        Ok(to_dtype(self.final_layer_norm.forward(x), DType::F32))
    }

    /// The type the weights hold and the network computes in: f32 unless
    /// [`sd_kernels::precision::cast_params`] made it f16 or bf16. Overrides are cast to it;
    /// the outputs are f32 whatever it is.
    pub fn dtype(&self) -> DType {
        self.final_layer_norm.gamma.val().dtype()
    }

    /// Every hidden state, the last hidden state and the pooled output.
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq_len]`
    /// - output: see [`ClipTextOutput`]
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_all(
        &self,
        input_ids: Tensor<2, Int>,
        overrides: &[EmbeddingOverride],
    ) -> Result<ClipTextOutput> {
        let mut x = self.embeddings.forward(input_ids.clone(), overrides)?;
        let mut hidden_states = Vec::with_capacity(self.num_layers() + 1);
        for layer in &self.encoder.layers {
            hidden_states.push(x.clone());
            x = layer.forward(x);
        }
        hidden_states.push(x.clone());
        let last_hidden_state = to_dtype(self.final_layer_norm.forward(x), DType::F32);
        let hidden_states = hidden_states
            .into_iter()
            .map(|state| to_dtype(state, DType::F32))
            .collect();
        let pooled = self.pooled(last_hidden_state.clone(), &input_ids);
        Ok(ClipTextOutput {
            last_hidden_state,
            hidden_states,
            pooled,
        })
    }

    /// The pooled output: each sequence's row of `last_hidden_state` at its first
    /// `eos_token_id`, or at its largest id when the config has the legacy `eos_token_id` 2
    /// (transformers' rule). A sequence without EOS pools at position 0, as in transformers
    /// (whose `argmax` of an all-false row is 0).
    ///
    /// # Shapes
    /// - `last_hidden_state`: `[batch, seq_len, hidden_size]`
    /// - `input_ids`: `[batch, seq_len]`
    /// - output: `[batch, hidden_size]`
    pub fn pooled(&self, last_hidden_state: Tensor<3>, input_ids: &Tensor<2, Int>) -> Tensor<2> {
        let [batch, seq_len, hidden] = last_hidden_state.dims();
        let ids: Vec<i64> = input_ids.to_data().iter::<i64>().collect();
        let rows: Vec<i64> = ids
            .chunks(seq_len.max(1))
            .enumerate()
            .map(|(b, row)| {
                let position = if self.eos_token_id == LEGACY_EOS_TOKEN_ID {
                    first_max(row)
                } else {
                    row.iter()
                        .position(|&id| id == i64::from(self.eos_token_id))
                        .unwrap_or(0)
                };
                (b * seq_len + position) as i64
            })
            .collect();
        let device = last_hidden_state.device();
        let index = Tensor::<1, Int>::from_ints(rows.as_slice(), &device);
        last_hidden_state
            .reshape([batch * seq_len, hidden])
            .select(0, index)
    }
}

/// Index of the first largest value (torch's `argmax` convention).
fn first_max(row: &[i64]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, i64::MIN),
            |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
        )
        .0
}
