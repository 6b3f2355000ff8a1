//! A1111's `<checkpoint>.yaml`: the CompVis / Stability-AI LDM inference config beside a
//! single-file checkpoint, read into a [`ModelArchitecture`]. The mapping, field by field, is
//! documented on [`ModelArchitecture::from_ldm_yaml`]; it follows what LDM builds from these
//! yamls (`ldm/models/diffusion/ddpm.py`, `ldm/modules/diffusionmodules/openaimodel.py`,
//! `ldm/models/autoencoder.py`) and how diffusers translates them
//! (`create_unet_diffusers_config_from_ldm`, `create_vae_diffusers_config_from_ldm` in
//! `diffusers/loaders/single_file_utils.py`).

mod node;
mod text_encoder;
mod unet;
mod vae;

use std::io::Read;
use std::path::{Path, PathBuf};

use sd_schedulers::{BetaSchedule, NoiseScheduleConfig, Prediction};
use sd_unet::UNetConfig;
use sd_vae::AutoencoderKlConfig;
use serde_yaml_ng::Value;

use self::node::{Field, Node, Parsed, Problem};
use self::text_encoder::text_encoder;
use self::unet::unet;
use self::vae::vae;
use super::architecture::{ModelArchitecture, TensorShapes};
use crate::error::{CoreError, Result};

/// A config yaml is a few kilobytes; anything this large is not one.
const MAX_YAML_BYTES: u64 = 1 << 20;

/// `model.target` of text-to-image models.
const LATENT_DIFFUSION: &str = "ldm.models.diffusion.ddpm.LatentDiffusion";
/// `model.target` of inpainting models (UNet input: latent, mask, masked-image latent).
const LATENT_INPAINT_DIFFUSION: &str = "ldm.models.diffusion.ddpm.LatentInpaintDiffusion";

/// LDM's `DDPM.__init__` defaults, used when the yaml leaves a schedule field out.
const LDM_LINEAR_START: f64 = 1e-4;
const LDM_LINEAR_END: f64 = 2e-2;
const LDM_TIMESTEPS: usize = 1000;
/// LDM's `Normalize()` / `normalization()`: `GroupNorm(32, channels)` everywhere.
const LDM_NORM_GROUPS: usize = 32;
/// LDM's default `channel_mult` (UNet and `ddconfig.ch_mult`).
const LDM_CHANNEL_MULT: [usize; 4] = [1, 2, 4, 8];

/// The path named in errors of [`ModelArchitecture::from_ldm_yaml_str`].
const STR_SOURCE: &str = "<LDM yaml>";

