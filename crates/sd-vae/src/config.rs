//! The VAE's configuration: diffusers' `vae/config.json`, key for key.
//!
//! Mirrors the constructor of diffusers' `AutoencoderKL`
//! (`diffusers/models/autoencoders/autoencoder_kl.py`); every default below is that
//! constructor's default, so a `config.json` that omits a key means what it means to diffusers.
//! Keys this crate does not use (`_class_name`, `_diffusers_version`, ...) are ignored.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::{AutoencoderKl, Result, VaeError};

/// The block type every encoder level must have (the only one `AutoencoderKL` SD uses).
const DOWN_BLOCK: &str = "DownEncoderBlock2D";
/// The block type every decoder level must have.
const UP_BLOCK: &str = "UpDecoderBlock2D";

/// The most levels (`block_out_channels` entries) accepted (SD: 4).
pub const MAX_LEVELS: usize = 8;
/// The most channels of any level accepted (SD: 512).
pub const MAX_CHANNELS: usize = 1 << 13;
/// The most image or latent channels accepted (SD: 3 and 4; SD3/Flux latents: 16).
pub const MAX_IO_CHANNELS: usize = 1024;
/// The most resnets per level accepted (`layers_per_block`; SD: 2).
pub const MAX_LAYERS_PER_BLOCK: usize = 64;
/// The most parameters (f32 elements) a VAE may have, by
/// [`AutoencoderKlConfig::parameter_bound`]: 2³¹ (8 GiB), twenty times SD's 84 M. Fields
/// can each be under their cap while their product asks for terabytes; this refuses those
/// before any module is built.
pub const MAX_PARAMETERS: u128 = 1 << 31;

/// Hyper-parameters of an [`AutoencoderKl`], with the field names of diffusers'
/// `vae/config.json` so that `serde_json::from_str` reads a model folder's file directly.
///
/// ```
/// let config = sd_vae::AutoencoderKlConfig::sd15();
/// assert_eq!(config.block_out_channels, [128, 256, 512, 512]);
/// assert_eq!(config.downscale_factor(), 8);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoencoderKlConfig {
    /// Channels of the images the encoder takes (3: RGB).
    pub in_channels: usize,
    /// Channels of the images the decoder makes (3: RGB).
    pub out_channels: usize,
    /// One `"DownEncoderBlock2D"` per encoder level.
    pub down_block_types: Vec<String>,
    /// One `"UpDecoderBlock2D"` per decoder level.
    pub up_block_types: Vec<String>,
    /// Channels of each level, from the image side; the latent side uses the last.
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder level (the decoder has one more per level, as in diffusers).
    pub layers_per_block: usize,
    /// Activation; only `"silu"` (alias `"swish"`) is built, as in every SD VAE.
    pub act_fn: String,
    /// Channels of the latent (4 for SD 1.x/2.x).
    pub latent_channels: usize,
    /// Groups of every GroupNorm (32 in SD; the tiny fixtures use 4).
    pub norm_num_groups: usize,
    /// Image size the model was trained at (informative only).
    pub sample_size: usize,
    /// Multiplies latents before the UNet sees them (0.18215 for SD 1.x/2.x): see
    /// [`AutoencoderKl::scale_latents`].
    pub scaling_factor: f64,
    /// Subtracted from latents before scaling (SD3/Flux VAEs; `null` for SD 1.x/2.x).
    pub shift_factor: Option<f64>,
    /// Per-channel latent mean (SDXL-era VAEs; informative only, diffusers' pipelines use it).
    pub latents_mean: Option<Vec<f64>>,
    /// Per-channel latent standard deviation (informative only, as `latents_mean`).
    pub latents_std: Option<Vec<f64>>,
    /// Whether diffusers runs this VAE in float32 even in a float16 pipeline (informative:
    /// this crate computes in float32).
    pub force_upcast: bool,
    /// Whether `quant_conv` (a 1x1 conv on the encoder's moments) exists.
    pub use_quant_conv: bool,
    /// Whether `post_quant_conv` (a 1x1 conv on latents before the decoder) exists.
    pub use_post_quant_conv: bool,
    /// Whether the mid blocks have their self-attention layer.
    pub mid_block_add_attention: bool,
}

