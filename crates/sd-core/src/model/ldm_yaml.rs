//! A1111's `<checkpoint>.yaml`: the CompVis / Stability-AI LDM inference config beside a
//! single-file checkpoint, read into a [`ModelArchitecture`]. The mapping, field by field, is
//! documented on [`ModelArchitecture::from_ldm_yaml`]; it follows what LDM builds from these
//! yamls (`ldm/models/diffusion/ddpm.py`, `ldm/modules/diffusionmodules/openaimodel.py`,
//! `ldm/models/autoencoder.py`) and how diffusers translates them
//! (`create_unet_diffusers_config_from_ldm`, `create_vae_diffusers_config_from_ldm` in
//! `diffusers/loaders/single_file_utils.py`).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use sd_clip::ClipTextConfig;
use sd_schedulers::{BetaSchedule, NoiseScheduleConfig, Prediction};
use sd_unet::config::{DownBlockType, UpBlockType};
use sd_unet::{PerBlock, UNetConfig};
use sd_vae::AutoencoderKlConfig;
use serde_yaml_ng::Value;

use super::architecture::{ModelArchitecture, TensorShapes};
use crate::checkpoint::{ModelFamily, ldm_family};
use crate::error::{CoreError, Result};

/// A config yaml is a few kilobytes; anything this large is not one.
const MAX_YAML_BYTES: u64 = 1 << 20;

/// `model.target` of text-to-image models.
const LATENT_DIFFUSION: &str = "ldm.models.diffusion.ddpm.LatentDiffusion";
/// `model.target` of inpainting models (UNet input: latent, mask, masked-image latent).
const LATENT_INPAINT_DIFFUSION: &str = "ldm.models.diffusion.ddpm.LatentInpaintDiffusion";
/// `unet_config.target`.
const UNET_MODEL: &str = "ldm.modules.diffusionmodules.openaimodel.UNetModel";
/// `first_stage_config.target`.
const AUTOENCODER_KL: &str = "ldm.models.autoencoder.AutoencoderKL";
/// Class of `cond_stage_config.target` for SD 1.x (OpenAI CLIP ViT-L/14).
const FROZEN_CLIP: &str = "FrozenCLIPEmbedder";
/// Class of `cond_stage_config.target` for SD 2.x (OpenCLIP ViT-H/14).
const FROZEN_OPEN_CLIP: &str = "FrozenOpenCLIPEmbedder";

/// LDM's `DDPM.__init__` defaults, used when the yaml leaves a schedule field out.
const LDM_LINEAR_START: f64 = 1e-4;
const LDM_LINEAR_END: f64 = 2e-2;
const LDM_TIMESTEPS: usize = 1000;
/// LDM's `Normalize()` / `normalization()`: `GroupNorm(32, channels)` everywhere.
const LDM_NORM_GROUPS: usize = 32;
/// LDM's default `channel_mult` (UNet and `ddconfig.ch_mult`).
const LDM_CHANNEL_MULT: [usize; 4] = [1, 2, 4, 8];
/// CLIP's attention head width (ViT-L/14 768 / 12, ViT-H/14 1024 / 16).
const CLIP_HEAD_WIDTH: usize = 64;

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
    ///   conditions on the penultimate one), over [`ClipTextConfig::sd15`] /
    ///   [`ClipTextConfig::sd21`]. No shape tells the head count: a width other than the
    ///   preset's gets CLIP's 64-wide heads (`width / 64`), or a single head when the width is
    ///   not a multiple of 64. A text encoder with other heads cannot be described by a yaml:
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
        let architecture = parse(&text, shapes).map_err(|reason| CoreError::InvalidConfig {
            path: path.to_owned(),
            reason,
        })?;
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
        let architecture = parse(yaml, shapes).map_err(|reason| CoreError::InvalidConfig {
            path: PathBuf::from(STR_SOURCE),
            reason,
        })?;
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
    let invalid = |reason: String| CoreError::InvalidConfig {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_YAML_BYTES {
        return Err(invalid(format!(
            "larger than {MAX_YAML_BYTES} bytes: not an LDM config"
        )));
    }
    String::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8 text: {e}")))
}

