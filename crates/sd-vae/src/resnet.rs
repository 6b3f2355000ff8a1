//! diffusers' `ResnetBlock2D` as the VAE uses it (no time embedding), and the shared layer
//! constructors.
//!
//! Upstream: `diffusers/models/resnet.py`, `ResnetBlock2D` with `temb_channels=None`,
//! `eps=1e-6`, `output_scale_factor=1`, dropout 0 (inference).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use sd_kernels::conv2d;

/// The epsilon of every GroupNorm in diffusers' VAE (its `resnet_eps=1e-6`), not PyTorch's 1e-5.
pub(crate) const NORM_EPS: f64 = 1e-6;

/// A GroupNorm with the VAE's epsilon.
pub(crate) fn group_norm(groups: usize, channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups, channels)
        .with_epsilon(NORM_EPS)
        .init(device)
}

/// A 3x3 convolution that keeps the spatial size (`padding=1`).
pub(crate) fn conv3x3(channels_in: usize, channels_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels_in, channels_out], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// A 1x1 convolution (`quant_conv`, `post_quant_conv`, `conv_shortcut`).
pub(crate) fn conv1x1(channels_in: usize, channels_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels_in, channels_out], [1, 1]).init(device)
}

/// Two GroupNorm–SiLU–conv3x3 stages plus a skip connection (1x1 conv when the channel
/// count changes).
#[derive(Module, Debug)]
pub struct ResnetBlock2D {
    /// Normalises the input.
    pub norm1: GroupNorm,
    /// Input channels to output channels.
    pub conv1: Conv2d,
    /// Normalises the first stage's output.
    pub norm2: GroupNorm,
    /// Output channels to output channels.
    pub conv2: Conv2d,
    /// Projects the skip connection when input and output channels differ
    /// (`nin_shortcut` in LDM checkpoints).
    pub conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock2D {
    /// A block from `channels_in` to `channels_out` channels with `groups` norm groups.
    pub fn new(channels_in: usize, channels_out: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm1: group_norm(groups, channels_in, device),
            conv1: conv3x3(channels_in, channels_out, device),
            norm2: group_norm(groups, channels_out, device),
            conv2: conv3x3(channels_out, channels_out, device),
            conv_shortcut: (channels_in != channels_out)
                .then(|| conv1x1(channels_in, channels_out, device)),
        }
    }

    /// Runs the block.
    ///
    /// # Shapes
    /// - input: `[batch, channels_in, height, width]`
    /// - output: `[batch, channels_out, height, width]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let hidden = conv2d(
            &self.conv1,
            sd_kernels::group_norm(&self.norm1, input.clone(), true),
        );
        let hidden = conv2d(
            &self.conv2,
            sd_kernels::group_norm(&self.norm2, hidden, true),
        );
        let skip = match &self.conv_shortcut {
            Some(conv) => conv2d(conv, input),
            None => input,
        };
        skip + hidden
    }
}
