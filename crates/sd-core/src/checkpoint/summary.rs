//! What a checkpoint holds, read from tensor names and shapes alone (no weights loaded).
//!
//! A1111 users have single files with the original LDM key names
//! (`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.*`); diffusers users
//! have folders with one file per component. [`CheckpointSummary::read`] takes either and
//! reports the components, their sizes and dtypes, the model family (SD 1.x's OpenAI CLIP vs
//! SD 2.x's OpenCLIP text encoder) and whether the UNet is an inpainting one (9 input
//! channels).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::safetensors_header::{DType, SafetensorsHeader, TensorInfo};
use crate::error::{CoreError, Result};

/// How the weights are laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckpointFormat {
    /// One `.safetensors` file with LDM key names, as A1111 uses.
    SingleFile,
    /// A diffusers folder (`unet/`, `vae/`, `text_encoder/`, ...).
    DiffusersFolder,
}

/// The Stable Diffusion generation, as told by the text encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelFamily {
    /// SD 1.x: OpenAI CLIP ViT-L/14 text encoder.
    Sd1,
    /// SD 2.x: OpenCLIP ViT-H/14 text encoder.
    Sd2,
}

/// The networks of a Stable Diffusion checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// The denoising UNet.
    Unet,
    /// The autoencoder.
    Vae,
    /// The CLIP text encoder.
    TextEncoder,
    /// Anything else (noise-schedule buffers, EMA bookkeeping, ...).
    Other,
}

/// Size and precision of one component.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ComponentStats {
    /// Number of tensors.
    pub tensors: usize,
    /// Number of elements over all its tensors.
    pub parameters: u64,
    /// Element types present, with how many tensors have each.
    pub dtypes: BTreeMap<DType, usize>,
}

/// What a checkpoint holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckpointSummary {
    /// The file or folder.
    pub path: PathBuf,
    /// Single file or diffusers folder.
    pub format: CheckpointFormat,
    /// SD 1.x or 2.x.
    pub family: ModelFamily,
    /// UNet input channels: 4, or 9 for inpainting models.
    pub unet_in_channels: usize,
    /// Width of the text embeddings the UNet attends to (768 for SD 1.x, 1024 for SD 2.x).
    pub context_dim: usize,
    /// Per-component sizes.
    pub components: BTreeMap<Component, ComponentStats>,
}

/// Tensor name → info, with names in the single-file (LDM) convention or prefixed by the
/// diffusers component folder (`unet/conv_in.weight`).
type Tensors = BTreeMap<String, TensorInfo>;

impl CheckpointSummary {
    /// Reads the headers of a single `.safetensors` file or of a diffusers folder.
    ///
    /// # Errors
    /// [`CoreError::Io`] or [`CoreError::InvalidSafetensors`] for unreadable files;
    /// [`CoreError::UnrecognisedCheckpoint`] when the keys are not those of a Stable
    /// Diffusion 1.x/2.x model.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let unrecognised = |reason: &str| CoreError::UnrecognisedCheckpoint {
            path: path.to_owned(),
            reason: reason.to_owned(),
            source: None,
        };
        let (format, names, tensors, family) = if path.is_dir() {
            let tensors = read_diffusers_folder(path)?;
            let family = diffusers_family(path)?;
            (
                CheckpointFormat::DiffusersFolder,
                &DIFFUSERS_NAMES,
                tensors,
                family,
            )
        } else {
            let tensors = SafetensorsHeader::read(path)?.tensors;
            // SD 1.x files keep transformers' CLIPTextModel under `transformer.`; SD 2.x
            // files keep OpenCLIP's own module tree under `model.`.
            let family = ldm_family(tensors.keys().map(String::as_str))
                .ok_or_else(|| unrecognised("no CLIP text encoder weights found"))?;
            (CheckpointFormat::SingleFile, &LDM_NAMES, tensors, family)
        };
        let conv_in = tensors
            .get(names.unet_conv_in)
            .filter(|t| t.shape.len() == 4)
            .ok_or_else(|| unrecognised(&format!("no 4-d UNet `{}`", names.unet_conv_in)))?;
        let context_dim = tensors
            .iter()
            .find(|(k, t)| {
                k.starts_with(names.unet) && k.ends_with("attn2.to_k.weight") && t.shape.len() == 2
            })
            .map(|(_, t)| t.shape[1])
            .ok_or_else(|| unrecognised("no UNet cross-attention (`attn2.to_k`) weights"))?;

        let mut components: BTreeMap<Component, ComponentStats> = BTreeMap::new();
        for (name, info) in &tensors {
            let stats = components.entry(names.component(name)).or_default();
            stats.tensors += 1;
            stats.parameters += info.numel();
            *stats.dtypes.entry(info.dtype).or_default() += 1;
        }
        Ok(Self {
            path: path.to_owned(),
            format,
            family,
            unet_in_channels: conv_in.shape[1],
            context_dim,
            components,
        })
    }
}

