//! The spatial transformer of the UNet's attention levels: diffusers' `Transformer2DModel`
//! (`diffusers/models/transformers/transformer_2d.py`) and `BasicTransformerBlock`
//! (`attention.py`), after "High-Resolution Image Synthesis with Latent Diffusion Models"
//! (Rombach et al., 2022), section 3.3.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use sd_kernels::{conv2d, group_norm, linear};

use crate::attention::{Attention, FeedForward};

/// diffusers' `Transformer2DModel` GroupNorm epsilon (fixed, not the config's `norm_eps`).
const GROUP_NORM_EPS: f64 = 1e-6;
/// `BasicTransformerBlock`'s LayerNorm epsilon (`norm_eps` default).
const LAYER_NORM_EPS: f64 = 1e-5;

/// Self-attention, cross-attention to the text, then a GEGLU feed-forward, each pre-normed
/// and residual (diffusers' `BasicTransformerBlock`, `norm_type="layer_norm"`).
#[derive(Module, Debug)]
pub struct BasicTransformerBlock {
    /// Norm before `attn1`.
    pub norm1: LayerNorm,
    /// Self-attention (or attention to the context when `only_cross_attention`).
    pub attn1: Attention,
    /// Norm before `attn2`.
    pub norm2: LayerNorm,
    /// Cross-attention to the text context.
    pub attn2: Attention,
    /// Norm before `ff`.
    pub norm3: LayerNorm,
    /// The feed-forward.
    pub ff: FeedForward,
    /// `attn1` attends to the context instead of to itself.
    pub only_cross_attention: bool,
}

impl BasicTransformerBlock {
    /// # Shapes
    /// - `x`: `[batch, tokens, dim]`
    /// - `context`: `[batch, context_tokens, cross_attention_dim]`
    /// - output: `[batch, tokens, dim]`
    pub fn forward(&self, x: Tensor<3>, context: Tensor<3>) -> Tensor<3> {
        let attn1_context = self.only_cross_attention.then(|| context.clone());
        let x = self
            .attn1
            .forward(self.norm1.forward(x.clone()), attn1_context)
            + x;
        let x = self
            .attn2
            .forward(self.norm2.forward(x.clone()), Some(context))
            + x;
        self.ff.forward(self.norm3.forward(x.clone())) + x
    }
}

/// `proj_in` / `proj_out`: a 1×1 convolution (SD 1.x) or a linear layer (SD 2.x,
/// `use_linear_projection`). Both are stored under the same key; loading skips the variant
/// name.
#[derive(Module, Debug)]
pub enum Projection {
    /// 1×1 convolution, applied on the image layout.
    Conv(Conv2d),
    /// Linear layer, applied on the token layout.
    Linear(Linear),
}

/// Shapes and numbers of one [`Transformer2DModel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transformer2DConfig {
    /// Channels in and out.
    pub channels: usize,
    /// Attention heads; the head width is `channels / heads`.
    pub heads: usize,
    /// Number of [`BasicTransformerBlock`]s.
    pub layers: usize,
    /// Width of the text context.
    pub cross_attention_dim: usize,
    /// GroupNorm groups.
    pub groups: usize,
    /// Linear instead of 1×1 convolution projections.
    pub use_linear_projection: bool,
    /// See [`BasicTransformerBlock::only_cross_attention`].
    pub only_cross_attention: bool,
    /// See [`Attention::upcast_attention`].
    pub upcast_attention: bool,
}

impl Transformer2DConfig {
    /// An uninitialised transformer.
    pub fn init(&self, device: &Device) -> Transformer2DModel {
        let c = self.channels;
        let head_dim = c / self.heads;
        let projection = || {
            if self.use_linear_projection {
                Projection::Linear(LinearConfig::new(c, c).init(device))
            } else {
                Projection::Conv(Conv2dConfig::new([c, c], [1, 1]).init(device))
            }
        };
        let layer_norm = || {
            LayerNormConfig::new(c)
                .with_epsilon(LAYER_NORM_EPS)
                .init(device)
        };
        let attn1_context = self
            .only_cross_attention
            .then_some(self.cross_attention_dim);
        let transformer_blocks = (0..self.layers)
            .map(|_| BasicTransformerBlock {
                norm1: layer_norm(),
                attn1: Attention::new(
                    c,
                    attn1_context,
                    self.heads,
                    head_dim,
                    self.upcast_attention,
                    device,
                ),
                norm2: layer_norm(),
                attn2: Attention::new(
                    c,
                    Some(self.cross_attention_dim),
                    self.heads,
                    head_dim,
                    self.upcast_attention,
                    device,
                ),
                norm3: layer_norm(),
                ff: FeedForward::new(c, device),
                only_cross_attention: self.only_cross_attention,
            })
            .collect();
        Transformer2DModel {
            norm: GroupNormConfig::new(self.groups, c)
                .with_epsilon(GROUP_NORM_EPS)
                .init(device),
            proj_in: projection(),
            transformer_blocks,
            proj_out: projection(),
        }
    }
}

/// GroupNorm, `proj_in`, the image as a sequence of `height × width` tokens through the
/// transformer blocks, `proj_out`, plus the input (diffusers' `Transformer2DModel` for
/// continuous inputs; LDM's `SpatialTransformer`).
#[derive(Module, Debug)]
pub struct Transformer2DModel {
    /// GroupNorm of the input (eps 1e-6).
    pub norm: GroupNorm,
    /// Channel projection into the transformer.
    pub proj_in: Projection,
    /// The blocks (one in SD).
    pub transformer_blocks: Vec<BasicTransformerBlock>,
    /// Channel projection out of the transformer.
    pub proj_out: Projection,
}

impl Transformer2DModel {
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - `context`: `[batch, context_tokens, cross_attention_dim]`
    /// - output: `[batch, channels, height, width]`
    pub fn forward(&self, x: Tensor<4>, context: Tensor<3>) -> Tensor<4> {
        let [batch, channels, height, width] = x.dims();
        let tokens = height * width;
        let to_tokens = |t: Tensor<4>| t.reshape([batch, channels, tokens]).swap_dims(1, 2);
        let to_image = |t: Tensor<3>| t.swap_dims(1, 2).reshape([batch, channels, height, width]);
        let normed = group_norm(&self.norm, x.clone(), false);
        let mut h = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(conv2d(conv, normed)),
            Projection::Linear(layer) => linear(layer, to_tokens(normed)),
        };
        for block in &self.transformer_blocks {
            h = block.forward(h, context.clone());
        }
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv2d(conv, to_image(h)),
            Projection::Linear(layer) => to_image(linear(layer, h)),
        };
        out + x
    }
}
