//! The UNet's configuration: diffusers' `unet/config.json`, key for key.
//!
//! Field names are the keys of diffusers' `UNet2DConditionModel` config (its `__init__`
//! arguments, `diffusers/models/unets/unet_2d_condition.py`), so a model folder's
//! `unet/config.json` deserialises directly; keys this crate does not use (`_class_name`,
//! `dropout`, ...) are ignored. Defaults are diffusers' defaults. One key is renamed in Rust:
//! see [`UNetConfig::heads`].
//!
//! The per-block values and block kinds ([`PerBlock`], [`DownBlockType`], ...) are defined in
//! `config/blocks.rs`; the caps every size is checked against ([`MAX_CHANNELS`], ...) and the
//! check itself ([`UNetConfig::validate`]) in `config/limits.rs`.

mod blocks;
mod limits;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use self::blocks::{DownBlockType, MidBlockType, PerBlock, UpBlockType};
pub use self::limits::{
    MAX_BLOCKS, MAX_CHANNELS, MAX_CROSS_ATTENTION_DIM, MAX_DOWNSAMPLE_PADDING, MAX_IO_CHANNELS,
    MAX_KERNEL, MAX_LAYERS_PER_BLOCK, MAX_PARAMETERS, MAX_TIME_EMBEDDING_DIM,
    MAX_TRANSFORMER_LAYERS,
};
use crate::error::UNetError;

