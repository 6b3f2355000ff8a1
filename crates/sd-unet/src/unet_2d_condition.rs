//! The whole denoiser, diffusers' `UNet2DConditionModel`
//! (`diffusers/models/unets/unet_2d_condition.py`; LDM's `openaimodel.UNetModel`).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::{DType, Device, Tensor};
use sd_kernels::precision::to_dtype;
use sd_kernels::{conv2d, group_norm};

use crate::config::UNetConfig;
use crate::embeddings::{TimestepEmbedding, Timesteps};
use crate::error::UNetError;
use crate::resnet::ResnetBlock2DConfig;
use crate::sampling::{Downsample2D, Upsample2D};
use crate::transformer_2d::Transformer2DConfig;
use crate::unet_2d_blocks::{
    DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D, activate_time_embedding,
};

/// Stable Diffusion's denoiser: predicts the noise (or `v`) in a latent at a timestep,
/// conditioned on a text context.
///
/// Field names are diffusers' state-dict keys (`conv_in`, `time_embedding.linear_1`,
/// `down_blocks.{i}.resnets.{j}.conv1`, ...); [`crate::loader`] maps the LDM single-file
/// names onto them.
#[derive(Module, Debug)]
pub struct UNet2DConditionModel {
    /// The timestep MLP.
    pub time_embedding: TimestepEmbedding,
    /// Latent channels → first block's channels.
    pub conv_in: Conv2d,
    /// The down path, full resolution first.
    pub down_blocks: Vec<DownBlock2D>,
    /// The bottleneck.
    pub mid_block: UNetMidBlock2DCrossAttn,
    /// The up path, lowest resolution first.
    pub up_blocks: Vec<UpBlock2D>,
    /// GroupNorm before the output convolution.
    pub conv_norm_out: GroupNorm,
    /// First block's channels → output channels.
    pub conv_out: Conv2d,
    /// Width of the sinusoidal timestep embedding (the first block's channels).
    pub timestep_channels: usize,
    /// Sinusoid order of the timestep embedding (config `flip_sin_to_cos`).
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the timestep embedding (config `freq_shift`).
    pub freq_shift: f64,
    /// Channels the input must have (config `in_channels`).
    pub in_channels: usize,
    /// Width the context must have (config `cross_attention_dim`).
    pub cross_attention_dim: usize,
    /// Map the input from [0, 1] to [-1, 1] first (config `center_input_sample`).
    pub center_input_sample: bool,
}

