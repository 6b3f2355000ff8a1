//! Which networks a checkpoint holds, with what shapes: from a config folder, or recognised
//! from the tensor names and shapes of a standard SD 1.x / 2.x single file.

use std::{collections::BTreeMap, path::Path};

use sd_clip::ClipTextConfig;
use sd_schedulers::{BetaSchedule, NoiseScheduleConfig, Prediction};
use sd_unet::UNetConfig;
use sd_vae::AutoencoderKlConfig;
use serde::Deserialize;

use crate::checkpoint::ModelFamily;
use crate::checkpoint::ldm_family;
use crate::error::{CoreError, ErrorCause, Result};

/// Tensor name → shape, for every tensor of a checkpoint (read from headers, no weights).
pub type TensorShapes = BTreeMap<String, Vec<usize>>;

/// Everything needed to build a model before its weights are read.
#[derive(Debug, Clone)]
pub struct ModelArchitecture {
    /// SD 1.x (OpenAI CLIP, pads with EOS) or SD 2.x (OpenCLIP, pads with `!`).
    pub family: ModelFamily,
    /// What the UNet predicts.
    pub prediction: Prediction,
    /// The text encoder.
    pub text_encoder: ClipTextConfig,
    /// The denoiser.
    pub unet: UNetConfig,
    /// The autoencoder.
    pub vae: AutoencoderKlConfig,
    /// The training noise schedule.
    pub noise_schedule: NoiseScheduleConfig,
}

/// Tokens of one prompt chunk the text encoder must take: A1111's 75 plus BOS and EOS.
const CHUNK_TOKENS: usize = 77;

/// LDM key of the UNet's first convolution: `[model_channels, in_channels, 3, 3]`.
const LDM_CONV_IN: &str = "model.diffusion_model.input_blocks.0.0.weight";
/// LDM key of the first cross-attention's key projection: `[inner, context_dim]`.
const LDM_FIRST_ATTN2_K: &str =
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight";

