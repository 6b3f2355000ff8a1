//! Images to the moments of the latent distribution: diffusers' `Encoder`.
//!
//! Upstream: `diffusers/models/autoencoders/vae.py`, `Encoder` with `double_z=True`.

use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use crate::AutoencoderKlConfig;
use crate::resnet::{conv3x3, group_norm};
use crate::unet_2d_blocks::{DownEncoderBlock2D, UNetMidBlock2D};
use sd_kernels::conv2d;

/// The encoder half of the VAE.
#[derive(Module, Debug)]
pub struct Encoder {
    /// Image channels to the first level's channels.
    pub conv_in: Conv2d,
    /// One block per level, each but the last halving the resolution.
    pub down_blocks: Vec<DownEncoderBlock2D>,
    /// Resnet–attention–resnet at the lowest resolution.
    pub mid_block: UNetMidBlock2D,
    /// The final GroupNorm (`norm_out` in LDM checkpoints).
    pub conv_norm_out: GroupNorm,
    /// To `2 * latent_channels`: the mean and the log-variance.
    pub conv_out: Conv2d,
}

impl Encoder {
    /// The encoder a (validated) configuration describes.
    pub(crate) fn new(config: &AutoencoderKlConfig, device: &Device) -> Self {
        let channels = &config.block_out_channels;
        let groups = config.norm_num_groups;
        let last = channels.len() - 1;
        let down_blocks = channels
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let from = if i == 0 { channels[0] } else { channels[i - 1] };
                DownEncoderBlock2D::new(
                    from,
                    out,
                    config.layers_per_block,
                    groups,
                    i != last,
                    device,
                )
            })
            .collect();
        Self {
            conv_in: conv3x3(config.in_channels, channels[0], device),
            down_blocks,
            mid_block: UNetMidBlock2D::new(
                channels[last],
                groups,
                config.mid_block_add_attention,
                device,
            ),
            conv_norm_out: group_norm(groups, channels[last], device),
            conv_out: conv3x3(channels[last], 2 * config.latent_channels, device),
        }
    }

    /// Encodes images to moments (mean and log-variance stacked on the channel axis).
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`
    /// - output: `[batch, 2 * latent_channels, height / f, width / f]` with `f` the
    ///   config's [`downscale_factor`](AutoencoderKlConfig::downscale_factor)
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let hidden = conv2d(&self.conv_in, images);
        let hidden = self.down_blocks.iter().fold(hidden, |h, b| b.forward(h));
        let hidden = self.mid_block.forward(hidden);
        conv2d(
            &self.conv_out,
            sd_kernels::group_norm(&self.conv_norm_out, hidden, true),
        )
    }
}