/// diffusers' `UNet2DConditionModel` configuration (`unet/config.json`).
///
/// ```
/// use sd_unet::UNetConfig;
///
/// let json = r#"{"_class_name": "UNet2DConditionModel", "block_out_channels": [320, 640, 1280, 1280],
///     "cross_attention_dim": 768, "attention_head_dim": 8, "sample_size": 64}"#;
/// let config: UNetConfig = serde_json::from_str(json)?;
/// assert_eq!(config, sd_unet::UNetConfig::sd15());
/// assert_eq!(config.heads_per_block()?, vec![8, 8, 8, 8]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UNetConfig {
    /// Latent height and width the model was trained at (informative: any size runs).
    pub sample_size: Option<usize>,
    /// Channels of the input latent: 4, or 9 for inpainting models (latent + mask + masked
    /// image latent).
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Map the input from [0, 1] to [-1, 1] first (`2 * x - 1`); false for SD.
    pub center_input_sample: bool,
    /// Order of the sinusoidal timestep embedding: `cos, sin` when true, `sin, cos` when false.
    pub flip_sin_to_cos: bool,
    /// The frequency shift of the timestep embedding (diffusers' `downscale_freq_shift`):
    /// frequencies are `exp(-ln(10000) * i / (half_dim - freq_shift))`. 0 for SD, 1 for DDPM.
    pub freq_shift: f64,
    /// Down blocks, from full resolution down.
    pub down_block_types: Vec<DownBlockType>,
    /// The middle block.
    pub mid_block_type: Option<MidBlockType>,
    /// Up blocks, from lowest resolution up.
    pub up_block_types: Vec<UpBlockType>,
    /// Attention layers attend only to the context (no self-attention), per block.
    pub only_cross_attention: PerBlock<bool>,
    /// `only_cross_attention` of the middle block (defaults to a single
    /// `only_cross_attention` value).
    pub mid_block_only_cross_attention: Option<bool>,
    /// Output channels of each down block (and, reversed, of each up block).
    pub block_out_channels: Vec<usize>,
    /// Resnets per down block (up blocks have one more).
    pub layers_per_block: usize,
    /// Padding of the stride-2 downsampling convolutions.
    pub downsample_padding: usize,
    /// Output scale of the middle block's resnets (`(shortcut + h) / scale`).
    pub mid_block_scale_factor: f64,
    /// Activation; only `silu` (alias `swish`) is supported.
    pub act_fn: String,
    /// Groups of every GroupNorm (32 for SD).
    pub norm_num_groups: usize,
    /// Epsilon of the resnets' and the output's GroupNorms.
    pub norm_eps: f64,
    /// Width of the text context (768 for SD 1.x, 1024 for SD 2.x).
    pub cross_attention_dim: usize,
    /// `BasicTransformerBlock`s per `Transformer2DModel`, per block.
    pub transformer_layers_per_block: PerBlock<usize>,
    /// The NUMBER OF ATTENTION HEADS of each block's transformers, despite its JSON key
    /// `attention_head_dim` (diffusers issue #2011: the name is a historical mistake kept for
    /// compatibility with 40 000+ configs). The head width is `channels / heads`. SD 1.x: 8
    /// everywhere; SD 2.x: `[5, 10, 20, 20]`, i.e. 64-wide heads. Up blocks use the list
    /// reversed, the middle block the last value.
    #[serde(rename = "attention_head_dim")]
    pub heads: PerBlock<usize>,
    /// diffusers' later, correctly named key for the head count; when set it takes precedence
    /// over `attention_head_dim` ([`heads`](Self::heads)). `null` in SD configs.
    pub num_attention_heads: Option<PerBlock<usize>>,
    /// Two transformers per block (Versatile Diffusion); unsupported, must be false.
    pub dual_cross_attention: bool,
    /// `proj_in`/`proj_out` are linear layers (SD 2.x) instead of 1×1 convolutions (SD 1.x).
    pub use_linear_projection: bool,
    /// Compute attention scores in f32 even when the model runs in half precision (SD 2.x
    /// overflows in f16 otherwise).
    pub upcast_attention: bool,
    /// How the time embedding enters the resnets; only `default` (added) is supported.
    pub resnet_time_scale_shift: String,
    /// Output scale of the down and up blocks' resnets.
    pub resnet_out_scale_factor: f64,
    /// Kind of the timestep embedding; only `positional` (sinusoidal) is supported.
    pub time_embedding_type: String,
    /// Width of the time embedding; `None` means `4 * block_out_channels[0]`.
    pub time_embedding_dim: Option<usize>,
    /// Kernel size of `conv_in`.
    pub conv_in_kernel: usize,
    /// Kernel size of `conv_out`.
    pub conv_out_kernel: usize,
    /// Apply the activation to the time embedding before the resnets' projection a second
    /// time; unsupported, must be false.
    pub resnet_skip_time_act: bool,
    /// Attention variant; only `default` is supported.
    pub attention_type: String,
    /// Class conditioning (unsupported, must be null).
    pub class_embed_type: Option<serde_json::Value>,
    /// Extra conditioning such as SDXL's (unsupported, must be null).
    pub addition_embed_type: Option<serde_json::Value>,
    /// Context projection (unsupported, must be null).
    pub encoder_hid_dim: Option<serde_json::Value>,
    /// Class embeddings (unsupported, must be null).
    pub num_class_embeds: Option<serde_json::Value>,
    /// LCM guidance conditioning (unsupported, must be null).
    pub time_cond_proj_dim: Option<serde_json::Value>,
    /// Activation after the time embedding (unsupported, must be null).
    pub time_embedding_act_fn: Option<serde_json::Value>,
    /// Activation after the timestep MLP (unsupported, must be null).
    pub timestep_post_act: Option<serde_json::Value>,
    /// Normalisation of the context (unsupported, must be null).
    pub cross_attention_norm: Option<serde_json::Value>,
}

