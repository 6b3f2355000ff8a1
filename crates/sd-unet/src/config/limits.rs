//! What a [`UNetConfig`] may ask for: a cap on every size, a bound on the parameter count
//! computed from the sizes alone, and [`UNetConfig::validate`], which checks both before
//! anything is allocated.

use super::UNetConfig;
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

impl UNetConfig {
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