impl Default for AutoencoderKlConfig {
    /// diffusers' `AutoencoderKL()` with no arguments (a one-level toy, not SD: see
    /// [`sd15`](Self::sd15)).
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec![DOWN_BLOCK.to_owned()],
            up_block_types: vec![UP_BLOCK.to_owned()],
            block_out_channels: vec![64],
            layers_per_block: 1,
            act_fn: "silu".to_owned(),
            latent_channels: 4,
            norm_num_groups: 32,
            sample_size: 32,
            scaling_factor: 0.18215,
            shift_factor: None,
            latents_mean: None,
            latents_std: None,
            force_upcast: true,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
        }
    }
}

impl AutoencoderKlConfig {
    /// The VAE of Stable Diffusion 1.x, as in
    /// <https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/vae/config.json>
    /// (the same network as LDM's `first_stage_config` in `v1-inference.yaml`: `ch: 128`,
    /// `ch_mult: [1, 2, 4, 4]`, `num_res_blocks: 2`, `z_channels: 4`).
    pub fn sd15() -> Self {
        Self {
            down_block_types: vec![DOWN_BLOCK.to_owned(); 4],
            up_block_types: vec![UP_BLOCK.to_owned(); 4],
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            latent_channels: 4,
            norm_num_groups: 32,
            sample_size: 512,
            scaling_factor: 0.18215,
            ..Self::default()
        }
    }

    /// The VAE of Stable Diffusion 2.x: the SD 1.x network and scaling factor, trained at
    /// 768 px, as in
    /// <https://huggingface.co/stabilityai/stable-diffusion-2-1/blob/main/vae/config.json>.
    pub fn sd21() -> Self {
        Self {
            sample_size: 768,
            ..Self::sd15()
        }
    }

