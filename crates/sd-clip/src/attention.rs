//! Causal multi-head self-attention: transformers' `CLIPAttention` (`self_attn.{q,k,v,out}_proj`;
//! OpenCLIP fuses q/k/v into `attn.in_proj_*`, which the loader splits).

use burn::{
    module::Module,
    nn::{Linear, LinearConfig},
    tensor::{Device, Tensor, module::attention, ops::AttentionModuleOptions},
};

use crate::config::ClipTextConfig;

/// Self-attention with CLIP's causal mask (each token sees itself and the tokens before it).
#[derive(Module, Debug)]
pub struct ClipAttention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub out_proj: Linear,
    num_heads: usize,
}

impl ClipAttention {
    pub(crate) fn new(config: &ClipTextConfig, device: &Device) -> Self {
        let d = config.hidden_size;
        let linear = || LinearConfig::new(d, d).init(device);
        Self {
            q_proj: linear(),
            k_proj: linear(),
            v_proj: linear(),
            out_proj: linear(),
            num_heads: config.num_attention_heads,
        }
    }

    /// # Shapes
    /// - input and output: `[batch, seq_len, hidden_size]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, seq_len, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let heads = |t: Tensor<3>| {
            t.reshape([batch, seq_len, self.num_heads, head_dim])
                .swap_dims(1, 2)
        };
        let q = heads(self.q_proj.forward(x.clone()));
        let k = heads(self.k_proj.forward(x.clone()));
        let v = heads(self.v_proj.forward(x));
        // burn's fused attention: softmax(q kᵀ / sqrt(head_dim)) v with the causal mask that
        // transformers builds for CLIP's text model (scale = head_dim^-0.5, its default).
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let out = attention(q, k, v, None, None, options)
            .swap_dims(1, 2)
            .reshape([batch, seq_len, hidden]);
        self.out_proj.forward(out)
    }
}
