//! The text encoder's configuration: transformers' `CLIPTextConfig`, key for key.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::{
    error::{ClipError, Result},
    text_model::ClipTextModel,
};

/// The largest `vocab_size` accepted: 20× CLIP's 49 408 (multilingual tokenizers reach
/// 250 000), far below a table that would not fit in memory.
pub const MAX_VOCAB_SIZE: usize = 1 << 20;
/// The largest `hidden_size` accepted (real CLIP text encoders: 512 to 1280).
pub const MAX_HIDDEN_SIZE: usize = 1 << 14;
/// The largest `intermediate_size` accepted (real ones: 4 × the width, at most 5120).
pub const MAX_INTERMEDIATE_SIZE: usize = 1 << 16;
/// The most `num_hidden_layers` accepted (real ones: 12 to 32).
pub const MAX_HIDDEN_LAYERS: usize = 256;
/// The largest `max_position_embeddings` accepted (SD: 77; long-context CLIPs: 248).
pub const MAX_POSITION_EMBEDDINGS: usize = 1 << 14;
/// The most parameters (f32 elements) a text encoder may have: 2³² (16 GiB), six times
/// OpenCLIP ViT-bigG's 695 M. Each field can be under its own cap while their product asks
/// for terabytes; this refuses those before anything is allocated.
pub const MAX_PARAMETERS: u128 = 1 << 32;

/// The MLP activation (`hidden_act` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum HiddenAct {
    /// `x * sigmoid(1.702 x)`: OpenAI CLIP (SD 1.x).
    #[default]
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// The exact (erf) GELU: OpenCLIP (SD 2.x).
    #[serde(rename = "gelu")]
    Gelu,
}

/// A CLIP text encoder's shape, deserialised from a transformers `CLIPTextConfig`
/// `config.json` (a diffusers `text_encoder/config.json`): the field names are its keys, and
/// keys this crate does not need are ignored. Absent keys take transformers' defaults.
///
/// ```
/// use sd_clip::ClipTextConfig;
///
/// let config: ClipTextConfig = serde_json::from_str(
///     r#"{"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 3,
///         "num_attention_heads": 4, "vocab_size": 8192, "hidden_act": "gelu"}"#,
/// )?;
/// assert_eq!(config.max_position_embeddings, 77);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    /// Rows of the token-embedding table.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Output width of the CLIP projection (not part of the text model; kept for reference).
    pub projection_dim: usize,
    /// Transformer layers the model runs.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Rows of the position-embedding table: the longest token sequence (77).
    pub max_position_embeddings: usize,
    /// MLP activation.
    pub hidden_act: HiddenAct,
    /// Epsilon of every layer norm.
    pub layer_norm_eps: f64,
    /// The padding id the config declares. The text model does not use it; which id prompts
    /// are padded with is the tokenizer's business ([`crate::ClipTokenizer::pad_id`]).
    pub pad_token_id: u32,
    /// The start-of-text id the config declares (not used by the text model).
    pub bos_token_id: u32,
    /// The end-of-text id: the pooled output is taken at its first occurrence. The legacy
    /// value 2 (published SD configs) means "at the largest id", as transformers reads it.
    pub eos_token_id: u32,
}

impl Default for ClipTextConfig {
    /// transformers' `CLIPTextConfig()` defaults.
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: HiddenAct::QuickGelu,
            layer_norm_eps: 1e-5,
            pad_token_id: 1,
            bos_token_id: 49406,
            eos_token_id: 49407,
        }
    }
}

