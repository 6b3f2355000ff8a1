//! The blocks that make up each level of the encoder and decoder.
//!
//! Upstream: `diffusers/models/unets/unet_2d_blocks.py`, `DownEncoderBlock2D`,
//! `UpDecoderBlock2D` and `UNetMidBlock2D` (with `temb_channels=None`,
//! `resnet_time_scale_shift="default"`, `output_scale_factor=1`).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::attention::Attention;
use crate::resnet::ResnetBlock2D;
use crate::sampling::{Downsample2D, Upsample2D};

/// `layers` resnets from `channels_in` to `channels_out` channels: the first changes the
/// channel count, the rest keep it (a level of the encoder or the decoder).
fn resnet_stack(
    channels_in: usize,
    channels_out: usize,
    layers: usize,
    groups: usize,
    device: &Device,
) -> Vec<ResnetBlock2D> {
    (0..layers)
        .map(|i| {
            let from = if i == 0 { channels_in } else { channels_out };
            ResnetBlock2D::new(from, channels_out, groups, device)
        })
        .collect()
}

/// One encoder level: resnets, then (except at the last level) a 2x downsample.
#[derive(Module, Debug)]
pub struct DownEncoderBlock2D {
    /// `layers_per_block` resnets; the first changes the channel count.
    pub resnets: Vec<ResnetBlock2D>,
    /// Empty at the last level, one downsampler otherwise.
    pub downsamplers: Vec<Downsample2D>,
}

impl DownEncoderBlock2D {
    /// A level of `layers` resnets from `channels_in` to `channels_out` channels.
    pub fn new(
        channels_in: usize,
        channels_out: usize,
        layers: usize,
        groups: usize,
        add_downsample: bool,
        device: &Device,
    ) -> Self {
        let resnets = resnet_stack(channels_in, channels_out, layers, groups, device);
        let downsamplers = if add_downsample {
            vec![Downsample2D::new(channels_out, device)]
        } else {
            Vec::new()
        };
        Self {
            resnets,
            downsamplers,
        }
    }

    /// Runs the level.
    ///
    /// # Shapes
    /// - input: `[batch, channels_in, height, width]`
    /// - output: `[batch, channels_out, height / 2, width / 2]`, or the input's size at the
    ///   last level
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let hidden = self.resnets.iter().fold(input, |h, r| r.forward(h));
        self.downsamplers.iter().fold(hidden, |h, d| d.forward(h))
    }
}

/// One decoder level: resnets, then (except at the last level) a 2x upsample.
#[derive(Module, Debug)]
pub struct UpDecoderBlock2D {
    /// `layers_per_block + 1` resnets; the first changes the channel count.
    pub resnets: Vec<ResnetBlock2D>,
    /// Empty at the last level, one upsampler otherwise.
    pub upsamplers: Vec<Upsample2D>,
}

impl UpDecoderBlock2D {
    /// A level of `layers` resnets from `channels_in` to `channels_out` channels.
    pub fn new(
        channels_in: usize,
        channels_out: usize,
        layers: usize,
        groups: usize,
        add_upsample: bool,
        device: &Device,
    ) -> Self {
        let resnets = resnet_stack(channels_in, channels_out, layers, groups, device);
        let upsamplers = if add_upsample {
            vec![Upsample2D::new(channels_out, device)]
        } else {
            Vec::new()
        };
        Self {
            resnets,
            upsamplers,
        }
    }

    /// Runs the level.
    ///
    /// # Shapes
    /// - input: `[batch, channels_in, height, width]`
    /// - output: `[batch, channels_out, 2 * height, 2 * width]`, or the input's size at the
    ///   last level
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let hidden = self.resnets.iter().fold(input, |h, r| r.forward(h));
        self.upsamplers.iter().fold(hidden, |h, u| u.forward(h))
    }
}

/// The lowest-resolution stage: resnet, self-attention, resnet.
#[derive(Module, Debug)]
pub struct UNetMidBlock2D {
    /// Two resnets (`mid.block_1`, `mid.block_2` in LDM checkpoints).
    pub resnets: Vec<ResnetBlock2D>,
    /// One attention layer between them (`mid.attn_1`), or none when the config's
    /// `mid_block_add_attention` is false.
    pub attentions: Vec<Attention>,
}

impl UNetMidBlock2D {
    /// A mid block over `channels` channels.
    pub fn new(channels: usize, groups: usize, add_attention: bool, device: &Device) -> Self {
        let attentions = if add_attention {
            vec![Attention::new(channels, groups, device)]
        } else {
            Vec::new()
        };
        Self {
            resnets: (0..2)
                .map(|_| ResnetBlock2D::new(channels, channels, groups, device))
                .collect(),
            attentions,
        }
    }

    /// Runs the block.
    ///
    /// # Shapes
    /// - input: `[batch, channels, height, width]`
    /// - output: `[batch, channels, height, width]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut resnets = self.resnets.iter();
        let mut hidden = match resnets.next() {
            Some(first) => first.forward(input),
            None => input,
        };
        // diffusers zips attentions[i] with resnets[i + 1]; a missing attention is skipped.
        for (i, resnet) in resnets.enumerate() {
            if let Some(attention) = self.attentions.get(i) {
                hidden = attention.forward(hidden);
            }
            hidden = resnet.forward(hidden);
        }
        hidden
    }
}