/// Errors while reading the document: the reason, naming the field.
type Field<T> = std::result::Result<T, String>;

fn parse(text: &str, shapes: &TensorShapes) -> Field<ModelArchitecture> {
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
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
            return Err(target.unsupported(
                "only LDM's LatentDiffusion and LatentInpaintDiffusion (SD 1.x/2.x) are built \
                 (not SDXL's DiffusionEngine, depth-to-image, instruct-pix2pix, ...)",
            ));
        }
    };
    let params = model.require("params")?;
    let prediction = match params.get("parameterization") {
        None => Prediction::Epsilon,
        Some(node) => match node.str()? {
            "eps" => Prediction::Epsilon,
            "v" => Prediction::V,
            _ => return Err(node.unsupported("only \"eps\" and \"v\" predictions")),
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
        ));
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

/// The family from `cond_stage_config.target`, and the text encoder from the preset and the
/// checkpoint's shapes.
fn text_encoder(config: &Node<'_>, shapes: &TensorShapes) -> Field<(ModelFamily, ClipTextConfig)> {
    if config.value.is_string() {
        return Err(config.unsupported("a model without a text encoder"));
    }
    let target = config.require("target")?;
    let class = target.str()?.rsplit('.').next().unwrap_or_default();
    let (family, preset, default_layer) = match class {
        FROZEN_CLIP => (ModelFamily::Sd1, ClipTextConfig::sd15(), "last"),
        FROZEN_OPEN_CLIP => (ModelFamily::Sd2, ClipTextConfig::sd21(), "penultimate"),
        _ => {
            return Err(target.unsupported(
                "only FrozenCLIPEmbedder (SD 1.x) and FrozenOpenCLIPEmbedder (SD 2.x) text \
                 encoders",
            ));
        }
    };
    if let Some(layer) = config.get("params").and_then(|p| p.get("layer"))
        && layer.str()? != default_layer
    {
        return Err(layer.unsupported(&format!(
            "this family conditions on the `{default_layer}` layer here (CLIP skip is a \
             generation setting)"
        )));
    }
    if let Some(found) = ldm_family(shapes.keys().map(String::as_str))
        && found != family
    {
        return Err(format!(
            "`{}` is a SD {} text encoder but the checkpoint holds SD {} text encoder weights",
            target.path,
            super::architecture::family_label(family),
            super::architecture::family_label(found),
        ));
    }
    Ok((family, text_encoder_from_shapes(family, preset, shapes)))
}

/// The preset with the width, depth, MLP width, vocabulary and positions of the checkpoint's
/// text encoder (each kept from the preset when its tensor is absent).
fn text_encoder_from_shapes(
    family: ModelFamily,
    mut config: ClipTextConfig,
    shapes: &TensorShapes,
) -> ClipTextConfig {
    // (prefix, token embedding, positions, first MLP input projection, layer list, layers the
    // model keeps below the file's count)
    let (prefix, token, position, fc1, layers, dropped) = match family {
        ModelFamily::Sd1 => {
            let nested = "cond_stage_model.transformer.text_model.";
            let prefix = if shapes.keys().any(|k| k.starts_with(nested)) {
                nested
            } else {
                // transformers < 4 saved CLIPTextModel without the `text_model.` level.
                "cond_stage_model.transformer."
            };
            (
                prefix,
                "embeddings.token_embedding.weight",
                "embeddings.position_embedding.weight",
                "encoder.layers.0.mlp.fc1.weight",
                "encoder.layers.",
                0,
            )
        }
        // SD 2.x conditions on the penultimate layer: the model keeps one layer fewer.
        ModelFamily::Sd2 => (
            "cond_stage_model.model.",
            "token_embedding.weight",
            "positional_embedding",
            "transformer.resblocks.0.mlp.c_fc.weight",
            "transformer.resblocks.",
            1,
        ),
    };
    let shape = |name: &str| {
        shapes
            .get(&format!("{prefix}{name}"))
            .filter(|s| s.len() == 2)
            .map(|s| (s[0], s[1]))
    };
    if let Some((vocab, width)) = shape(token) {
        config.vocab_size = vocab;
        if width != config.hidden_size {
            config.hidden_size = width;
            config.num_attention_heads = if width >= CLIP_HEAD_WIDTH && width % CLIP_HEAD_WIDTH == 0
            {
                width / CLIP_HEAD_WIDTH
            } else {
                1
            };
        }
    }
    if let Some((positions, _)) = shape(position) {
        config.max_position_embeddings = positions;
    }
    if let Some((intermediate, _)) = shape(fc1) {
        config.intermediate_size = intermediate;
    }
    let layer_prefix = format!("{prefix}{layers}");
    let indices: BTreeSet<usize> = shapes
        .range(layer_prefix.clone()..)
        .map(|(name, _)| name)
        .take_while(|name| name.starts_with(&layer_prefix))
        .filter_map(|name| name[layer_prefix.len()..].split('.').next()?.parse().ok())
        .collect();
    if indices.len() > dropped {
        config.num_hidden_layers = indices.len() - dropped;
    }
    config
}

