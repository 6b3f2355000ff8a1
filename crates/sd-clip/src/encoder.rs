//! The transformer stack: transformers' `CLIPEncoderLayer` and `CLIPEncoder`
//! (`encoder.layers.{i}`; OpenCLIP's `transformer.resblocks.{i}`).

use burn::{
    module::Module,
    nn::{LayerNorm, LayerNormConfig},
    tensor::{Device, Tensor},
};

use crate::{attention::ClipAttention, config::ClipTextConfig, mlp::ClipMlp};

/// A pre-norm transformer layer: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
#[derive(Module, Debug)]
pub struct ClipEncoderLayer {
    /// Causal self-attention.
    pub self_attn: ClipAttention,
    /// Norm before the attention (OpenCLIP `ln_1`).
    pub layer_norm1: LayerNorm,
    /// Feed-forward block.
    pub mlp: ClipMlp,
    /// Norm before the MLP (OpenCLIP `ln_2`).
    pub layer_norm2: LayerNorm,
}

impl ClipEncoderLayer {
    pub(crate) fn new(config: &ClipTextConfig, device: &Device) -> Self {
        let norm = || {
            LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        Self {
            self_attn: ClipAttention::new(config, device),
            layer_norm1: norm(),
            mlp: ClipMlp::new(config, device),
            layer_norm2: norm(),
        }
    }

    /// # Shapes
    /// - input and output: `[batch, seq_len, hidden_size]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x));
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}

/// `encoder.layers`.
#[derive(Module, Debug)]
pub struct ClipEncoder {
    /// The layers, first to last.
    pub layers: Vec<ClipEncoderLayer>,
}

impl ClipEncoder {
    pub(crate) fn new(config: &ClipTextConfig, device: &Device) -> Self {
        Self {
            layers: (0..config.num_hidden_layers)
                .map(|_| ClipEncoderLayer::new(config, device))
                .collect(),
        }
    }
}
