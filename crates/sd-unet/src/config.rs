//! The UNet's configuration: diffusers' `unet/config.json`, key for key.
//!
//! Field names are the keys of diffusers' `UNet2DConditionModel` config (its `__init__`
//! arguments, `diffusers/models/unets/unet_2d_condition.py`), so a model folder's
//! `unet/config.json` deserialises directly; keys this crate does not use (`_class_name`,
//! `dropout`, ...) are ignored. Defaults are diffusers' defaults. One key is renamed in Rust:
//! see [`UNetConfig::heads`].

use serde::{Deserialize, Serialize};

use crate::error::UNetError;

/// The most down blocks (and up blocks) accepted (SD: 4; SDXL: 3).
pub const MAX_BLOCKS: usize = 8;
/// The most channels of any block accepted (SD: 1280).
pub const MAX_CHANNELS: usize = 1 << 14;
/// The most input or output channels accepted (SD: 4; inpainting: 9).
pub const MAX_IO_CHANNELS: usize = 1024;
/// The most resnets per block accepted (`layers_per_block`; SD: 2).
pub const MAX_LAYERS_PER_BLOCK: usize = 64;
/// The most transformer layers per block accepted (`transformer_layers_per_block`;
/// SDXL: 10).
pub const MAX_TRANSFORMER_LAYERS: usize = 256;
/// The widest text context accepted (`cross_attention_dim`; SD 2.x: 1024, SDXL: 2048).
pub const MAX_CROSS_ATTENTION_DIM: usize = 1 << 14;
/// The widest time embedding accepted (`time_embedding_dim`; SD: 1280).
pub const MAX_TIME_EMBEDDING_DIM: usize = 1 << 16;
/// The largest `conv_in_kernel` / `conv_out_kernel` accepted (SD: 3).
pub const MAX_KERNEL: usize = 15;
/// The largest `downsample_padding` accepted (SD: 1).
pub const MAX_DOWNSAMPLE_PADDING: usize = 8;
/// The most parameters (f32 elements) a UNet may have, by
/// [`UNetConfig::parameter_bound`]: 2³³ (32 GiB), eight times that bound for SD 1.5 (its
/// real count is 860 M). Fields can each be under their cap while their product asks for
/// terabytes; this refuses those before any module is built.
pub const MAX_PARAMETERS: u128 = 1 << 33;

/// A value given once for every block or as one value per block, as diffusers accepts for
/// `attention_head_dim`, `only_cross_attention` and `transformer_layers_per_block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerBlock<T> {
    /// The same value for every down block (and, mirrored, every up block).
    All(T),
    /// One value per down block, in down-block order.
    Each(Vec<T>),
}

impl<T: Clone> PerBlock<T> {
    /// The value of each of `n` down blocks, or an error naming `field` when a list has the
    /// wrong length.
    pub fn per_block(&self, n: usize, field: &'static str) -> Result<Vec<T>, UNetError> {
        match self {
            Self::All(value) => Ok(vec![value.clone(); n]),
            Self::Each(values) if values.len() == n => Ok(values.clone()),
            Self::Each(values) => Err(UNetError::Config {
                field,
                message: format!("{} values for {n} down blocks", values.len()),
            }),
        }
    }
}

/// The kind of a down block (`down_block_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownBlockType {
    /// Resnets each followed by a `Transformer2DModel` (self- and cross-attention).
    CrossAttnDownBlock2D,
    /// Resnets only.
    DownBlock2D,
}

impl DownBlockType {
    /// Whether the block has attention layers.
    pub fn has_attention(self) -> bool {
        self == Self::CrossAttnDownBlock2D
    }
}

/// The kind of an up block (`up_block_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpBlockType {
    /// Resnets each followed by a `Transformer2DModel`.
    CrossAttnUpBlock2D,
    /// Resnets only.
    UpBlock2D,
}

impl UpBlockType {
    /// Whether the block has attention layers.
    pub fn has_attention(self) -> bool {
        self == Self::CrossAttnUpBlock2D
    }
}