/// `first_stage_config` → diffusers' `AutoencoderKL` config.
fn vae(
    config: &Node<'_>,
    scale_factor: Option<f64>,
    family: ModelFamily,
) -> Field<AutoencoderKlConfig> {
    let target = config.require("target")?;
    if target.str()? != AUTOENCODER_KL {
        return Err(target.unsupported(&format!("only {AUTOENCODER_KL}")));
    }
    let params = config.require("params")?;
    let dd = params.require("ddconfig")?;
    let z_channels = dd.require("z_channels")?.positive()?;
    let embed_dim = params.require("embed_dim")?;
    if embed_dim.positive()? != z_channels {
        return Err(embed_dim.unsupported(&format!(
            "diffusers' AutoencoderKL has one latent width: embed_dim must equal \
             z_channels ({z_channels})"
        )));
    }
    dd.refuse_unless("double_z", |v| v.bool(), true, "a single-moment encoder")?;
    dd.refuse_unless(
        "resamp_with_conv",
        |v| v.bool(),
        true,
        "resampling without convolution",
    )?;
    dd.refuse_unless("use_linear_attn", |v| v.bool(), false, "linear attention")?;
    dd.refuse_unless("tanh_out", |v| v.bool(), false, "a tanh output")?;
    dd.refuse_unless(
        "give_pre_end",
        |v| v.bool(),
        false,
        "a decoder without output layers",
    )?;
    if let Some(node) = dd.get("attn_resolutions")
        && !node.usize_list()?.is_empty()
    {
        return Err(node.unsupported("attention inside the encoder/decoder levels"));
    }
    let mid_block_add_attention = match dd.get("attn_type") {
        None => true,
        Some(node) => match node.str()? {
            "vanilla" | "vanilla-xformers" => true,
            "none" => false,
            _ => return Err(node.unsupported("only vanilla attention (or none)")),
        },
    };
    let ch = dd.require("ch")?.positive()?;
    let ch_mult = dd
        .get("ch_mult")
        .map_or(Ok(LDM_CHANNEL_MULT.to_vec()), |n| n.usize_list())?;
    let levels = ch_mult.len();
    let preset = match family {
        ModelFamily::Sd1 => AutoencoderKlConfig::sd15(),
        ModelFamily::Sd2 => AutoencoderKlConfig::sd21(),
    };
    let config = AutoencoderKlConfig {
        in_channels: dd.require("in_channels")?.positive()?,
        out_channels: dd.require("out_ch")?.positive()?,
        down_block_types: vec![preset.down_block_types[0].clone(); levels],
        up_block_types: vec![preset.up_block_types[0].clone(); levels],
        // Saturating: an absurd width is refused by `validate`, not wrapped or panicked on.
        block_out_channels: ch_mult.iter().map(|m| ch.saturating_mul(*m)).collect(),
        layers_per_block: dd.require("num_res_blocks")?.positive()?,
        latent_channels: z_channels,
        norm_num_groups: dd
            .get("norm_num_groups")
            .map_or(Ok(LDM_NORM_GROUPS), |n| n.positive())?,
        scaling_factor: scale_factor.unwrap_or(preset.scaling_factor),
        mid_block_add_attention,
        ..preset
    };
    config.validate().map_err(|e| {
        format!(
            "`{}` describes an autoencoder this crate cannot build: {e}",
            dd.path
        )
    })?;
    Ok(config)
}