impl ModelArchitecture {
    /// Recognises a standard SD 1.x or 2.x architecture (base or 9-channel inpainting) from
    /// the LDM tensor names and shapes of a single-file checkpoint, as A1111 does without a
    /// `.yaml` beside the file.
    ///
    /// SD 2.x base models come as ε-prediction (512) and v-prediction (768-v) with identical
    /// shapes; this returns ε, and [`crate::StableDiffusion::load`] runs A1111's test
    /// (`is_using_v_parameterization_for_sd2`) on the loaded UNet to tell them apart.
    ///
    /// # Errors
    /// [`CoreError::UnrecognisedCheckpoint`] naming `path` and what did not fit.
    pub fn recognise(path: &Path, shapes: &TensorShapes) -> Result<Self> {
        let unrecognised = |reason: String| CoreError::UnrecognisedCheckpoint {
            path: path.to_owned(),
            reason,
            source: None,
        };
        let family = ldm_family(shapes.keys().map(String::as_str)).ok_or_else(|| {
            unrecognised(
                "no text encoder weights (`cond_stage_model.*`): not an SD 1.x/2.x single file"
                    .into(),
            )
        })?;
        let conv_in = shapes
            .get(LDM_CONV_IN)
            .filter(|s| s.len() == 4)
            .ok_or_else(|| unrecognised(format!("no 4-d UNet `{LDM_CONV_IN}`")))?;
        let (model_channels, in_channels) = (conv_in[0], conv_in[1]);
        let context = shapes
            .get(LDM_FIRST_ATTN2_K)
            .and_then(|s| s.get(1).copied())
            .ok_or_else(|| {
                unrecognised(format!("no UNet cross-attention `{LDM_FIRST_ATTN2_K}`"))
            })?;
        let mut architecture = match family {
            ModelFamily::Sd1 => Self::sd15(),
            ModelFamily::Sd2 => Self::sd21(),
        };
        let expected_context = architecture.unet.cross_attention_dim;
        if model_channels != 320 || context != expected_context || ![4, 9].contains(&in_channels) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(unrecognised(format!(
                "not a standard SD {} architecture (UNet width {model_channels}, {in_channels} \
                 input channels, context width {context}): put its LDM config beside the \
                 file as `{stem}.yaml` (as A1111) or its diffusers config folder as \
                 `{stem}/`, or pass one explicitly",
                family_label(family),
            )));
        }
        architecture.unet.in_channels = in_channels;
        Ok(architecture)
    }

    /// Stable Diffusion 1.x (1.4, 1.5 and their fine-tunes): CLIP ViT-L/14's text encoder,
    /// the 860M-parameter UNet, the KL-f8 VAE, ε-prediction on the scaled-linear schedule.
    pub fn sd15() -> Self {
        Self {
            family: ModelFamily::Sd1,
            prediction: Prediction::Epsilon,
            text_encoder: ClipTextConfig::sd15(),
            unet: UNetConfig::sd15(),
            vae: AutoencoderKlConfig::sd15(),
            noise_schedule: NoiseScheduleConfig::sd(),
        }
    }

    /// Stable Diffusion 2.x at 512 (ε-prediction): OpenCLIP ViT-H/14's text encoder and the
    /// SD 2 UNet; set [`prediction`](Self::prediction) to `V` for the 768-v models.
    pub fn sd21() -> Self {
        Self {
            family: ModelFamily::Sd2,
            prediction: Prediction::Epsilon,
            text_encoder: ClipTextConfig::sd21(),
            unet: UNetConfig::sd21(),
            vae: AutoencoderKlConfig::sd21(),
            noise_schedule: NoiseScheduleConfig::sd(),
        }
    }

    /// Reads a diffusers-style config folder (`text_encoder/config.json`, `unet/config.json`,
    /// `vae/config.json`, optional `scheduler/scheduler_config.json`): a diffusers model
    /// folder, or the config-only folder placed beside a single-file checkpoint.
    ///
    /// # Errors
    /// [`CoreError::InvalidConfig`] naming the file that is missing or malformed; the
    /// errors of [`validate`](Self::validate), naming the config file, for one that
    /// describes no buildable model.
    pub fn from_config_dir(dir: &Path) -> Result<Self> {
        let invalid = |path: &Path, reason: String| CoreError::InvalidConfig {
            path: path.to_owned(),
            reason,
            source: None,
        };
        let unreadable = |path: &Path, what: &str, source: ErrorCause| CoreError::InvalidConfig {
            path: path.to_owned(),
            reason: what.to_owned(),
            source: Some(Box::new(source)),
        };
        let text_path = dir.join("text_encoder").join("config.json");
        let text_encoder = ClipTextConfig::from_file(&text_path)
            .map_err(|e| unreadable(&text_path, "text encoder", e.into()))?;
        let unet_path = dir.join("unet").join("config.json");
        let unet = UNetConfig::from_json_file(&unet_path)
            .map_err(|e| unreadable(&unet_path, "UNet", e.into()))?;
        let vae_path = dir.join("vae").join("config.json");
        let vae = AutoencoderKlConfig::from_json_file(&vae_path)
            .map_err(|e| unreadable(&vae_path, "VAE", e.into()))?;
        let scheduler_path = dir.join("scheduler").join("scheduler_config.json");
        let scheduler = if scheduler_path.is_file() {
            let text = std::fs::read_to_string(&scheduler_path)
                .map_err(|e| CoreError::io(&scheduler_path, e))?;
            serde_json::from_str::<SchedulerConfigFile>(&text)
                .map_err(|e| unreadable(&scheduler_path, "scheduler", e.into()))?
        } else {
            SchedulerConfigFile::default()
        };
        // diffusers converts both text encoders to transformers' CLIPTextModel; the
        // activation tells OpenAI's CLIP (quick-GELU) from OpenCLIP's (GELU).
        let family = match text_encoder.hidden_act {
            sd_clip::HiddenAct::Gelu => ModelFamily::Sd2,
            _ => ModelFamily::Sd1,
        };
        let prediction = match scheduler.prediction_type.as_deref() {
            None | Some("epsilon") => Prediction::Epsilon,
            Some("v_prediction") => Prediction::V,
            Some(other) => {
                return Err(invalid(
                    &scheduler_path,
                    format!("unsupported prediction_type `{other}`"),
                ));
            }
        };
        let beta_schedule = match scheduler.beta_schedule.as_deref() {
            None | Some("scaled_linear") => BetaSchedule::ScaledLinear,
            Some("linear") => BetaSchedule::Linear,
            Some(other) => {
                return Err(invalid(
                    &scheduler_path,
                    format!("unsupported beta_schedule `{other}`"),
                ));
            }
        };
        let sd = NoiseScheduleConfig::sd();
        let architecture = Self {
            family,
            prediction,
            text_encoder,
            unet,
            vae,
            noise_schedule: NoiseScheduleConfig {
                beta_start: scheduler.beta_start.unwrap_or(sd.beta_start),
                beta_end: scheduler.beta_end.unwrap_or(sd.beta_end),
                beta_schedule,
                num_train_timesteps: scheduler
                    .num_train_timesteps
                    .unwrap_or(sd.num_train_timesteps),
            },
        };
        architecture.validate(&text_path, &unet_path, &vae_path)?;
        Ok(architecture)
    }

    /// Checks, before anything is allocated, that each network's config describes a model
    /// that can be built (every size positive and under the caps of
    /// [`ClipTextConfig::validate`], [`UNetConfig::validate`] and
    /// [`AutoencoderKlConfig::validate`]), and that they fit together as Stable Diffusion:
    /// the UNet attends to the text encoder's width, which takes a 77-token chunk. The paths
    /// name the file each config came from (one yaml may describe all three).
    ///
    /// # Errors
    /// [`CoreError::TextEncoder`] (source [`sd_clip::ClipError::Config`]),
    /// [`CoreError::Unet`] ([`sd_unet::UNetError::Config`]) or [`CoreError::Vae`]
    /// ([`sd_vae::VaeError::UnsupportedConfig`]) naming the config file and the field;
    /// [`CoreError::InvalidConfig`] naming the UNet's or text encoder's config when they do
    /// not fit together.
    pub fn validate(&self, text_encoder: &Path, unet: &Path, vae: &Path) -> Result<()> {
        self.text_encoder
            .validate()
            .map_err(|source| CoreError::TextEncoder {
                path: text_encoder.to_owned(),
                source,
            })?;
        self.unet.validate().map_err(|source| CoreError::Unet {
            path: unet.to_owned(),
            source,
        })?;
        self.vae.validate().map_err(|source| CoreError::Vae {
            path: vae.to_owned(),
            source,
        })?;
        let width = self.text_encoder.hidden_size;
        if self.unet.cross_attention_dim != width {
            return Err(CoreError::InvalidConfig {
                path: unet.to_owned(),
                reason: format!(
                    "cross_attention_dim {} does not match the text encoder's hidden_size \
                     {width} ({})",
                    self.unet.cross_attention_dim,
                    text_encoder.display()
                ),
                source: None,
            });
        }
        if self.text_encoder.max_position_embeddings < CHUNK_TOKENS {
            return Err(CoreError::InvalidConfig {
                path: text_encoder.to_owned(),
                reason: format!(
                    "max_position_embeddings {} is under the {CHUNK_TOKENS} tokens of a \
                     prompt chunk",
                    self.text_encoder.max_position_embeddings
                ),
                source: None,
            });
        }
        Ok(())
    }
}

