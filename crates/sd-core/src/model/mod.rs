//! A loaded Stable Diffusion model: tokenizer, text encoder, UNet, VAE and noise schedule.
//!
//! [`StableDiffusion::load`] takes what users have: a single-file checkpoint as A1111 keeps
//! them (`.safetensors` or `.ckpt`, LDM key names, fp16/bf16/fp32) or a diffusers folder.
//! Every weight becomes f32 on the chosen device; [`StableDiffusion::with_precision`] makes
//! the networks compute in f16 or bf16.

mod architecture;
mod embeddings;
mod f32_store;
mod ldm_yaml;
mod load;
mod precision;
mod v_prediction;
mod weights;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::Device;
use sd_clip::{ClipTextModel, ClipTokenizer};
use sd_schedulers::NoiseSchedule;
use sd_unet::UNet2DConditionModel;
use sd_vae::AutoencoderKl;

pub use architecture::{ModelArchitecture, TensorShapes};
pub use f32_store::F32WeightStore;
pub use load::LoadOptions;
pub use precision::Precision;

use crate::checkpoint::{ModelFamily, ModelHash};
use crate::error::Result;

/// A Stable Diffusion 1.x or 2.x model, ready to generate.
///
/// ```no_run
/// use sd_core::{DeviceChoice, StableDiffusion};
///
/// let device = DeviceChoice::Cpu.device()?;
/// let model = StableDiffusion::load("v1-5-pruned-emaonly.safetensors", &device)?;
/// println!("{} ({:?})", model.name(), model.architecture().family);
/// # Ok::<(), sd_core::CoreError>(())
/// ```
///
/// Cloning is cheap: the weights are shared, not copied (burn's tensors are reference
/// counted), until one side changes them ([`with_loras`](Self::with_loras) does, for its
/// copy only).
#[derive(Debug, Clone)]
pub struct StableDiffusion {
    /// The CLIP tokenizer (the model's own, or the standard vocabulary for single files).
    pub tokenizer: ClipTokenizer,
    /// The text encoder.
    pub text_encoder: ClipTextModel,
    /// The denoising UNet.
    pub unet: UNet2DConditionModel,
    /// The autoencoder.
    pub vae: AutoencoderKl,
    architecture: ModelArchitecture,
    noise_schedule: NoiseSchedule,
    path: PathBuf,
    device: Device,
    hash: OnceLock<Option<ModelHash>>,
}

impl StableDiffusion {
    /// Loads the model at `path` (see [`LoadOptions`] for a separate VAE or an explicit
    /// config folder).
    ///
    /// # Errors
    /// A [`CoreError`](crate::CoreError) naming the file: unreadable, not a Stable Diffusion
    /// checkpoint, a non-standard architecture without a config, missing or misshapen
    /// weights.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::load_with(path, &LoadOptions::default(), device)
    }

    /// The architecture: family, prediction type and network configs.
    pub fn architecture(&self) -> &ModelArchitecture {
        &self.architecture
    }

    /// SD 1.x or 2.x.
    pub fn family(&self) -> ModelFamily {
        self.architecture.family
    }

    /// The training noise schedule (ᾱ and k-diffusion's σ table).
    pub fn noise_schedule(&self) -> &NoiseSchedule {
        &self.noise_schedule
    }

    /// The file or folder the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The name A1111 shows: the file stem (or the folder name).
    pub fn name(&self) -> String {
        let name = if self.path.is_dir() {
            self.path.file_name()
        } else {
            self.path.file_stem()
        };
        name.map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A1111's hashes of a single-file checkpoint (computed on first call: it reads the whole
    /// file); `None` for diffusers folders, which A1111 does not hash, and when the file cannot
    /// be read (a warning through `tracing` says why).
    pub fn hash(&self) -> Option<&ModelHash> {
        self.hash
            .get_or_init(|| {
                if self.path.is_file() {
                    // The picture is still made; its infotext lacks the hash, and the user
                    // hears why.
                    ModelHash::compute(&self.path)
                        .inspect_err(|e| tracing::warn!("model hash not computed: {e}"))
                        .ok()
                } else {
                    None
                }
            })
            .as_ref()
    }
}