impl UNetConfig {
    /// Builds the model this configuration describes, with uninitialised weights (they are
    /// created on first use, so loading a checkpoint never pays for a random init).
    pub fn init(&self, device: &Device) -> Result<UNet2DConditionModel, UNetError> {
        self.validate()?;
        let n = self.down_block_types.len();
        let heads = self.heads_per_block()?;
        let layers = self
            .transformer_layers_per_block
            .per_block(n, "transformer_layers_per_block")?;
        let only_cross = self
            .only_cross_attention
            .per_block(n, "only_cross_attention")?;
        let channels = &self.block_out_channels;
        let temb = self.time_embed_dim();
        let groups = self.norm_num_groups;
        let resnet = |in_channels, out_channels, output_scale_factor| {
            ResnetBlock2DConfig {
                in_channels,
                out_channels,
                temb_channels: temb,
                groups,
                eps: self.norm_eps,
                output_scale_factor,
            }
            .init(device)
        };
        let transformer = |channels, heads, layers, only_cross_attention| {
            Transformer2DConfig {
                channels,
                heads,
                layers,
                cross_attention_dim: self.cross_attention_dim,
                groups,
                use_linear_projection: self.use_linear_projection,
                only_cross_attention,
                upcast_attention: self.upcast_attention,
            }
            .init(device)
        };
        let conv = |i, o, k: usize| {
            let p = (k - 1) / 2;
            Conv2dConfig::new([i, o], [k, k])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init(device)
        };

        let mut down_blocks = Vec::with_capacity(n);
        let mut out_channels = channels[0];
        for (i, kind) in self.down_block_types.iter().enumerate() {
            let in_channels = out_channels;
            out_channels = channels[i];
            let is_final = i == n - 1;
            let resnets = (0..self.layers_per_block)
                .map(|j| {
                    let c_in = if j == 0 { in_channels } else { out_channels };
                    resnet(c_in, out_channels, self.resnet_out_scale_factor)
                })
                .collect();
            let attentions = if kind.has_attention() {
                (0..self.layers_per_block)
                    .map(|_| transformer(out_channels, heads[i], layers[i], only_cross[i]))
                    .collect()
            } else {
                Vec::new()
            };
            let downsamplers = if is_final {
                Vec::new()
            } else {
                vec![Downsample2D::new(
                    out_channels,
                    self.downsample_padding,
                    device,
                )]
            };
            down_blocks.push(DownBlock2D {
                resnets,
                attentions,
                downsamplers,
            });
        }

        let last = channels[n - 1];
        let mid_only_cross = self
            .mid_block_only_cross_attention
            .or(match self.only_cross_attention {
                crate::config::PerBlock::All(value) => Some(value),
                crate::config::PerBlock::Each(_) => None,
            })
            .unwrap_or(false);
        let mid_block = UNetMidBlock2DCrossAttn {
            resnets: (0..2)
                .map(|_| resnet(last, last, self.mid_block_scale_factor))
                .collect(),
            attentions: vec![transformer(
                last,
                heads[n - 1],
                layers[n - 1],
                mid_only_cross,
            )],
        };

        // Up blocks mirror the down path: block i of the up path is level n - 1 - i.
        let mut up_blocks = Vec::with_capacity(n);
        let mut out_channels = channels[n - 1];
        for (i, kind) in self.up_block_types.iter().enumerate() {
            let level = n - 1 - i;
            let prev_out = out_channels;
            out_channels = channels[level];
            let skip_in = channels[level.saturating_sub(1)];
            let is_final = i == n - 1;
            let num_layers = self.layers_per_block + 1;
            let resnets = (0..num_layers)
                .map(|j| {
                    let skip = if j == num_layers - 1 {
                        skip_in
                    } else {
                        out_channels
                    };
                    let c_in = if j == 0 { prev_out } else { out_channels };
                    resnet(c_in + skip, out_channels, self.resnet_out_scale_factor)
                })
                .collect();
            let attentions = if kind.has_attention() {
                (0..num_layers)
                    .map(|_| {
                        transformer(out_channels, heads[level], layers[level], only_cross[level])
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let upsamplers = if is_final {
                Vec::new()
            } else {
                vec![Upsample2D::new(out_channels, device)]
            };
            up_blocks.push(UpBlock2D {
                resnets,
                attentions,
                upsamplers,
            });
        }

        Ok(UNet2DConditionModel {
            time_embedding: TimestepEmbedding::new(channels[0], temb, device),
            conv_in: conv(self.in_channels, channels[0], self.conv_in_kernel),
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNormConfig::new(groups, channels[0])
                .with_epsilon(self.norm_eps)
                .init(device),
            conv_out: conv(channels[0], self.out_channels, self.conv_out_kernel),
            timestep_channels: channels[0],
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
            in_channels: self.in_channels,
            cross_attention_dim: self.cross_attention_dim,
            center_input_sample: self.center_input_sample,
        })
    }
}

impl UNet2DConditionModel {
    /// One denoising step's model call.
    ///
    /// Any latent size runs (non-square, and sides that are not a multiple of
    /// 2^(levels − 1): the up path crops to the skip sizes as diffusers does); batch > 1 takes
    /// one timestep per element (or one for all); the context may be longer than 77 tokens
    /// (A1111 concatenates 77-token chunks: 154, 231, ...).
    ///
    /// # Shapes
    /// - `sample`: `[batch, in_channels, height, width]`, the (scaled) latent
    /// - `timesteps`: `[batch]` or `[1]`, f32, fractional values allowed (k-diffusion
    ///   samplers pass interpolated timesteps)
    /// - `context`: `[batch, tokens, cross_attention_dim]`, the text encoder's hidden states
    /// - output: `[batch, out_channels, height, width]`
    ///
    /// # Errors
    /// [`UNetError::Input`] when the shapes do not fit the model or each other.
    pub fn forward(
        &self,
        sample: Tensor<4>,
        timesteps: Tensor<1>,
        context: Tensor<3>,
    ) -> Result<Tensor<4>, UNetError> {
        let [batch, channels, height, width] = sample.dims();
        let [steps] = timesteps.dims();
        let [context_batch, tokens, context_dim] = context.dims();
        if channels != self.in_channels {
            return Err(UNetError::Input(format!(
                "sample has {channels} channels, the model takes {}",
                self.in_channels
            )));
        }
        if batch == 0 || height == 0 || width == 0 {
            return Err(UNetError::Input(format!(
                "empty sample {:?}",
                sample.dims()
            )));
        }
        if steps != batch && steps != 1 {
            return Err(UNetError::Input(format!(
                "{steps} timesteps for a batch of {batch}"
            )));
        }
        if context_batch != batch || context_dim != self.cross_attention_dim || tokens == 0 {
            return Err(UNetError::Input(format!(
                "context {:?} for a batch of {batch}, the model takes [{batch}, tokens, {}]",
                context.dims(),
                self.cross_attention_dim
            )));
        }
        let timesteps = if steps == batch {
            timesteps
        } else {
            timesteps.expand([batch])
        };
        Ok(self.forward_unchecked(sample, timesteps, context))
    }

    /// The type the weights hold and the network computes in: f32 unless
    /// [`sd_kernels::precision::cast_params`] made it f16 or bf16. [`forward`](Self::forward)
    /// casts its inputs to it and its output back to the sample's type.
    pub fn dtype(&self) -> DType {
        self.conv_in.weight.val().dtype()
    }

    fn forward_unchecked(
        &self,
        sample: Tensor<4>,
        timesteps: Tensor<1>,
        context: Tensor<3>,
    ) -> Tensor<4> {
        let (dtype, sample_dtype) = (self.dtype(), sample.dtype());
        let sample = to_dtype(sample, dtype);
        let context = to_dtype(context, dtype);
        let sample = if self.center_input_sample {
            sample * 2.0 - 1.0
        } else {
            sample
        };
        let time_proj = Timesteps {
            num_channels: self.timestep_channels,
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
        };
        // The sinusoids in f32, then the weights' type (diffusers' `t_emb.to(dtype)`).
        let emb = self
            .time_embedding
            .forward(to_dtype(time_proj.forward(timesteps), dtype));
        let temb_act = activate_time_embedding(emb);

        let mut h = conv2d(&self.conv_in, sample);
        let mut skips = vec![h.clone()];
        for block in &self.down_blocks {
            let (out, states) = block.forward(h, &temb_act, &context);
            h = out;
            skips.extend(states);
        }
        h = self.mid_block.forward(h, &temb_act, &context);
        for block in &self.up_blocks {
            let remaining = skips.len().saturating_sub(block.resnets.len());
            let next_skip = remaining.checked_sub(1).and_then(|i| skips.get(i));
            let upsample_size = next_skip.map(|s| {
                let [_, _, height, width] = s.dims();
                [height, width]
            });
            h = block.forward(h, &mut skips, &temb_act, &context, upsample_size);
        }
        let out = conv2d(&self.conv_out, group_norm(&self.conv_norm_out, h, true));
        to_dtype(out, sample_dtype)
    }
}
