//! The whole VAE: diffusers' `AutoencoderKL`.
//!
//! Upstream: `diffusers/models/autoencoders/autoencoder_kl.py` (Rombach et al., "High-Resolution
//! Image Synthesis with Latent Diffusion Models", 2022, the KL-regularised autoencoder).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Device, Tensor};

use crate::AutoencoderKlConfig;
use crate::decoder::Decoder;
use crate::distribution::DiagonalGaussianDistribution;
use crate::encoder::Encoder;
use crate::resnet::conv1x1;
use sd_kernels::conv2d;
use sd_kernels::precision::to_dtype;

/// Stable Diffusion's autoencoder: images to latents ([`encode`](Self::encode)) and back
/// ([`decode`](Self::decode)).
///
/// Parameter paths are diffusers' state-dict keys (`encoder.down_blocks.0.resnets.0.conv1`,
/// `decoder.mid_block.attentions.0.to_q`, `quant_conv`, ...), so diffusers files load without
/// renames; see [`crate::loader`] for LDM single files.
#[derive(Module, Debug)]
pub struct AutoencoderKl {
    /// Images to moments.
    pub encoder: Encoder,
    /// Latents to images.
    pub decoder: Decoder,
    /// 1x1 conv on the moments (absent when `use_quant_conv` is false).
    pub quant_conv: Option<Conv2d>,
    /// 1x1 conv on latents before the decoder (absent when `use_post_quant_conv` is false).
    pub post_quant_conv: Option<Conv2d>,
    /// The config's `scaling_factor`.
    pub scaling_factor: f64,
    /// The config's `shift_factor`, 0 when absent.
    pub shift_factor: f64,
}

impl AutoencoderKl {
    /// The network a validated configuration describes (use [`AutoencoderKlConfig::init`]).
    pub(crate) fn new(config: &AutoencoderKlConfig, device: &Device) -> Self {
        let latent = config.latent_channels;
        Self {
            encoder: Encoder::new(config, device),
            decoder: Decoder::new(config, device),
            quant_conv: config
                .use_quant_conv
                .then(|| conv1x1(2 * latent, 2 * latent, device)),
            post_quant_conv: config
                .use_post_quant_conv
                .then(|| conv1x1(latent, latent, device)),
            scaling_factor: config.scaling_factor,
            shift_factor: config.shift_factor.unwrap_or(0.0),
        }
    }

    /// Encodes images to the latent distribution (`vae.encode(x).latent_dist`).
    ///
    /// Images are in [-1, 1]. The latents this distribution yields are *unscaled*: apply
    /// [`scale_latents`](Self::scale_latents) before handing them to a UNet.
    ///
    /// # Shapes
    /// - images: `[batch, in_channels, height, width]`, height and width multiples of the
    ///   config's [`downscale_factor`](AutoencoderKlConfig::downscale_factor) `f`
    /// - the distribution's mean and log-variance: `[batch, latent_channels, height / f, width / f]`
    pub fn encode(&self, images: Tensor<4>) -> DiagonalGaussianDistribution {
        let images_dtype = images.dtype();
        let moments = self.encoder.forward(to_dtype(images, self.dtype()));
        let moments = match &self.quant_conv {
            Some(conv) => conv2d(conv, moments),
            None => moments,
        };
        DiagonalGaussianDistribution::from_moments(to_dtype(moments, images_dtype))
    }

    /// The type the weights hold and the network computes in: f32 unless
    /// [`sd_kernels::precision::cast_params`] made it f16 or bf16. [`encode`](Self::encode)
    /// and [`decode`](Self::decode) cast their inputs to it and their outputs back.
    pub fn dtype(&self) -> DType {
        self.decoder.conv_in.weight.val().dtype()
    }

    /// Decodes *unscaled* latents to images in roughly [-1, 1] (`vae.decode(z).sample`:
    /// `post_quant_conv`, then the decoder; no scaling factor, no clamping).
    ///
    /// # Shapes
    /// - latents: `[batch, latent_channels, height, width]`
    /// - output: `[batch, out_channels, f * height, f * width]`, `f` the config's
    ///   [`downscale_factor`](AutoencoderKlConfig::downscale_factor)
    pub fn decode(&self, latents: Tensor<4>) -> Tensor<4> {
        let latents_dtype = latents.dtype();
        let latents = to_dtype(latents, self.dtype());
        let latents = match &self.post_quant_conv {
            Some(conv) => conv2d(conv, latents),
            None => latents,
        };
        to_dtype(self.decoder.forward(latents), latents_dtype)
    }

    /// From the VAE's latent space to the UNet's: `(z - shift_factor) * scaling_factor`
    /// (`z * 0.18215` for SD 1.x/2.x).
    ///
    /// # Shapes
    /// - latents, output: `[batch, latent_channels, height, width]`
    pub fn scale_latents(&self, latents: Tensor<4>) -> Tensor<4> {
        latents
            .sub_scalar(self.shift_factor)
            .mul_scalar(self.scaling_factor)
    }

    /// From the UNet's latent space back to the VAE's: `z / scaling_factor + shift_factor`,
    /// the inverse of [`scale_latents`](Self::scale_latents); apply it before
    /// [`decode`](Self::decode).
    ///
    /// # Shapes
    /// - latents, output: `[batch, latent_channels, height, width]`
    pub fn unscale_latents(&self, latents: Tensor<4>) -> Tensor<4> {
        latents
            .div_scalar(self.scaling_factor)
            .add_scalar(self.shift_factor)
    }
}