/// `unet_config` → diffusers' `UNet2DConditionModel` config, on top of the family's preset
/// (for what LDM does not configure: sample size, f32 attention of SD 2.x).
fn unet(config: &Node<'_>, family: ModelFamily) -> Field<UNetConfig> {
    let target = config.require("target")?;
    if target.str()? != UNET_MODEL {
        return Err(target.unsupported(&format!("only {UNET_MODEL}")));
    }
    let p = config.require("params")?;
    for (key, what) in [
        ("num_classes", "class-conditional UNets"),
        ("adm_in_channels", "extra (ADM) conditioning"),
        ("n_embed", "codebook outputs"),
        ("num_attention_blocks", "per-level attention block counts"),
    ] {
        if let Some(node) = p.get(key) {
            return Err(node.unsupported(what));
        }
    }
    p.refuse_unless(
        "use_spatial_transformer",
        |v| v.bool(),
        true,
        "a UNet without cross-attention",
    )?;
    if p.get("use_spatial_transformer").is_none() {
        return Err(format!(
            "`{}.use_spatial_transformer` is missing: LDM's default (false) builds a UNet \
             without cross-attention, which is not supported",
            p.path
        ));
    }
    p.refuse_unless(
        "use_scale_shift_norm",
        |v| v.bool(),
        false,
        "scale-shift time conditioning",
    )?;
    p.refuse_unless(
        "resblock_updown",
        |v| v.bool(),
        false,
        "resnet up/downsampling",
    )?;
    p.refuse_unless(
        "conv_resample",
        |v| v.bool(),
        true,
        "resampling without convolution",
    )?;
    p.refuse_unless("dims", |v| v.positive(), 2, "a UNet that is not 2-d")?;
    if let Some(node) = p.get("disable_self_attentions")
        && node.bool_list()?.contains(&true)
    {
        return Err(node.unsupported("attention layers without self-attention"));
    }
    let model_channels = p.require("model_channels")?.positive()?;
    let channel_mult = p
        .get("channel_mult")
        .map_or(Ok(LDM_CHANNEL_MULT.to_vec()), |n| n.usize_list())?;
    let block_out_channels: Vec<usize> = channel_mult
        .iter()
        .map(|m| model_channels.saturating_mul(*m))
        .collect();
    let attention_resolutions = p.require("attention_resolutions")?.usize_list()?;
    // As diffusers: level i works at downsampling factor 2^i and has attention when that
    // factor is listed; the up path mirrors it.
    let factors: Vec<usize> = (0..block_out_channels.len())
        .map(|i| {
            u32::try_from(i)
                .ok()
                .and_then(|i| 1usize.checked_shl(i))
                .unwrap_or(usize::MAX)
        })
        .collect();
    let has_attention = |factor: &usize| attention_resolutions.contains(factor);
    let down_block_types = factors
        .iter()
        .map(|f| {
            if has_attention(f) {
                DownBlockType::CrossAttnDownBlock2D
            } else {
                DownBlockType::DownBlock2D
            }
        })
        .collect();
    let up_block_types = factors
        .iter()
        .rev()
        .map(|f| {
            if has_attention(f) {
                UpBlockType::CrossAttnUpBlock2D
            } else {
                UpBlockType::UpBlock2D
            }
        })
        .collect();
    let heads = heads(&p, &block_out_channels)?;
    let transformer_layers_per_block = match p.get("transformer_depth") {
        None => PerBlock::All(1),
        Some(node) if node.value.is_sequence() => PerBlock::Each(node.usize_list()?),
        Some(node) => PerBlock::All(node.positive()?),
    };
    let context = p.require("context_dim")?;
    let cross_attention_dim = if context.value.is_sequence() {
        let dims = context.usize_list()?;
        match dims.split_first() {
            Some((first, rest)) if rest.iter().all(|d| d == first) => *first,
            _ => return Err(context.unsupported("different context widths per level")),
        }
    } else {
        context.positive()?
    };
    let layers = p.require("num_res_blocks")?;
    if layers.value.is_sequence() {
        return Err(layers.unsupported("a resnet count per level"));
    }
    let preset = match family {
        ModelFamily::Sd1 => UNetConfig::sd15(),
        ModelFamily::Sd2 => UNetConfig::sd21(),
    };
    let config = UNetConfig {
        in_channels: p.require("in_channels")?.positive()?,
        out_channels: p.require("out_channels")?.positive()?,
        down_block_types,
        up_block_types,
        block_out_channels,
        layers_per_block: layers.positive()?,
        cross_attention_dim,
        transformer_layers_per_block,
        heads,
        num_attention_heads: None,
        use_linear_projection: p
            .get("use_linear_in_transformer")
            .map_or(Ok(false), |n| n.bool())?,
        norm_num_groups: p
            .get("norm_num_groups")
            .map_or(Ok(LDM_NORM_GROUPS), |n| n.positive())?,
        ..preset
    };
    config
        .validate()
        .map_err(|e| format!("`{}` describes a UNet this crate cannot build: {e}", p.path))?;
    Ok(config)
}