impl ClipTextConfig {
    /// SD 1.x: OpenAI CLIP ViT-L/14's text model (12 layers, width 768, 12 heads,
    /// quick_gelu), as in `runwayml/stable-diffusion-v1-5/text_encoder/config.json`
    /// (including its legacy `bos_token_id` 0 / `eos_token_id` 2 / `pad_token_id` 1).
    /// SD 1.x conditions on the last layer and pads with `<|endoftext|>`.
    pub fn sd15() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            max_position_embeddings: 77,
            hidden_act: HiddenAct::QuickGelu,
            layer_norm_eps: 1e-5,
            pad_token_id: 1,
            bos_token_id: 0,
            eos_token_id: 2,
        }
    }

    /// SD 2.x: OpenCLIP ViT-H/14's text model (width 1024, 16 heads, gelu), as in
    /// `stabilityai/stable-diffusion-2-1/text_encoder/config.json`. SD 2.x conditions on the
    /// penultimate of OpenCLIP's 24 layers, so diffusers keeps 23 and uses the last of those
    /// (then the final layer norm); a single-file checkpoint still holds the 24th, which the
    /// loader reports and ignores. SD 2.x pads with `!` (id 0) after the first EOS
    /// ([`crate::tokenizer::OPEN_CLIP_PAD_TOKEN`]), whatever `pad_token_id` (1, upstream) says.
    pub fn sd21() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 1024,
            intermediate_size: 4096,
            projection_dim: 512,
            num_hidden_layers: 23,
            num_attention_heads: 16,
            max_position_embeddings: 77,
            hidden_act: HiddenAct::Gelu,
            layer_norm_eps: 1e-5,
            pad_token_id: 1,
            bos_token_id: 0,
            eos_token_id: 2,
        }
    }

    /// Reads a `config.json` (a diffusers `text_encoder/config.json`).
    ///
    /// # Errors
    /// When the file cannot be read or is not a valid config.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ClipError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ClipError::Json {
            path: path.to_owned(),
            source,
        })
    }

    /// Width of one attention head (0 for a config [`validate`](Self::validate) refuses).
    pub fn head_dim(&self) -> usize {
        self.hidden_size
            .checked_div(self.num_attention_heads)
            .unwrap_or(0)
    }

    /// Checks that a text encoder of this shape can be built and run: every size positive
    /// and under its cap ([`MAX_HIDDEN_SIZE`] and the other `MAX_*` constants of this
    /// module), the heads dividing the width, a finite layer-norm epsilon, and at most
    /// [`MAX_PARAMETERS`] parameters in all. Nothing is allocated.
    ///
    /// # Errors
    /// [`ClipError::Config`] naming the first field at fault and its value.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, message: String| Err(ClipError::Config { field, message });
        for (field, value, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB_SIZE),
            ("hidden_size", self.hidden_size, MAX_HIDDEN_SIZE),
            (
                "intermediate_size",
                self.intermediate_size,
                MAX_INTERMEDIATE_SIZE,
            ),
            (
                "num_hidden_layers",
                self.num_hidden_layers,
                MAX_HIDDEN_LAYERS,
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_POSITION_EMBEDDINGS,
            ),
        ] {
            if value == 0 || value > max {
                return bad(field, format!("{value} is not in 1..={max}"));
            }
        }
        let heads = self.num_attention_heads;
        if heads == 0 || !self.hidden_size.is_multiple_of(heads) {
            return bad(
                "num_attention_heads",
                format!(
                    "{heads} heads do not divide hidden_size {}",
                    self.hidden_size
                ),
            );
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return bad(
                "layer_norm_eps",
                format!(
                    "{} is not a finite non-negative number",
                    self.layer_norm_eps
                ),
            );
        }
        let parameters = self.parameter_count();
        if parameters > MAX_PARAMETERS {
            return bad(
                "hidden_size",
                format!(
                    "the config describes {parameters} parameters (hidden_size {}, \
                     intermediate_size {}, {} layers, vocab_size {}, \
                     max_position_embeddings {}); at most {MAX_PARAMETERS} are accepted",
                    self.hidden_size,
                    self.intermediate_size,
                    self.num_hidden_layers,
                    self.vocab_size,
                    self.max_position_embeddings
                ),
            );
        }
        Ok(())
    }

    /// The text model's parameter count, exact for transformers' `CLIPTextModel` (without
    /// the projection), in a type no config can overflow.
    pub fn parameter_count(&self) -> u128 {
        let [vocab, hidden, inner, layers, positions] = [
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.num_hidden_layers,
            self.max_position_embeddings,
        ]
        .map(|v| v as u128);
        // q, k, v, out projections with biases; two layer norms; fc1 and fc2 with biases.
        let layer =
            4 * (hidden * hidden + hidden) + 2 * 2 * hidden + 2 * hidden * inner + inner + hidden;
        (vocab + positions) * hidden + layers * layer + 2 * hidden
    }

    /// A model with this shape and freshly initialised weights (load real ones with
    /// [`crate::loader`], which validates the config first).
    ///
    /// # Panics
    /// On a config [`validate`](Self::validate) refuses (use [`try_init`](Self::try_init)
    /// for a config from a file).
    pub fn init(&self, device: &Device) -> ClipTextModel {
        ClipTextModel::new(self, device)
    }

    /// [`init`](Self::init) after [`validate`](Self::validate).
    ///
    /// # Errors
    /// [`ClipError::Config`] as [`validate`](Self::validate).
    pub fn try_init(&self, device: &Device) -> Result<ClipTextModel> {
        self.validate()?;
        Ok(ClipTextModel::new(self, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: &ClipTextConfig) -> &'static str {
        match config.validate() {
            Err(ClipError::Config { field, .. }) => field,
            other => panic!("{config:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn the_presets_and_transformers_defaults_are_valid() {
        for config in [
            ClipTextConfig::default(),
            ClipTextConfig::sd15(),
            ClipTextConfig::sd21(),
        ] {
            config.validate().expect("valid");
        }
        // transformers' count for openai/clip-vit-large-patch14's text model: 123 060 480.
        assert_eq!(ClipTextConfig::sd15().parameter_count(), 123_060_480);
    }

    #[test]
    fn head_counts_that_do_not_divide_the_width_are_refused() {
        let tiny = ClipTextConfig {
            hidden_size: 32,
            intermediate_size: 128,
            ..ClipTextConfig::sd15()
        };
        for heads in [0, 5, 64] {
            let config = ClipTextConfig {
                num_attention_heads: heads,
                ..tiny.clone()
            };
            assert_eq!(field_of(&config), "num_attention_heads", "{heads}");
            assert_eq!(
                config.head_dim(),
                32 / heads.max(1) * usize::from(heads != 0)
            );
        }
    }

    #[test]
    fn zero_and_absurd_sizes_name_their_field() {
        let sd15 = ClipTextConfig::sd15();
        let cases = [
            (
                ClipTextConfig {
                    vocab_size: 0,
                    ..sd15.clone()
                },
                "vocab_size",
            ),
            (
                ClipTextConfig {
                    vocab_size: usize::MAX,
                    ..sd15.clone()
                },
                "vocab_size",
            ),
            (
                ClipTextConfig {
                    hidden_size: 0,
                    ..sd15.clone()
                },
                "hidden_size",
            ),
            (
                ClipTextConfig {
                    hidden_size: 1 << 40,
                    ..sd15.clone()
                },
                "hidden_size",
            ),
            (
                ClipTextConfig {
                    intermediate_size: 0,
                    ..sd15.clone()
                },
                "intermediate_size",
            ),
            (
                ClipTextConfig {
                    num_hidden_layers: 100_000_000,
                    ..sd15.clone()
                },
                "num_hidden_layers",
            ),
            (
                ClipTextConfig {
                    max_position_embeddings: 0,
                    ..sd15.clone()
                },
                "max_position_embeddings",
            ),
            (
                ClipTextConfig {
                    layer_norm_eps: f64::NAN,
                    ..sd15.clone()
                },
                "layer_norm_eps",
            ),
            // Every field under its cap, the product 2^20 · 2^14 embedding rows over it.
            (
                ClipTextConfig {
                    vocab_size: MAX_VOCAB_SIZE,
                    hidden_size: MAX_HIDDEN_SIZE,
                    num_attention_heads: 16,
                    ..sd15.clone()
                },
                "hidden_size",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(field_of(&config), field);
        }
        let err = ClipTextConfig {
            vocab_size: 0,
            ..sd15
        }
        .validate()
        .expect_err("refused");
        assert!(err.to_string().contains("`vocab_size`: 0"), "{err}");
    }

    #[test]
    fn try_init_refuses_what_init_would_panic_on() {
        let config = ClipTextConfig {
            num_attention_heads: 0,
            ..ClipTextConfig::sd15()
        };
        assert!(matches!(
            config.try_init(&Device::default()),
            Err(ClipError::Config {
                field: "num_attention_heads",
                ..
            })
        ));
    }
}