/// Key prefixes that identify components in one naming convention.
struct KeyNames {
    unet: &'static str,
    vae: &'static str,
    text_encoder: &'static str,
    unet_conv_in: &'static str,
}

impl KeyNames {
    fn component(&self, key: &str) -> Component {
        if key.starts_with(self.unet) {
            Component::Unet
        } else if key.starts_with(self.vae) {
            Component::Vae
        } else if key.starts_with(self.text_encoder) {
            Component::TextEncoder
        } else {
            Component::Other
        }
    }
}

const LDM_NAMES: KeyNames = KeyNames {
    unet: "model.diffusion_model.",
    vae: "first_stage_model.",
    text_encoder: "cond_stage_model.",
    unet_conv_in: "model.diffusion_model.input_blocks.0.0.weight",
};

const OPENAI_CLIP_PREFIX: &str = "cond_stage_model.transformer.";
const OPEN_CLIP_PREFIX: &str = "cond_stage_model.model.";

/// The family of a single file from its LDM key names: SD 1.x files keep transformers'
/// CLIPTextModel under `cond_stage_model.transformer.`, SD 2.x files OpenCLIP's own tree
/// under `cond_stage_model.model.`; `None` without either.
pub(crate) fn ldm_family<'a>(mut keys: impl Iterator<Item = &'a str>) -> Option<ModelFamily> {
    let mut sd1 = false;
    for key in keys.by_ref() {
        if key.starts_with(OPEN_CLIP_PREFIX) {
            return Some(ModelFamily::Sd2);
        }
        sd1 |= key.starts_with(OPENAI_CLIP_PREFIX);
    }
    sd1.then_some(ModelFamily::Sd1)
}

/// Tensor names of a diffusers folder, prefixed with their component folder.
const DIFFUSERS_NAMES: KeyNames = KeyNames {
    unet: "unet/",
    vae: "vae/",
    text_encoder: "text_encoder/",
    unet_conv_in: "unet/conv_in.weight",
};

const DIFFUSERS_COMPONENTS: [&str; 3] = ["unet", "vae", "text_encoder"];

fn read_diffusers_folder(folder: &Path) -> Result<Tensors> {
    let mut tensors = Tensors::new();
    for component in DIFFUSERS_COMPONENTS {
        let dir = folder.join(component);
        let entries = std::fs::read_dir(&dir).map_err(|e| CoreError::io(&dir, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| CoreError::io(&dir, e))?.path();
            if path.extension().is_some_and(|x| x == "safetensors") {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(CoreError::UnrecognisedCheckpoint {
                path: dir,
                reason: "no .safetensors weights in this component folder".into(),
                source: None,
            });
        }
        for file in files {
            let header = SafetensorsHeader::read(&file)?;
            for (name, info) in header.tensors {
                tensors.insert(format!("{component}/{name}"), info);
            }
        }
    }
    Ok(tensors)
}

/// diffusers stores SD 1.x and 2.x text encoders alike as transformers' CLIPTextModel (OpenCLIP
/// weights are converted); the activation tells them apart: quick-GELU is OpenAI's CLIP, GELU
/// is OpenCLIP's.
fn diffusers_family(folder: &Path) -> Result<ModelFamily> {
    let path = folder.join("text_encoder").join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| CoreError::UnrecognisedCheckpoint {
            path: path.clone(),
            reason: "invalid JSON".into(),
            source: Some(Box::new(e.into())),
        })?;
    Ok(match config.get("hidden_act").and_then(|v| v.as_str()) {
        Some("gelu") => ModelFamily::Sd2,
        _ => ModelFamily::Sd1,
    })
}