impl Default for UNetConfig {
    /// diffusers' `UNet2DConditionModel()` defaults.
    fn default() -> Self {
        Self {
            sample_size: None,
            in_channels: 4,
            out_channels: 4,
            center_input_sample: false,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            down_block_types: vec![
                DownBlockType::CrossAttnDownBlock2D,
                DownBlockType::CrossAttnDownBlock2D,
                DownBlockType::CrossAttnDownBlock2D,
                DownBlockType::DownBlock2D,
            ],
            mid_block_type: Some(MidBlockType::UNetMidBlock2DCrossAttn),
            up_block_types: vec![
                UpBlockType::UpBlock2D,
                UpBlockType::CrossAttnUpBlock2D,
                UpBlockType::CrossAttnUpBlock2D,
                UpBlockType::CrossAttnUpBlock2D,
            ],
            only_cross_attention: PerBlock::All(false),
            mid_block_only_cross_attention: None,
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: 2,
            downsample_padding: 1,
            mid_block_scale_factor: 1.0,
            act_fn: "silu".into(),
            norm_num_groups: 32,
            norm_eps: 1e-5,
            cross_attention_dim: 1280,
            transformer_layers_per_block: PerBlock::All(1),
            heads: PerBlock::All(8),
            num_attention_heads: None,
            dual_cross_attention: false,
            use_linear_projection: false,
            upcast_attention: false,
            resnet_time_scale_shift: "default".into(),
            resnet_out_scale_factor: 1.0,
            time_embedding_type: "positional".into(),
            time_embedding_dim: None,
            conv_in_kernel: 3,
            conv_out_kernel: 3,
            resnet_skip_time_act: false,
            attention_type: "default".into(),
            class_embed_type: None,
            addition_embed_type: None,
            encoder_hid_dim: None,
            num_class_embeds: None,
            time_cond_proj_dim: None,
            time_embedding_act_fn: None,
            timestep_post_act: None,
            cross_attention_norm: None,
        }
    }
}

impl UNetConfig {
    /// Stable Diffusion 1.x (1.4, 1.5 and their fine-tunes), as
    /// <https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/unet/config.json>.
    pub fn sd15() -> Self {
        Self {
            sample_size: Some(64),
            cross_attention_dim: 768,
            heads: PerBlock::All(8),
            ..Self::default()
        }
    }

    /// The SD 1.5 inpainting model: [`sd15`](Self::sd15) with 9 input channels (latent, mask,
    /// masked-image latent), as
    /// <https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-inpainting/blob/main/unet/config.json>.
    pub fn sd15_inpainting() -> Self {
        Self {
            in_channels: 9,
            ..Self::sd15()
        }
    }

    /// Stable Diffusion 2.x (2.0 and 2.1, 512 and 768-v), as
    /// <https://huggingface.co/stabilityai/stable-diffusion-2-1/blob/main/unet/config.json>:
    /// 64-wide heads (`attention_head_dim: [5, 10, 20, 20]`, the head counts), OpenCLIP's
    /// 1024-wide context, linear `proj_in`/`proj_out` and f32 attention scores.
    pub fn sd21() -> Self {
        Self {
            sample_size: Some(96),
            cross_attention_dim: 1024,
            heads: PerBlock::Each(vec![5, 10, 20, 20]),
            use_linear_projection: true,
            upcast_attention: true,
            ..Self::default()
        }
    }

    /// Reads a `unet/config.json`.
    pub fn from_json_file(path: impl AsRef<std::path::Path>) -> Result<Self, UNetError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| UNetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| UNetError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Attention heads of each down block (diffusers: `num_attention_heads or
    /// attention_head_dim`, see [`heads`](Self::heads)).
    pub fn heads_per_block(&self) -> Result<Vec<usize>, UNetError> {
        let n = self.down_block_types.len();
        match &self.num_attention_heads {
            Some(heads) => heads.per_block(n, "num_attention_heads"),
            None => self.heads.per_block(n, "attention_head_dim"),
        }
    }

    /// Width of the time embedding: `time_embedding_dim`, or 4 × the first block's channels.
    pub fn time_embed_dim(&self) -> usize {
        self.time_embedding_dim
            .unwrap_or(4usize.saturating_mul(self.block_out_channels.first().copied().unwrap_or(0)))
    }

    /// How many times the down path halves the resolution (one per down block but the last).
    pub fn num_downsamplers(&self) -> usize {
        self.down_block_types.len().saturating_sub(1)
    }
}