/// Heads per level, as LDM's `UNetModel` computes them: `channels / num_head_channels` when
/// `num_head_channels` is set (not -1), else `num_heads` everywhere.
fn heads(p: &Node<'_>, block_out_channels: &[usize]) -> Field<PerBlock<usize>> {
    let head_channels = p.get("num_head_channels");
    if let Some(node) = &head_channels
        && node.int()? != -1
    {
        let width = node.positive()?;
        return block_out_channels
            .iter()
            .map(|c| {
                (c % width == 0).then_some(c / width).ok_or_else(|| {
                    node.unsupported(&format!("heads that do not divide {c} channels"))
                })
            })
            .collect::<Field<Vec<_>>>()
            .map(PerBlock::Each);
    }
    match p.get("num_heads") {
        Some(node) if node.int()? != -1 => Ok(PerBlock::All(node.positive()?)),
        _ => Err(format!(
            "`{}` needs `num_heads` or `num_head_channels` (neither is -1)",
            p.path
        )),
    }
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

/// A YAML value and the dotted path that leads to it, for errors naming the field.
struct Node<'a> {
    path: String,
    value: &'a Value,
}

impl<'a> Node<'a> {
    /// The child `key`, absent when missing or `null`.
    fn get(&self, key: &str) -> Option<Node<'a>> {
        self.value
            .get(key)
            .filter(|v| !v.is_null())
            .map(|value| Node {
                path: self.child(key),
                value,
            })
    }

    fn require(&self, key: &str) -> Field<Node<'a>> {
        self.get(key)
            .ok_or_else(|| format!("`{}` is missing", self.child(key)))
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn wrong(&self, expected: &str) -> String {
        format!(
            "`{}` must be {expected}, not {}",
            self.path,
            describe(self.value)
        )
    }

    fn unsupported(&self, what: &str) -> String {
        format!(
            "`{}: {}` is not supported: {what}",
            self.path,
            describe(self.value)
        )
    }

    /// Refuses a present value other than `supported` (absent means LDM's default, which is
    /// the supported one).
    fn refuse_unless<T: PartialEq>(
        &self,
        key: &str,
        read: impl Fn(&Node<'a>) -> Field<T>,
        supported: T,
        what: &str,
    ) -> Field<()> {
        match self.get(key) {
            Some(node) if read(&node)? != supported => Err(node.unsupported(what)),
            _ => Ok(()),
        }
    }

    fn str(&self) -> Field<&'a str> {
        self.value.as_str().ok_or_else(|| self.wrong("a string"))
    }

    fn bool(&self) -> Field<bool> {
        self.value
            .as_bool()
            .ok_or_else(|| self.wrong("true or false"))
    }

    fn int(&self) -> Field<i64> {
        self.value.as_i64().ok_or_else(|| self.wrong("an integer"))
    }

    fn f64(&self) -> Field<f64> {
        self.value
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| self.wrong("a number"))
    }

    fn positive(&self) -> Field<usize> {
        self.value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| self.wrong("a positive integer"))
    }

    fn usize_list(&self) -> Field<Vec<usize>> {
        self.list(|node| node.positive(), "a list of positive integers")
    }

    fn bool_list(&self) -> Field<Vec<bool>> {
        if self.value.is_bool() {
            return Ok(vec![self.bool()?]);
        }
        self.list(|node| node.bool(), "a list of true/false")
    }

    fn list<T>(&self, read: impl Fn(&Node<'a>) -> Field<T>, expected: &str) -> Field<Vec<T>> {
        let items = self
            .value
            .as_sequence()
            .ok_or_else(|| self.wrong(expected))?;
        items
            .iter()
            .enumerate()
            .map(|(i, value)| {
                read(&Node {
                    path: format!("{}[{i}]", self.path),
                    value,
                })
            })
            .collect()
    }
}

