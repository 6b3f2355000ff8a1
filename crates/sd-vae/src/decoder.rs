//! Latents to images: diffusers' `Decoder`.
//!
//! Upstream: `diffusers/models/autoencoders/vae.py`, `Decoder` with `norm_type="group"`.

use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use crate::AutoencoderKlConfig;
use crate::resnet::{conv3x3, group_norm};
use crate::unet_2d_blocks::{UNetMidBlock2D, UpDecoderBlock2D};
use sd_kernels::conv2d;

/// The decoder half of the VAE.
#[derive(Module, Debug)]
pub struct Decoder {
    /// Latent channels to the last level's channels.
    pub conv_in: Conv2d,
    /// Resnet–attention–resnet at the lowest resolution.
    pub mid_block: UNetMidBlock2D,
    /// One block per level, from the latent side (`up_blocks.0`) to the image side; each but
    /// the last doubles the resolution. LDM checkpoints number these the other way round
    /// (`up.{n-1-i}`).
    pub up_blocks: Vec<UpDecoderBlock2D>,
    /// The final GroupNorm (`norm_out` in LDM checkpoints).
    pub conv_norm_out: GroupNorm,
    /// To image channels.
    pub conv_out: Conv2d,
}

impl Decoder {
    /// The decoder a (validated) configuration describes.
    pub(crate) fn new(config: &AutoencoderKlConfig, device: &Device) -> Self {
        let reversed: Vec<usize> = config.block_out_channels.iter().rev().copied().collect();
        let groups = config.norm_num_groups;
        let last = reversed.len() - 1;
        let up_blocks = reversed
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let from = if i == 0 { reversed[0] } else { reversed[i - 1] };
                // The decoder has one resnet more per level than the encoder, as in diffusers
                // (`num_layers=layers_per_block + 1`) and LDM (`num_res_blocks + 1`).
                UpDecoderBlock2D::new(
                    from,
                    out,
                    config.layers_per_block + 1,
                    groups,
                    i != last,
                    device,
                )
            })
            .collect();
        Self {
            conv_in: conv3x3(config.latent_channels, reversed[0], device),
            mid_block: UNetMidBlock2D::new(
                reversed[0],
                groups,
                config.mid_block_add_attention,
                device,
            ),
            up_blocks,
            conv_norm_out: group_norm(groups, reversed[last], device),
            conv_out: conv3x3(reversed[last], config.out_channels, device),
        }
    }

    /// Decodes latents (after `post_quant_conv`) to images.
    ///
    /// # Shapes
    /// - input: `[batch, latent_channels, height, width]`
    /// - output: `[batch, out_channels, f * height, f * width]` with `f` the config's
    ///   [`downscale_factor`](AutoencoderKlConfig::downscale_factor)
    pub fn forward(&self, latents: Tensor<4>) -> Tensor<4> {
        let hidden = conv2d(&self.conv_in, latents);
        let hidden = self.mid_block.forward(hidden);
        let hidden = self.up_blocks.iter().fold(hidden, |h, b| b.forward(h));
        conv2d(
            &self.conv_out,
            sd_kernels::group_norm(&self.conv_norm_out, hidden, true),
        )
    }
}
