//! The mid-block self-attention of the VAE: diffusers' `Attention` as `UNetMidBlock2D`
//! builds it (one head over all `height * width` positions, GroupNorm in front, residual).
//!
//! Upstream: `diffusers/models/attention_processor.py`, `Attention(..., heads=1,
//! dim_head=channels, norm_num_groups=groups, residual_connection=True, bias=True)` with
//! `AttnProcessor`. LDM calls the same layer `AttnBlock` and stores its projections as 1x1
//! convolutions; the loader turns those into the linear weights used here.

use burn::module::Module;
use burn::nn::{GroupNorm, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use sd_kernels::linear;

use crate::resnet::group_norm;

/// Single-head spatial self-attention with a residual connection.
#[derive(Module, Debug)]
pub struct Attention {
    /// Normalises the input before the projections (`norm` in LDM checkpoints).
    pub group_norm: GroupNorm,
    /// Query projection (`q`).
    pub to_q: Linear,
    /// Key projection (`k`).
    pub to_k: Linear,
    /// Value projection (`v`).
    pub to_v: Linear,
    /// Output projection; a list of one so that the parameter path is diffusers'
    /// `to_out.0` (diffusers' list also holds a parameterless dropout).
    pub to_out: Vec<Linear>,
}

impl Attention {
    /// An attention layer over `channels` channels with `groups` norm groups.
    pub fn new(channels: usize, groups: usize, device: &Device) -> Self {
        let linear = || LinearConfig::new(channels, channels).init(device);
        Self {
            group_norm: group_norm(groups, channels, device),
            to_q: linear(),
            to_k: linear(),
            to_v: linear(),
            to_out: vec![linear()],
        }
    }

    /// Attends every position to every other and adds the result to the input.
    ///
    /// Uses `sd_kernels::scaled_dot_product` (on the CPU, its flash-style kernel), with the
    /// scale `1/sqrt(channels)`, which is diffusers' for one head of `channels` dimensions.
    ///
    /// # Shapes
    /// - input: `[batch, channels, height, width]`
    /// - output: `[batch, channels, height, width]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let [batch, channels, height, width] = input.dims();
        let tokens = height * width;
        // [B, C, H, W] -> [B, H*W, C]: positions become the sequence, channels the features.
        let hidden = sd_kernels::group_norm(&self.group_norm, input.clone(), false)
            .reshape([batch, channels, tokens])
            .swap_dims(1, 2);
        // One head: [B, 1, H*W, C].
        let q = linear(&self.to_q, hidden.clone()).unsqueeze_dim::<4>(1);
        let k = linear(&self.to_k, hidden.clone()).unsqueeze_dim::<4>(1);
        let v = linear(&self.to_v, hidden).unsqueeze_dim::<4>(1);
        let attended =
            sd_kernels::scaled_dot_product(q, k, v, false).reshape([batch, tokens, channels]);
        let attended = self
            .to_out
            .iter()
            .fold(attended, |hidden, layer| linear(layer, hidden));
        let attended = attended
            .swap_dims(1, 2)
            .reshape([batch, channels, height, width]);
        attended + input
    }
}