impl ModelArchitecture {
    /// Reads an LDM inference yaml (A1111's `<checkpoint>.yaml` beside a single file:
    /// `v1-inference.yaml`, `v1-inpainting-inference.yaml`, `v2-inference.yaml`,
    /// `v2-inference-v.yaml`, `v2-inpainting-inference.yaml`, or a custom one in the same
    /// schema) into an architecture. `shapes` are the checkpoint's tensor shapes: they give
    /// the text encoder's size, which the yaml does not state; an empty map keeps the
    /// family's preset.
    ///
    /// [`crate::StableDiffusion::load`] calls this for `model.yaml` beside `model.safetensors`
    /// (A1111's `os.path.splitext(checkpoint)[0] + ".yaml"`), or for a yaml given as
    /// [`LoadOptions::config_dir`](crate::LoadOptions::config_dir).
    ///
    /// | yaml | here | note |
    /// |---|---|---|
    /// | `model.target` | inpainting or not | `ldm.models.diffusion.ddpm.LatentDiffusion` or `…LatentInpaintDiffusion` only |
    /// | `model.params.parameterization` | [`prediction`](Self::prediction) | `"eps"` (also when absent) or `"v"` |
    /// | `linear_start`, `linear_end`, `timesteps`, `beta_schedule` | [`noise_schedule`](Self::noise_schedule) | LDM's `"linear"` is diffusers' `scaled_linear`, `"sqrt_linear"` is `linear`; LDM's defaults when absent |
    /// | `scale_factor` | VAE `scaling_factor` | the family's 0.18215 when absent, as diffusers |
    /// | `unet_config.params.model_channels × channel_mult` | `block_out_channels` | |
    /// | `attention_resolutions` | `CrossAttn…Block2D` at each listed downsampling factor | |
    /// | `num_res_blocks` | `layers_per_block` | |
    /// | `num_head_channels`, else `num_heads` | head counts (`attention_head_dim`) | `-1` means unused, as in LDM |
    /// | `transformer_depth` (int or list) | `transformer_layers_per_block` | |
    /// | `context_dim` | `cross_attention_dim` | must match the text encoder's width |
    /// | `use_linear_in_transformer` | `use_linear_projection` | |
    /// | `first_stage_config.params.ddconfig` | [`vae`](Self::vae) | `ch × ch_mult`, `num_res_blocks`, `z_channels` (= `embed_dim`), `in_channels`, `out_ch` |
    /// | `cond_stage_config.target` | [`family`](Self::family), [`text_encoder`](Self::text_encoder) | `FrozenCLIPEmbedder` (SD 1.x) or `FrozenOpenCLIPEmbedder` (SD 2.x) |
    ///
    /// Ignored, as they change nothing at f32 inference: `use_checkpoint`, `use_fp16`,
    /// `legacy`, `image_size`, `dropout`, `monitor`, `lossconfig` and training settings.
    /// Everything else the yaml says and this crate does not build (another `target`, class
    /// conditioning, SDXL's `conditioner_config`, `use_scale_shift_norm`, encoder attention
    /// levels, …) is an error naming the field.
    ///
    /// - **Text encoder.** The yaml names a class, not a size: the width, depth, MLP width,
    ///   vocabulary and positions come from `shapes` (`cond_stage_model.transformer.*` for SD
    ///   1.x; `cond_stage_model.model.*` for SD 2.x, less its last layer since SD 2.x
    ///   conditions on the penultimate one), over
    ///   [`ClipTextConfig::sd15`](sd_clip::ClipTextConfig::sd15) /
    ///   [`ClipTextConfig::sd21`](sd_clip::ClipTextConfig::sd21). No shape tells the head
    ///   count: a width other than the preset's gets CLIP's 64-wide heads (`width / 64`), or a
    ///   single head when the width is not a multiple of 64. A text encoder with other heads cannot be described by a yaml:
    ///   use a config folder.
    /// - **`layer`.** `cond_stage_config.params.layer` is the family's default CLIP layer:
    ///   SD 2.x yamls say `"penultimate"`, which this crate always uses for OpenCLIP (A1111's
    ///   CLIP skip does not apply to it); SD 1.x conditions on the `"last"` layer and CLIP skip
    ///   is a generation setting. Other values are refused.
    /// - **Sample size.** The yamls say `image_size: 64` for SD 2.x's 512 and 768-v models
    ///   alike; as diffusers does, the informative `sample_size` is the family's.
    /// - **Extension.** LDM hard-codes 32 groups in every GroupNorm; a `norm_num_groups` key
    ///   (diffusers' name) in `unet_config.params` or `ddconfig` sets another count, as the
    ///   bundled tiny model needs. LDM itself would refuse such a yaml.
    ///
    /// ```no_run
    /// use sd_core::ModelArchitecture;
    /// use sd_core::model::TensorShapes;
    /// use std::path::Path;
    ///
    /// let arch = ModelArchitecture::from_ldm_yaml(
    ///     Path::new("768-v-ema.yaml"),
    ///     &TensorShapes::new(),
    /// )?;
    /// println!("{:?} predicts {:?}", arch.family, arch.prediction);
    /// # Ok::<(), sd_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`CoreError::Io`] when the file cannot be read; [`CoreError::InvalidConfig`] naming
    /// the file and the field when it is not valid YAML, not an LDM config, or describes
    /// something this crate does not build; the errors of
    /// [`validate`](Self::validate), naming the yaml, for sizes no real model has.
    pub fn from_ldm_yaml(path: &Path, shapes: &TensorShapes) -> Result<Self> {
        let text = read_yaml(path)?;
        let architecture = parse(&text, shapes).map_err(|problem| problem.at(path))?;
        architecture.validate(path, path, path)?;
        Ok(architecture)
    }