/// A short rendering of a value for messages.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 60;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            format!("\"{}…\"", s.chars().take(MAX_CHARS).collect::<String>())
        }
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_yaml_before_the_folder_and_the_explicit_config_before_both() {
        let dir = tempfile::tempdir().expect("temp dir");
        let checkpoint = dir.path().join("model.v2.safetensors");
        assert_eq!(single_file_config(&checkpoint, None), None);
        let folder = dir.path().join("model.v2");
        std::fs::create_dir_all(folder.join("unet")).expect("mkdir");
        std::fs::write(folder.join("unet").join("config.json"), "{}").expect("write");
        assert_eq!(
            single_file_config(&checkpoint, None),
            Some(SingleFileConfig::Folder(folder.clone()))
        );
        // A1111: os.path.splitext(checkpoint)[0] + ".yaml"
        let yaml = dir.path().join("model.v2.yaml");
        std::fs::write(&yaml, "model: {}").expect("write");
        assert_eq!(
            single_file_config(&checkpoint, None),
            Some(SingleFileConfig::Yaml(yaml.clone()))
        );
        assert_eq!(
            single_file_config(&checkpoint, Some(&folder)),
            Some(SingleFileConfig::Folder(folder))
        );
        let other = dir.path().join("other.YML");
        assert_eq!(
            single_file_config(&checkpoint, Some(&other)),
            Some(SingleFileConfig::Yaml(other))
        );
    }

    #[test]
    fn hostile_documents_are_refused_quickly() {
        // Deep nesting (serde_yaml_ng stops at depth 128) and an alias bomb (it caps
        // repetitions) are parse errors, not stack overflows or hangs.
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let bomb = (0..10).fold(
            String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"),
            |doc, i| {
                let list = vec![format!("*a{i}"); 10].join(", ");
                format!("{doc}a{}: &a{} [{list}]\n", i + 1, i + 1)
            },
        );
        for text in [deep, bomb] {
            let err = parse(&text, &TensorShapes::new()).expect_err("hostile");
            assert!(
                err.contains("not valid YAML") || err.contains("missing"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_wrong_type_names_the_field_path() {
        let yaml = "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    \
                    timesteps: many\n";
        let err = parse(yaml, &TensorShapes::new()).expect_err("wrong type");
        assert!(err.contains("`model.params.timesteps`"), "{err}");
    }
}
