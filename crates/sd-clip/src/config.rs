//! The text encoder's configuration: transformers' `CLIPTextConfig`, key for key.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::{
    error::{ClipError, Result},
    text_model::ClipTextModel,
};

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

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// A model with this shape and freshly initialised weights (load real ones with
    /// [`crate::loader`]).
    pub fn init(&self, device: &Device) -> ClipTextModel {
        ClipTextModel::new(self, device)
    }
}