    /// [`from_ldm_yaml`](Self::from_ldm_yaml) on the text of a yaml.
    ///
    /// ```
    /// use sd_core::ModelArchitecture;
    /// use sd_core::model::TensorShapes;
    /// use sd_core::sd_unet::UNetConfig;
    ///
    /// // The fields of CompVis' v1-inference.yaml that describe the networks.
    /// let yaml = r#"
    /// model:
    ///   target: ldm.models.diffusion.ddpm.LatentDiffusion
    ///   params:
    ///     linear_start: 0.00085
    ///     linear_end: 0.0120
    ///     timesteps: 1000
    ///     scale_factor: 0.18215
    ///     unet_config:
    ///       target: ldm.modules.diffusionmodules.openaimodel.UNetModel
    ///       params:
    ///         in_channels: 4
    ///         out_channels: 4
    ///         model_channels: 320
    ///         attention_resolutions: [ 4, 2, 1 ]
    ///         num_res_blocks: 2
    ///         channel_mult: [ 1, 2, 4, 4 ]
    ///         num_heads: 8
    ///         use_spatial_transformer: True
    ///         transformer_depth: 1
    ///         context_dim: 768
    ///     first_stage_config:
    ///       target: ldm.models.autoencoder.AutoencoderKL
    ///       params:
    ///         embed_dim: 4
    ///         ddconfig:
    ///           z_channels: 4
    ///           in_channels: 3
    ///           out_ch: 3
    ///           ch: 128
    ///           ch_mult: [ 1, 2, 4, 4 ]
    ///           num_res_blocks: 2
    ///           attn_resolutions: []
    ///     cond_stage_config:
    ///       target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
    /// "#;
    /// let arch = ModelArchitecture::from_ldm_yaml_str(yaml, &TensorShapes::new())?;
    /// assert_eq!(arch.unet, UNetConfig::sd15());
    /// assert_eq!(arch.vae, sd_core::sd_vae::AutoencoderKlConfig::sd15());
    /// # Ok::<(), sd_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_ldm_yaml`](Self::from_ldm_yaml); errors name the path `<LDM yaml>`.
    pub fn from_ldm_yaml_str(yaml: &str, shapes: &TensorShapes) -> Result<Self> {
        let architecture =
            parse(yaml, shapes).map_err(|problem| problem.at(Path::new(STR_SOURCE)))?;
        let source = Path::new(STR_SOURCE);
        architecture.validate(source, source, source)?;
        Ok(architecture)
    }
}

/// What describes a single file's architecture, found as A1111 and diffusers look for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SingleFileConfig {
    /// An LDM inference yaml.
    Yaml(PathBuf),
    /// A diffusers-style config folder.
    Folder(PathBuf),
}

/// The config of the single file `checkpoint`: the `explicit` one (a yaml file or a folder)
/// first; else `<checkpoint without extension>.yaml` beside it (A1111); else a `<stem>/`
/// folder with `unet/config.json` beside it.
pub(crate) fn single_file_config(
    checkpoint: &Path,
    explicit: Option<&Path>,
) -> Option<SingleFileConfig> {
    if let Some(path) = explicit {
        return Some(if is_yaml(path) && !path.is_dir() {
            SingleFileConfig::Yaml(path.to_owned())
        } else {
            SingleFileConfig::Folder(path.to_owned())
        });
    }
    let yaml = checkpoint.with_extension("yaml");
    if yaml.is_file() {
        return Some(SingleFileConfig::Yaml(yaml));
    }
    let folder = checkpoint
        .file_stem()
        .map(|stem| checkpoint.with_file_name(stem))?;
    folder
        .join("unet")
        .join("config.json")
        .is_file()
        .then_some(SingleFileConfig::Folder(folder))
}

/// Whether `path` is named like a YAML file.
fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

fn read_yaml(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_YAML_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CoreError::io(path, e))?;
    if bytes.len() as u64 > MAX_YAML_BYTES {
        return Err(Problem::from(format!(
            "larger than {MAX_YAML_BYTES} bytes: not an LDM config"
        ))
        .at(path));
    }
    String::from_utf8(bytes).map_err(|e| Problem::caused("not UTF-8 text".into(), e).at(path))
}