/// The label A1111 users know a family by.
pub(crate) fn family_label(family: ModelFamily) -> &'static str {
    match family {
        ModelFamily::Sd1 => "1.x",
        ModelFamily::Sd2 => "2.x",
    }
}

/// The fields of diffusers' `scheduler_config.json` that describe the model (the rest describe
/// a sampler, which is chosen per generation here).
#[derive(Debug, Default, Deserialize)]
struct SchedulerConfigFile {
    beta_start: Option<f64>,
    beta_end: Option<f64>,
    beta_schedule: Option<String>,
    num_train_timesteps: Option<usize>,
    prediction_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd15_shapes(in_channels: usize) -> TensorShapes {
        [
            (LDM_CONV_IN.to_owned(), vec![320, in_channels, 3, 3]),
            (LDM_FIRST_ATTN2_K.to_owned(), vec![320, 768]),
            (
                "cond_stage_model.transformer.text_model.final_layer_norm.weight".to_owned(),
                vec![768],
            ),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn recognises_sd15_and_its_inpainting_variant() {
        let base = ModelArchitecture::recognise(Path::new("a.safetensors"), &sd15_shapes(4))
            .expect("sd15");
        assert_eq!(base.family, ModelFamily::Sd1);
        assert_eq!(base.unet.in_channels, 4);
        let inpaint = ModelArchitecture::recognise(Path::new("a.safetensors"), &sd15_shapes(9))
            .expect("inpainting");
        assert_eq!(inpaint.unet.in_channels, 9);
    }

    #[test]
    fn refuses_a_nonstandard_width_and_names_the_file() {
        let mut shapes = sd15_shapes(4);
        shapes.insert(LDM_CONV_IN.to_owned(), vec![16, 4, 3, 3]);
        let err = ModelArchitecture::recognise(Path::new("tiny.safetensors"), &shapes)
            .expect_err("not standard");
        let message = err.to_string();
        assert!(message.contains("tiny.safetensors"), "{message}");
        assert!(message.contains("`tiny/`"), "{message}");
    }
}