    /// Reads a diffusers `vae/config.json`.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| VaeError::ConfigIo {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| VaeError::ConfigParse {
            path: Some(path.to_owned()),
            source,
        })
    }

    /// Parses the text of a diffusers `vae/config.json`.
    pub fn from_json_str(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|source| VaeError::ConfigParse { path: None, source })
    }

    /// How many times smaller the latent is than the image, per side: 2 per level but the
    /// last (8 for SD).
    pub fn downscale_factor(&self) -> usize {
        let shift = self.block_out_channels.len().saturating_sub(1);
        u32::try_from(shift)
            .ok()
            .and_then(|shift| 1usize.checked_shl(shift))
            .unwrap_or(usize::MAX)
    }

    /// An upper bound on the parameter count (SD's VAE: 84 M, bound 123 M), from the sizes
    /// alone, in a type no config can overflow: every resnet counted at the widest
    /// neighbouring width, both convolutions and a shortcut.
    pub fn parameter_bound(&self) -> u128 {
        let channels: Vec<u128> = self.block_out_channels.iter().map(|&c| c as u128).collect();
        let resnet = |c: u128| 19 * c * c;
        let layers = self.layers_per_block as u128;
        let mut total = 0u128;
        for i in 0..channels.len() {
            let widest = channels[i.saturating_sub(1)..(i + 2).min(channels.len())]
                .iter()
                .copied()
                .max()
                .unwrap_or(0);
            // Encoder: `layers` resnets and a downsampler; decoder: one more resnet and an
            // upsampler.
            total += (2 * layers + 1) * resnet(widest) + 2 * 9 * widest * widest;
        }
        let last = channels.last().copied().unwrap_or(0);
        let first = channels.first().copied().unwrap_or(0);
        let latent = self.latent_channels as u128;
        let io = (self.in_channels + self.out_channels) as u128;
        // Two mid blocks of two resnets and an attention each; conv_in/out and the
        // latent-side convolutions.
        total += 2 * (2 * resnet(last) + 4 * last * last);
        total += 9 * first * io + 9 * last * 3 * latent + 8 * latent * latent;
        total
    }

    /// Checks that this crate can build the network the configuration describes.
    pub fn validate(&self) -> Result<()> {
        let unsupported =
            |key, value: String, reason| Err(VaeError::UnsupportedConfig { key, value, reason });
        if self.block_out_channels.is_empty() {
            return unsupported(
                "block_out_channels",
                "[]".into(),
                "needs at least one level",
            );
        }
        let levels = self.block_out_channels.len();
        if self.down_block_types.len() != levels {
            return unsupported(
                "down_block_types",
                format!("{:?}", self.down_block_types),
                "needs one entry per block_out_channels entry",
            );
        }
        if self.up_block_types.len() != levels {
            return unsupported(
                "up_block_types",
                format!("{:?}", self.up_block_types),
                "needs one entry per block_out_channels entry",
            );
        }
        if let Some(other) = self.down_block_types.iter().find(|t| *t != DOWN_BLOCK) {
            return unsupported("down_block_types", other.clone(), "only DownEncoderBlock2D");
        }
        if let Some(other) = self.up_block_types.iter().find(|t| *t != UP_BLOCK) {
            return unsupported("up_block_types", other.clone(), "only UpDecoderBlock2D");
        }
        if !matches!(self.act_fn.as_str(), "silu" | "swish") {
            return unsupported("act_fn", self.act_fn.clone(), "only silu");
        }
        if levels > MAX_LEVELS {
            return unsupported(
                "block_out_channels",
                format!("{levels} levels"),
                "at most 8 levels (MAX_LEVELS) are accepted",
            );
        }
        if self.layers_per_block == 0 {
            return unsupported("layers_per_block", "0".into(), "needs at least one resnet");
        }
        if self.layers_per_block > MAX_LAYERS_PER_BLOCK {
            return unsupported(
                "layers_per_block",
                self.layers_per_block.to_string(),
                "at most 64 (MAX_LAYERS_PER_BLOCK) are accepted",
            );
        }
        for (key, value) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("latent_channels", self.latent_channels),
            ("norm_num_groups", self.norm_num_groups),
        ] {
            if value == 0 {
                return unsupported(key, "0".into(), "must be positive");
            }
            if value > MAX_IO_CHANNELS {
                return unsupported(
                    key,
                    value.to_string(),
                    "at most 1024 (MAX_IO_CHANNELS) are accepted",
                );
            }
        }
        if let Some(&c) = self.block_out_channels.iter().find(|&&c| c > MAX_CHANNELS) {
            return unsupported(
                "block_out_channels",
                c.to_string(),
                "at most 8192 channels (MAX_CHANNELS) per level are accepted",
            );
        }
        if let Some(&c) = self
            .block_out_channels
            .iter()
            .find(|&&c| c == 0 || c % self.norm_num_groups != 0)
        {
            return unsupported(
                "block_out_channels",
                c.to_string(),
                "every level's channels must be a positive multiple of norm_num_groups",
            );
        }
        if !(self.scaling_factor.is_finite() && self.scaling_factor != 0.0) {
            return unsupported(
                "scaling_factor",
                self.scaling_factor.to_string(),
                "must be finite and non-zero",
            );
        }
        if let Some(shift) = self.shift_factor
            && !shift.is_finite()
        {
            return unsupported("shift_factor", shift.to_string(), "must be finite");
        }
        let parameters = self.parameter_bound();
        if parameters > MAX_PARAMETERS {
            return unsupported(
                "block_out_channels",
                format!(
                    "{:?} with {} resnets per level ({parameters} parameters)",
                    self.block_out_channels, self.layers_per_block
                ),
                "at most 2^31 parameters (MAX_PARAMETERS) are accepted",
            );
        }
        Ok(())
    }

    /// Builds the network with freshly initialised (lazy, never materialised if weights are
    /// loaded over them) parameters, after [`validate`](Self::validate).
    pub fn init(&self, device: &Device) -> Result<AutoencoderKl> {
        self.validate()?;
        Ok(AutoencoderKl::new(self, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vae/config.json` of stable-diffusion-v1-5 (diffusers 0.6 era: fewer keys than today,
    /// the rest take diffusers' defaults).
    const SD15_CONFIG: &str = r#"{
      "_class_name": "AutoencoderKL",
      "_diffusers_version": "0.6.0",
      "act_fn": "silu",
      "block_out_channels": [128, 256, 512, 512],
      "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
      "in_channels": 3,
      "latent_channels": 4,
      "layers_per_block": 2,
      "norm_num_groups": 32,
      "out_channels": 3,
      "sample_size": 512,
      "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
    }"#;

    #[test]
    fn the_sd15_preset_is_the_upstream_config() {
        let parsed = AutoencoderKlConfig::from_json_str(SD15_CONFIG).expect("valid json");
        assert_eq!(parsed, AutoencoderKlConfig::sd15());
        assert_eq!(parsed.scaling_factor, 0.18215);
        assert!(parsed.validate().is_ok());
    }

    fn key_of(config: &AutoencoderKlConfig) -> &'static str {
        match config.validate() {
            Err(VaeError::UnsupportedConfig { key, .. }) => key,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_parameter_bound_is_close_above_the_real_count() {
        // diffusers: sum(p.numel() for p in AutoencoderKL(**sd15).parameters()).
        const SD15_PARAMETERS: u128 = 83_653_863;
        let bound = AutoencoderKlConfig::sd15().parameter_bound();
        assert!(
            (SD15_PARAMETERS..SD15_PARAMETERS * 2).contains(&bound),
            "{bound}"
        );
    }

    #[test]
    fn zero_and_absurd_sizes_are_refused_before_any_allocation() {
        let sd15 = AutoencoderKlConfig::sd15;
        let levels = |n: usize| AutoencoderKlConfig {
            down_block_types: vec![DOWN_BLOCK.to_owned(); n],
            up_block_types: vec![UP_BLOCK.to_owned(); n],
            block_out_channels: vec![32; n],
            ..sd15()
        };
        let cases = [
            (
                AutoencoderKlConfig {
                    layers_per_block: 100_000_000,
                    ..sd15()
                },
                "layers_per_block",
            ),
            (
                AutoencoderKlConfig {
                    latent_channels: usize::MAX,
                    ..sd15()
                },
                "latent_channels",
            ),
            (
                AutoencoderKlConfig {
                    in_channels: 1 << 40,
                    ..sd15()
                },
                "in_channels",
            ),
            (
                AutoencoderKlConfig {
                    norm_num_groups: 0,
                    ..sd15()
                },
                "norm_num_groups",
            ),
            (
                AutoencoderKlConfig {
                    block_out_channels: vec![128, 256, 1 << 40, 512],
                    ..sd15()
                },
                "block_out_channels",
            ),
            // 65 levels: `1 << 64` in downscale_factor.
            (levels(65), "block_out_channels"),
            (
                AutoencoderKlConfig {
                    shift_factor: Some(f64::INFINITY),
                    ..sd15()
                },
                "shift_factor",
            ),
            // Every field under its cap; together 8192-wide levels with 64 resnets each.
            (
                AutoencoderKlConfig {
                    block_out_channels: vec![MAX_CHANNELS; 4],
                    layers_per_block: MAX_LAYERS_PER_BLOCK,
                    ..sd15()
                },
                "block_out_channels",
            ),
        ];
        for (config, key) in cases {
            assert_eq!(key_of(&config), key, "{config:?}");
        }
        assert_eq!(levels(65).downscale_factor(), usize::MAX);
    }

    #[test]
    fn unknown_keys_are_ignored_and_bad_values_are_errors() {
        let config = AutoencoderKlConfig::from_json_str(
            r#"{"block_out_channels": [8], "norm_num_groups": 4, "future_key": 1}"#,
        )
        .expect("unknown keys are fine");
        assert!(config.validate().is_ok());
        let bad = AutoencoderKlConfig {
            norm_num_groups: 3,
            ..AutoencoderKlConfig::sd15()
        };
        assert!(matches!(
            bad.validate(),
            Err(VaeError::UnsupportedConfig {
                key: "block_out_channels",
                ..
            })
        ));
        let bad = AutoencoderKlConfig {
            act_fn: "gelu".into(),
            ..AutoencoderKlConfig::sd15()
        };
        assert!(matches!(
            bad.validate(),
            Err(VaeError::UnsupportedConfig { key: "act_fn", .. })
        ));
        assert!(matches!(
            AutoencoderKlConfig::from_json_str("{\"layers_per_block\": \"two\"}"),
            Err(VaeError::ConfigParse { .. })
        ));
    }
}