fn parse(text: &str, shapes: &TensorShapes) -> Parsed<ModelArchitecture> {
    let root: Value =
        serde_yaml_ng::from_str(text).map_err(|e| Problem::caused("not valid YAML".into(), e))?;
    let root = Node {
        path: String::new(),
        value: &root,
    };
    if !root.value.is_mapping() {
        return Err("not an LDM config: the document is not a mapping".into());
    }
    let model = root.require("model")?;
    let target = model.require("target")?;
    let inpainting = match target.str()? {
        LATENT_DIFFUSION => false,
        LATENT_INPAINT_DIFFUSION => true,
        _ => {
            return Err(target
                .unsupported(
                    "only LDM's LatentDiffusion and LatentInpaintDiffusion (SD 1.x/2.x) are \
                     built (not SDXL's DiffusionEngine, depth-to-image, instruct-pix2pix, ...)",
                )
                .into());
        }
    };
    let params = model.require("params")?;
    let prediction = match params.get("parameterization") {
        None => Prediction::Epsilon,
        Some(node) => match node.str()? {
            "eps" => Prediction::Epsilon,
            "v" => Prediction::V,
            _ => {
                return Err(node
                    .unsupported("only \"eps\" and \"v\" predictions")
                    .into());
            }
        },
    };
    let noise_schedule = noise_schedule(&params)?;
    let (family, text_encoder) = text_encoder(&params.require("cond_stage_config")?, shapes)?;
    let scale_factor = params.get("scale_factor").map(|n| n.f64()).transpose()?;
    let vae = vae(&params.require("first_stage_config")?, scale_factor, family)?;
    let unet_node = params.require("unet_config")?;
    let unet = unet(&unet_node, family)?;
    check_conditioning(&params, &unet_node, inpainting, &unet, &vae)?;
    if unet.cross_attention_dim != text_encoder.hidden_size {
        return Err(format!(
            "`{}.params.context_dim` is {} but the text encoder is {} wide",
            unet_node.path, unet.cross_attention_dim, text_encoder.hidden_size
        )
        .into());
    }
    Ok(ModelArchitecture {
        family,
        prediction,
        text_encoder,
        unet,
        vae,
        noise_schedule,
    })
}

/// The training schedule, with LDM's defaults for absent fields.
fn noise_schedule(params: &Node<'_>) -> Field<NoiseScheduleConfig> {
    if let Some(node) = params.get("given_betas") {
        return Err(node.unsupported("explicit betas"));
    }
    let beta_schedule = match params.get("beta_schedule") {
        None => BetaSchedule::ScaledLinear,
        Some(node) => match node.str()? {
            // LDM's "linear" is linear in √β: diffusers' scaled_linear.
            "linear" => BetaSchedule::ScaledLinear,
            "sqrt_linear" => BetaSchedule::Linear,
            _ => return Err(node.unsupported("only \"linear\" and \"sqrt_linear\" schedules")),
        },
    };
    let float = |key: &str, default: f64| params.get(key).map_or(Ok(default), |n| n.f64());
    let num_train_timesteps = params
        .get("timesteps")
        .map_or(Ok(LDM_TIMESTEPS), |n| n.positive())?;
    Ok(NoiseScheduleConfig {
        beta_start: float("linear_start", LDM_LINEAR_START)?,
        beta_end: float("linear_end", LDM_LINEAR_END)?,
        beta_schedule,
        num_train_timesteps,
    })
}

/// LDM's `conditioning_key` and the UNet's input channels must agree with the target.
fn check_conditioning(
    params: &Node<'_>,
    unet_node: &Node<'_>,
    inpainting: bool,
    unet: &UNetConfig,
    vae: &AutoencoderKlConfig,
) -> Field<()> {
    let (expected_key, expected_channels) = if inpainting {
        // latent, mask, masked-image latent
        (
            "hybrid",
            vae.latent_channels.saturating_mul(2).saturating_add(1),
        )
    } else {
        ("crossattn", vae.latent_channels)
    };
    if let Some(node) = params.get("conditioning_key")
        && node.str()? != expected_key
    {
        return Err(node.unsupported(&format!("this model type conditions with `{expected_key}`")));
    }
    if unet.in_channels != expected_channels || unet.out_channels != vae.latent_channels {
        return Err(format!(
            "`{}.params` has {} input and {} output channels; with {} latent channels and \
             model.target {} they must be {expected_channels} and {}",
            unet_node.path,
            unet.in_channels,
            unet.out_channels,
            vae.latent_channels,
            if inpainting {
                "LatentInpaintDiffusion"
            } else {
                "LatentDiffusion"
            },
            vae.latent_channels,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
