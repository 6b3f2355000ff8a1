//! The UNet's levels: diffusers' `CrossAttnDownBlock2D` / `DownBlock2D`,
//! `UNetMidBlock2DCrossAttn` and `CrossAttnUpBlock2D` / `UpBlock2D`
//! (`diffusers/models/unets/unet_2d_blocks.py`).
//!
//! A block with and without attention differ only in whether `attentions` is empty, so one
//! Rust type serves both; the field names are diffusers' (`resnets.{j}`, `attentions.{j}`,
//! `downsamplers.0`, `upsamplers.0`).

use burn::module::Module;
use burn::tensor::{Tensor, activation::silu};

use crate::resnet::ResnetBlock2D;
use crate::sampling::{Downsample2D, Upsample2D};
use crate::transformer_2d::Transformer2DModel;

/// One level of the down path: `layers_per_block` × (resnet, then transformer if the block
/// has attention), then a stride-2 downsampler except at the last level.
#[derive(Module, Debug)]
pub struct DownBlock2D {
    /// The resnets.
    pub resnets: Vec<ResnetBlock2D>,
    /// One transformer after each resnet (`CrossAttnDownBlock2D`), or none (`DownBlock2D`).
    pub attentions: Vec<Transformer2DModel>,
    /// Zero or one downsampler.
    pub downsamplers: Vec<Downsample2D>,
}

impl DownBlock2D {
    /// Runs the level and returns its output with every state the up path concatenates:
    /// each layer's output, then the downsampler's.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - `temb_act`: `[batch, temb_channels]` (after SiLU)
    /// - `context`: `[batch, context_tokens, cross_attention_dim]`
    /// - output: `[batch, out_channels, h', w']` (`h' = ceil(height / 2)` with a
    ///   downsampler) and the skip states
    pub fn forward(
        &self,
        x: Tensor<4>,
        temb_act: &Tensor<2>,
        context: &Tensor<3>,
    ) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut h = x;
        let mut states = Vec::with_capacity(self.resnets.len() + self.downsamplers.len());
        for (j, resnet) in self.resnets.iter().enumerate() {
            h = resnet.forward(h, temb_act.clone());
            if let Some(attention) = self.attentions.get(j) {
                h = attention.forward(h, context.clone());
            }
            states.push(h.clone());
        }
        for downsampler in &self.downsamplers {
            h = downsampler.forward(h);
            states.push(h.clone());
        }
        (h, states)
    }
}

/// The bottleneck: resnet, then (transformer, resnet) pairs (diffusers'
/// `UNetMidBlock2DCrossAttn`; LDM `middle_block.0/1/2`).
#[derive(Module, Debug)]
pub struct UNetMidBlock2DCrossAttn {
    /// `1 + attentions.len()` resnets.
    pub resnets: Vec<ResnetBlock2D>,
    /// The transformers.
    pub attentions: Vec<Transformer2DModel>,
}

impl UNetMidBlock2DCrossAttn {
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - `temb_act`: `[batch, temb_channels]` (after SiLU)
    /// - `context`: `[batch, context_tokens, cross_attention_dim]`
    /// - output: `[batch, channels, height, width]`
    pub fn forward(&self, x: Tensor<4>, temb_act: &Tensor<2>, context: &Tensor<3>) -> Tensor<4> {
        let mut resnets = self.resnets.iter();
        let mut h = match resnets.next() {
            Some(first) => first.forward(x, temb_act.clone()),
            None => x,
        };
        for (attention, resnet) in self.attentions.iter().zip(resnets) {
            h = attention.forward(h, context.clone());
            h = resnet.forward(h, temb_act.clone());
        }
        h
    }
}

/// One level of the up path: `layers_per_block + 1` × (concatenate the latest skip state
/// on the channel axis, resnet, then transformer if the block has attention), then a ×2
/// upsampler except at the last level.
#[derive(Module, Debug)]
pub struct UpBlock2D {
    /// The resnets.
    pub resnets: Vec<ResnetBlock2D>,
    /// One transformer after each resnet (`CrossAttnUpBlock2D`), or none (`UpBlock2D`).
    pub attentions: Vec<Transformer2DModel>,
    /// Zero or one upsampler.
    pub upsamplers: Vec<Upsample2D>,
}

impl UpBlock2D {
    /// Runs the level, taking its skip states from the end of `skips` (the last pushed
    /// first), as diffusers pops `down_block_res_samples`.
    ///
    /// `upsample_size` is the spatial size of the skip state the next level concatenates
    /// first (see [`Upsample2D::forward`]); `None` at the last level.
    ///
    /// # Shapes
    /// - `x`: `[batch, prev_channels, height, width]`
    /// - `skips`: states of `[batch, c_skip, height, width]`, at least `resnets.len()`
    /// - output: `[batch, out_channels, upsample_size...]` (or `height, width` at the last
    ///   level)
    pub fn forward(
        &self,
        x: Tensor<4>,
        skips: &mut Vec<Tensor<4>>,
        temb_act: &Tensor<2>,
        context: &Tensor<3>,
        upsample_size: Option<[usize; 2]>,
    ) -> Tensor<4> {
        let mut h = x;
        for (j, resnet) in self.resnets.iter().enumerate() {
            if let Some(skip) = skips.pop() {
                h = Tensor::cat(vec![h, skip], 1);
            }
            h = resnet.forward(h, temb_act.clone());
            if let Some(attention) = self.attentions.get(j) {
                h = attention.forward(h, context.clone());
            }
        }
        for upsampler in &self.upsamplers {
            let [_, _, height, width] = h.dims();
            let size = upsample_size.unwrap_or([2 * height, 2 * width]);
            h = upsampler.forward(h, size);
        }
        h
    }
}

/// SiLU of the time embedding, shared by every resnet (each of diffusers' resnets applies
/// `nonlinearity(temb)` to the same tensor; doing it once gives the same numbers).
pub(crate) fn activate_time_embedding(temb: Tensor<2>) -> Tensor<2> {
    sd_kernels::precision::in_f32(temb, silu)
}
