//! Multi-head attention, the GEGLU feed-forward and the transformer block that combines them:
//! diffusers' `Attention` (`diffusers/models/attention_processor.py`), `FeedForward`/`GEGLU`
//! (`attention.py`, `activations.py`) and `BasicTransformerBlock` (`attention.py`).
//!
//! The attention itself and the GEGLU gate run through `sd-kernels`
//! ([`scaled_dot_product`], [`sd_kernels::geglu()`]): a flash-style CPU kernel, memory-bounded
//! operations under autodiff, and chunked calls to burn's fused op on other backends (see
//! [`sd_kernels::attention`]).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use sd_kernels::linear;

use crate::hypernetwork::HypernetworkPair;

pub use sd_kernels::attention::{SCORE_BUDGET, scaled_dot_product};

/// Multi-head attention with separate q/k/v projections (no bias) and an output projection
/// (diffusers' `Attention` as `BasicTransformerBlock` builds it).
///
/// `to_out` is diffusers' `to_out.0`; `to_out.1` is a parameterless Dropout.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection, `query_dim → inner`.
    pub to_q: Linear,
    /// Key projection, `context_dim → inner`.
    pub to_k: Linear,
    /// Value projection, `context_dim → inner`.
    pub to_v: Linear,
    /// Output projection, `inner → query_dim`, with bias.
    pub to_out: Linear,
    /// Number of heads.
    pub heads: usize,
    /// Compute the scores in f32 even for half-precision inputs (diffusers'
    /// `upcast_attention`); a no-op for f32 models.
    pub upcast_attention: bool,
    /// A1111 hypernetworks rewriting the key and value inputs, in order (none by default;
    /// [`UNet2DConditionModel::set_hypernetworks`](crate::unet_2d_condition::UNet2DConditionModel::set_hypernetworks)).
    pub hypernetworks: Vec<HypernetworkPair>,
}

impl Attention {
    /// An uninitialised attention layer of `heads × head_dim` inner width; `context_dim` is
    /// `None` for self-attention.
    pub fn new(
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        head_dim: usize,
        upcast_attention: bool,
        device: &Device,
    ) -> Self {
        let inner = heads * head_dim;
        let context_dim = context_dim.unwrap_or(query_dim);
        let no_bias = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self {
            to_q: no_bias(query_dim, inner),
            to_k: no_bias(context_dim, inner),
            to_v: no_bias(context_dim, inner),
            to_out: LinearConfig::new(inner, query_dim).init(device),
            heads,
            upcast_attention,
            hypernetworks: Vec::new(),
        }
    }

    /// Attends from `x` to `context` (or to itself when `context` is `None`).
    ///
    /// # Shapes
    /// - `x`: `[batch, queries, query_dim]`
    /// - `context`: `[batch, keys, context_dim]`; any number of keys (A1111 concatenates
    ///   77-token chunks: 154, 231, ...)
    /// - output: `[batch, queries, query_dim]`
    pub fn forward(&self, x: Tensor<3>, context: Option<Tensor<3>>) -> Tensor<3> {
        let context = context.unwrap_or_else(|| x.clone());
        let (key_input, value_input) = if self.hypernetworks.is_empty() {
            (context.clone(), context)
        } else {
            self.hypernetwork_contexts(context)
        };
        let q = self.split_heads(linear(&self.to_q, x));
        let k = self.split_heads(linear(&self.to_k, key_input));
        let v = self.split_heads(linear(&self.to_v, value_input));
        let [batch, heads, queries, head_dim] = q.dims();
        let out = scaled_dot_product(q, k, v, self.upcast_attention)
            .swap_dims(1, 2)
            .reshape([batch, queries, heads * head_dim]);
        linear(&self.to_out, out)
    }

    /// `[batch, tokens, heads * head_dim]` → `[batch, heads, tokens, head_dim]`.
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [batch, tokens, inner] = x.dims();
        x.reshape([batch, tokens, self.heads, inner / self.heads])
            .swap_dims(1, 2)
    }
}

/// diffusers' `GEGLU`: one projection to twice the inner width; the first half is the value,
/// the second half the gate, through exact (erf) GELU: `value * gelu(gate)`.
#[derive(Module, Debug)]
pub struct Geglu {
    /// `dim → 2 × inner` (`ff.net.0.proj`).
    pub proj: Linear,
}

impl Geglu {
    /// # Shapes
    /// - `x`: `[batch, tokens, dim]`
    /// - output: `[batch, tokens, inner]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        sd_kernels::geglu(linear(&self.proj, x))
    }
}

/// diffusers' `FeedForward` with `activation_fn="geglu"` and 4× inner width.
///
/// The fields are diffusers' `ff.net.0` (GEGLU) and `ff.net.2` (output linear); `net.1` is
/// a parameterless Dropout.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `ff.net.0`.
    pub net_0: Geglu,
    /// `ff.net.2`: `inner → dim`.
    pub net_2: Linear,
}

impl FeedForward {
    /// An uninitialised feed-forward of width `dim` and inner width `4 × dim`.
    pub fn new(dim: usize, device: &Device) -> Self {
        let inner = 4 * dim;
        Self {
            net_0: Geglu {
                proj: LinearConfig::new(dim, 2 * inner).init(device),
            },
            net_2: LinearConfig::new(inner, dim).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, tokens, dim]`
    /// - output: `[batch, tokens, dim]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        linear(&self.net_2, self.net_0.forward(x))
    }
}