/// The kind of the middle block (`mid_block_type`); SD 1.x and 2.x use the only one supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MidBlockType {
    /// resnet, then (transformer, resnet) pairs.
    UNetMidBlock2DCrossAttn,
}

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

    /// An upper bound on the parameter count (within 1.5× of the real one for SD 1.x/2.x),
    /// from the sizes alone, in a type no config can overflow: each block's resnets counted
    /// at the widest neighbouring width with the up path's skip concatenation, its
    /// transformers at `18c² + 2c·context` per layer plus projections.
    ///
    /// # Errors
    /// [`UNetError::Config`] when a per-block list has the wrong length.
    pub fn parameter_bound(&self) -> Result<u128, UNetError> {
        let n = self.down_block_types.len();
        let layers = self
            .transformer_layers_per_block
            .per_block(n, "transformer_layers_per_block")?;
        let channels: Vec<u128> = self.block_out_channels.iter().map(|&c| c as u128).collect();
        let time = self.time_embed_dim() as u128;
        let context = self.cross_attention_dim as u128;
        let resnet = |c: u128| 29 * c * c + time * c;
        let transformer = |c: u128, depth: u128| 2 * c * c + depth * (18 * c * c + 2 * c * context);
        let units = 2 * self.layers_per_block as u128 + 1;
        let mut total = 0u128;
        for (i, ((&c, &depth), kind)) in channels
            .iter()
            .zip(&layers)
            .zip(&self.down_block_types)
            .enumerate()
        {
            let widest = channels[i.saturating_sub(1)..(i + 2).min(channels.len())]
                .iter()
                .copied()
                .max()
                .unwrap_or(c);
            total += units * resnet(widest) + 2 * 9 * c * c;
            // Up block `n - 1 - i` works at this level's width.
            let up_attention = self
                .up_block_types
                .get(n - 1 - i)
                .is_some_and(|t| t.has_attention());
            if kind.has_attention() || up_attention {
                total += units * transformer(c, depth as u128);
            }
        }
        let last = channels.last().copied().unwrap_or(0);
        let last_depth = layers.last().copied().unwrap_or(0) as u128;
        let first = channels.first().copied().unwrap_or(0);
        let kernel = (self.conv_in_kernel.max(self.conv_out_kernel) as u128).pow(2);
        total += 2 * resnet(last) + transformer(last, last_depth);
        total += first * (self.in_channels + self.out_channels) as u128 * kernel;
        total += time * (first + time);
        Ok(total)
    }

    /// Checks that the configuration describes a UNet this crate builds: the SD 1.x/2.x
    /// family, every size positive and under its cap ([`MAX_CHANNELS`] and the other
    /// `MAX_*` constants of this module), at most [`MAX_PARAMETERS`] parameters by
    /// [`parameter_bound`](Self::parameter_bound). Nothing is allocated. Called by
    /// [`init`](Self::init).
    pub fn validate(&self) -> Result<(), UNetError> {
        let unsupported =
            |field: &'static str, message: String| Err(UNetError::Config { field, message });
        let n = self.down_block_types.len();
        if n == 0 {
            return unsupported("down_block_types", "no down blocks".into());
        }
        if self.up_block_types.len() != n {
            return unsupported(
                "up_block_types",
                format!(
                    "{} up blocks for {n} down blocks",
                    self.up_block_types.len()
                ),
            );
        }
        if self.block_out_channels.len() != n {
            return unsupported(
                "block_out_channels",
                format!(
                    "{} values for {n} down blocks",
                    self.block_out_channels.len()
                ),
            );
        }
        if self.mid_block_type.is_none() {
            return unsupported("mid_block_type", "a UNet without middle block".into());
        }
        if n > MAX_BLOCKS {
            return unsupported(
                "down_block_types",
                format!("{n} down blocks; at most {MAX_BLOCKS} are accepted"),
            );
        }
        if let Some(&c) = self
            .block_out_channels
            .iter()
            .find(|&&c| c == 0 || c > MAX_CHANNELS)
        {
            return unsupported(
                "block_out_channels",
                format!("{c} channels are not in 1..={MAX_CHANNELS}"),
            );
        }
        for (field, value, max) in [
            ("in_channels", self.in_channels, MAX_IO_CHANNELS),
            ("out_channels", self.out_channels, MAX_IO_CHANNELS),
            (
                "layers_per_block",
                self.layers_per_block,
                MAX_LAYERS_PER_BLOCK,
            ),
            (
                "cross_attention_dim",
                self.cross_attention_dim,
                MAX_CROSS_ATTENTION_DIM,
            ),
            (
                "time_embedding_dim",
                self.time_embed_dim(),
                MAX_TIME_EMBEDDING_DIM,
            ),
            ("conv_in_kernel", self.conv_in_kernel, MAX_KERNEL),
            ("conv_out_kernel", self.conv_out_kernel, MAX_KERNEL),
        ] {
            if value == 0 || value > max {
                return unsupported(field, format!("{value} is not in 1..={max}"));
            }
        }
        // The sinusoidal timestep embedding is `block_out_channels[0]` wide: half sines,
        // half cosines.
        let first = self.block_out_channels[0];
        if !first.is_multiple_of(2) {
            return unsupported(
                "block_out_channels",
                format!(
                    "the first block's {first} channels must be even (the timestep embedding's width)"
                ),
            );
        }
        if self.downsample_padding > MAX_DOWNSAMPLE_PADDING {
            return unsupported(
                "downsample_padding",
                format!(
                    "{} is not in 0..={MAX_DOWNSAMPLE_PADDING}",
                    self.downsample_padding
                ),
            );
        }
        for (field, value) in [
            ("freq_shift", self.freq_shift),
            ("norm_eps", self.norm_eps),
            ("mid_block_scale_factor", self.mid_block_scale_factor),
            ("resnet_out_scale_factor", self.resnet_out_scale_factor),
        ] {
            let divides = field.ends_with("scale_factor");
            if !value.is_finite()
                || (divides && value == 0.0)
                || (field == "norm_eps" && value < 0.0)
            {
                return unsupported(field, format!("{value} is out of range"));
            }
        }
        if self.norm_num_groups == 0
            || self
                .block_out_channels
                .iter()
                .any(|c| *c == 0 || c % self.norm_num_groups != 0)
        {
            return unsupported(
                "norm_num_groups",
                format!(
                    "{} groups do not divide the channels {:?}",
                    self.norm_num_groups, self.block_out_channels
                ),
            );
        }
        let heads = self.heads_per_block()?;
        for (channels, heads) in self.block_out_channels.iter().zip(&heads) {
            if *heads == 0 || channels % heads != 0 {
                return unsupported(
                    "attention_head_dim",
                    format!("{heads} heads do not divide {channels} channels"),
                );
            }
        }
        self.only_cross_attention
            .per_block(n, "only_cross_attention")?;
        let layers = self
            .transformer_layers_per_block
            .per_block(n, "transformer_layers_per_block")?;
        if let Some(&l) = layers
            .iter()
            .find(|&&l| l == 0 || l > MAX_TRANSFORMER_LAYERS)
        {
            return unsupported(
                "transformer_layers_per_block",
                format!("{l} is not in 1..={MAX_TRANSFORMER_LAYERS}"),
            );
        }
        let parameters = self.parameter_bound()?;
        if parameters > MAX_PARAMETERS {
            return unsupported(
                "block_out_channels",
                format!(
                    "the config describes up to {parameters} parameters (channels {:?}, \
                     {} resnets and {:?} transformer layers per block); at most \
                     {MAX_PARAMETERS} are accepted",
                    self.block_out_channels, self.layers_per_block, layers
                ),
            );
        }
        if !matches!(self.act_fn.as_str(), "silu" | "swish") {
            return unsupported("act_fn", self.act_fn.clone());
        }
        if self.resnet_time_scale_shift != "default" {
            return unsupported(
                "resnet_time_scale_shift",
                self.resnet_time_scale_shift.clone(),
            );
        }
        if self.time_embedding_type != "positional" {
            return unsupported("time_embedding_type", self.time_embedding_type.clone());
        }
        if self.attention_type != "default" {
            return unsupported("attention_type", self.attention_type.clone());
        }
        if self.dual_cross_attention {
            return unsupported("dual_cross_attention", "true".into());
        }
        if self.resnet_skip_time_act {
            return unsupported("resnet_skip_time_act", "true".into());
        }
        for (kernel, field) in [
            (self.conv_in_kernel, "conv_in_kernel"),
            (self.conv_out_kernel, "conv_out_kernel"),
        ] {
            if kernel % 2 == 0 {
                return unsupported(field, format!("even kernel {kernel}"));
            }
        }
        let must_be_null = [
            (&self.class_embed_type, "class_embed_type"),
            (&self.addition_embed_type, "addition_embed_type"),
            (&self.encoder_hid_dim, "encoder_hid_dim"),
            (&self.num_class_embeds, "num_class_embeds"),
            (&self.time_cond_proj_dim, "time_cond_proj_dim"),
            (&self.time_embedding_act_fn, "time_embedding_act_fn"),
            (&self.timestep_post_act, "timestep_post_act"),
            (&self.cross_attention_norm, "cross_attention_norm"),
        ];
        for (value, field) in must_be_null {
            if let Some(value) = value
                && !value.is_null()
            {
                return unsupported(field, value.to_string());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd21_preset_matches_its_upstream_json() {
        // The keys of stabilityai/stable-diffusion-2-1's unet/config.json that differ from
        // diffusers' defaults.
        let json = r#"{"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.10.0.dev0",
            "act_fn": "silu", "attention_head_dim": [5, 10, 20, 20], "block_out_channels":
            [320, 640, 1280, 1280], "center_input_sample": false, "cross_attention_dim": 1024,
            "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D", "DownBlock2D"], "downsample_padding": 1, "dual_cross_attention":
            false, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
            "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
            "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4,
            "sample_size": 96, "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], "upcast_attention": true,
            "use_linear_projection": true}"#;
        let config: UNetConfig = serde_json::from_str(json).expect("valid json");
        assert_eq!(config, UNetConfig::sd21());
        assert_eq!(
            config.heads_per_block().expect("valid"),
            vec![5, 10, 20, 20]
        );
        config.validate().expect("supported");
    }

    fn field_of(config: &UNetConfig) -> &'static str {
        match config.validate() {
            Err(UNetError::Config { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_parameter_bound_is_close_above_the_real_count() {
        // diffusers: sum(p.numel() for p in UNet2DConditionModel(**sd15).parameters()).
        const SD15_PARAMETERS: u128 = 859_520_964;
        for config in [
            UNetConfig::sd15(),
            UNetConfig::sd15_inpainting(),
            UNetConfig::sd21(),
        ] {
            config.validate().expect("valid");
            let bound = config.parameter_bound().expect("bound");
            assert!(
                (SD15_PARAMETERS..SD15_PARAMETERS * 8 / 5).contains(&bound),
                "{bound}"
            );
        }
    }

    #[test]
    fn zero_and_absurd_sizes_are_refused_before_any_allocation() {
        let sd15 = UNetConfig::sd15;
        let cases = [
            (
                UNetConfig {
                    layers_per_block: 100_000_000,
                    ..sd15()
                },
                "layers_per_block",
            ),
            (
                UNetConfig {
                    in_channels: 0,
                    ..sd15()
                },
                "in_channels",
            ),
            (
                UNetConfig {
                    out_channels: usize::MAX,
                    ..sd15()
                },
                "out_channels",
            ),
            (
                UNetConfig {
                    cross_attention_dim: 0,
                    ..sd15()
                },
                "cross_attention_dim",
            ),
            (
                UNetConfig {
                    cross_attention_dim: 1 << 40,
                    ..sd15()
                },
                "cross_attention_dim",
            ),
            (
                UNetConfig {
                    time_embedding_dim: Some(1 << 40),
                    ..sd15()
                },
                "time_embedding_dim",
            ),
            (
                UNetConfig {
                    conv_in_kernel: 1_000_001,
                    ..sd15()
                },
                "conv_in_kernel",
            ),
            (
                UNetConfig {
                    downsample_padding: 1 << 30,
                    ..sd15()
                },
                "downsample_padding",
            ),
            (
                UNetConfig {
                    block_out_channels: vec![320, 640, 1 << 40, 1280],
                    ..sd15()
                },
                "block_out_channels",
            ),
            (
                UNetConfig {
                    block_out_channels: vec![usize::MAX; 4],
                    ..sd15()
                },
                "block_out_channels",
            ),
            (
                UNetConfig {
                    block_out_channels: vec![96, 640, 1280, 1280],
                    norm_num_groups: 3,
                    heads: PerBlock::All(1),
                    ..sd15()
                },
                "norm_num_groups",
            ),
            (
                UNetConfig {
                    block_out_channels: vec![33, 66, 66, 66],
                    norm_num_groups: 3,
                    heads: PerBlock::All(3),
                    ..sd15()
                },
                "block_out_channels",
            ),
            (
                UNetConfig {
                    heads: PerBlock::All(0),
                    ..sd15()
                },
                "attention_head_dim",
            ),
            (
                UNetConfig {
                    heads: PerBlock::All(7),
                    ..sd15()
                },
                "attention_head_dim",
            ),
            (
                UNetConfig {
                    heads: PerBlock::All(1 << 20),
                    ..sd15()
                },
                "attention_head_dim",
            ),
            (
                UNetConfig {
                    transformer_layers_per_block: PerBlock::All(1 << 30),
                    ..sd15()
                },
                "transformer_layers_per_block",
            ),
            (
                UNetConfig {
                    down_block_types: vec![DownBlockType::DownBlock2D; 100],
                    up_block_types: vec![UpBlockType::UpBlock2D; 100],
                    block_out_channels: vec![32; 100],
                    ..sd15()
                },
                "down_block_types",
            ),
            (
                UNetConfig {
                    norm_eps: f64::NAN,
                    ..sd15()
                },
                "norm_eps",
            ),
            (
                UNetConfig {
                    mid_block_scale_factor: 0.0,
                    ..sd15()
                },
                "mid_block_scale_factor",
            ),
            // Every field under its cap; together 2^14-wide blocks with 64 resnets each.
            (
                UNetConfig {
                    block_out_channels: vec![MAX_CHANNELS; 4],
                    layers_per_block: MAX_LAYERS_PER_BLOCK,
                    ..sd15()
                },
                "block_out_channels",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(field_of(&config), field, "{config:?}");
        }
    }

    #[test]
    fn num_attention_heads_takes_precedence() {
        let config = UNetConfig {
            num_attention_heads: Some(PerBlock::All(4)),
            ..UNetConfig::sd15()
        };
        assert_eq!(config.heads_per_block().expect("valid"), vec![4; 4]);
    }

    #[test]
    fn unsupported_configs_are_named() {
        let config = UNetConfig {
            class_embed_type: Some(serde_json::Value::String("timestep".into())),
            ..UNetConfig::sd15()
        };
        let err = config.validate().expect_err("unsupported");
        assert!(err.to_string().contains("class_embed_type"), "{err}");
        let config = UNetConfig {
            heads: PerBlock::Each(vec![5, 10]),
            ..UNetConfig::sd21()
        };
        let err = config.validate().expect_err("wrong length");
        assert!(err.to_string().contains("attention_head_dim"), "{err}");
    }
}
