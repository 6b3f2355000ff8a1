//! [`StableDiffusion::load_with`]: from files on disk to networks on a device.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::Device;
use sd_clip::{ClipTextModel, ClipTokenizer, TextNormalization, tokenizer::OPEN_CLIP_PAD_TOKEN};
use sd_schedulers::Prediction;
use sd_unet::UNet2DConditionModel;
use sd_vae::AutoencoderKl;

use super::architecture::ModelArchitecture;
use super::ldm_yaml::{SingleFileConfig, single_file_config};
use super::weights::{self, WeightsFile};
use super::{StableDiffusion, v_prediction};
use crate::checkpoint::{ModelFamily, ModelHash};
use crate::error::{CoreError, Result};
use crate::limits::Limits;

/// How to load a model beyond its path.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The config of a single-file checkpoint whose architecture is not a standard one:
    /// a diffusers-style config folder (`unet/config.json`, `vae/config.json`,
    /// `text_encoder/config.json`, optional `scheduler/` and `tokenizer/`), as diffusers'
    /// `from_single_file(config=...)`, or an LDM `.yaml`/`.yml` file as A1111 reads
    /// ([`ModelArchitecture::from_ldm_yaml`]). Without it, A1111's `model.yaml` beside
    /// `model.safetensors` is used when present, else a folder named like the file's stem
    /// (`model/`).
    pub config_dir: Option<PathBuf>,
    /// A separate VAE (`.safetensors`, `.pt`, `.ckpt`; LDM or diffusers keys), as A1111's
    /// "SD VAE" setting, replacing the checkpoint's own.
    pub vae: Option<PathBuf>,
}

impl StableDiffusion {
    /// [`load`](Self::load) with options.
    ///
    /// # Errors
    /// As [`load`](Self::load); a separate VAE that does not fit names the VAE file.
    pub fn load_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        Self::load_with_limits(path, options, &Limits::default(), device)
    }

    /// [`load_with`](Self::load_with) under caller-chosen [`Limits`]: a tensor larger than
    /// [`Limits::max_tensor_bytes`] or a pickle nested deeper than
    /// [`Limits::max_pickle_depth`] is refused before any weight is read.
    ///
    /// # Errors
    /// As [`load`](Self::load): [`CoreError::InvalidSafetensors`] or
    /// [`CoreError::TorchFile`] naming the file when a limit is exceeded.
    pub fn load_with_limits(
        path: impl AsRef<Path>,
        options: &LoadOptions,
        limits: &Limits,
        device: &Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(CoreError::io(
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let mut model = if path.is_dir() {
            load_folder(path, options, limits, device)?
        } else {
            load_single_file(path, options, limits, device)?
        };
        if let Some(vae_path) = &options.vae {
            model.vae = load_separate_vae(vae_path, &model.architecture, limits, device)?;
        }
        Ok(model)
    }
}

impl StableDiffusion {
    /// A single-file checkpoint held in memory (an A1111 `.safetensors`, or a `.ckpt` read
    /// as data, never executed): a download, an archive's entry, a model compiled into a
    /// program. `name` stands for its path: it names the model in errors and infotext, and
    /// its extension says which container the bytes are. A non-standard architecture needs
    /// [`LoadOptions::config_dir`]. The bytes are hashed here (A1111's model hashes, a
    /// second or two for a 2 GB checkpoint), as the file would be.
    ///
    /// ```
    /// let bytes = sd_core::bundled::TINY_SD1.weights.to_vec();
    /// let dir = std::env::temp_dir().join("sd-core-doctest-load-bytes");
    /// let config = sd_core::bundled::TINY_SD1.extract_to(&dir)?.with_extension("");
    /// let options = sd_core::LoadOptions { config_dir: Some(config), ..Default::default() };
    /// let device = sd_core::DeviceChoice::Cpu.device()?;
    /// let model = sd_core::StableDiffusion::load_bytes("tiny.safetensors", bytes, &options, &device)?;
    /// assert_eq!(model.name(), "tiny");
    /// # Ok::<(), sd_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// As [`load`](Self::load), naming `name`.
    pub fn load_bytes(
        name: impl AsRef<Path>,
        bytes: Vec<u8>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let limits = Limits::default();
        let hash = ModelHash::of_bytes(&bytes);
        let file = weights::open_bytes(name.as_ref(), bytes, &limits)?;
        let mut model = load_weights_file(file, options, device)?;
        model.hash = OnceLock::from(Some(hash));
        if let Some(vae_path) = &options.vae {
            model.vae = load_separate_vae(vae_path, &model.architecture, &limits, device)?;
        }
        Ok(model)
    }
}

/// What [`StableDiffusion::path`] is for a model of random weights: no file.
const NO_FILE: &str = "";

impl StableDiffusion {
    /// A model of `architecture` with freshly initialised random weights (burn's default
    /// initialisers), built in memory: the real networks at their real sizes, for benchmarks
    /// and memory checks that should not need a 2 GB file. It draws noise. Its tokenizer is
    /// the standard CLIP vocabulary cut to the text encoder's rows, as for single files; its
    /// [`path`](Self::path) is empty and it has no [`hash`](Self::hash).
    ///
    /// # Errors
    /// [`CoreError::TextEncoder`], [`CoreError::Unet`] or [`CoreError::Vae`] for a config
    /// that [`ModelArchitecture::validate`] refuses, or when the vocabulary cannot be cut to
    /// the text encoder's size.
    pub fn with_random_weights(architecture: ModelArchitecture, device: &Device) -> Result<Self> {
        let path = Path::new(NO_FILE);
        architecture.validate(path, path, path)?;
        let tokenizer = single_file_tokenizer(path, None, &architecture)?;
        let text_encoder = architecture.text_encoder.init(device);
        let unet = architecture
            .unet
            .init(device)
            .map_err(|source| CoreError::Unet {
                path: path.to_owned(),
                source,
            })?;
        let vae = architecture
            .vae
            .init(device)
            .map_err(|source| CoreError::Vae {
                path: path.to_owned(),
                source,
            })?;
        assemble(
            path,
            architecture,
            tokenizer,
            text_encoder,
            unet,
            vae,
            device,
        )
    }
}

fn load_folder(
    folder: &Path,
    options: &LoadOptions,
    limits: &Limits,
    device: &Device,
) -> Result<StableDiffusion> {
    let config_dir = options.config_dir.as_deref().unwrap_or(folder);
    let architecture = ModelArchitecture::from_config_dir(config_dir)?;
    let tokenizer =
        ClipTokenizer::from_pretrained(config_dir).map_err(|source| CoreError::TextEncoder {
            path: config_dir.join("tokenizer"),
            source,
        })?;
    check_tokenizer_fits(&tokenizer, &architecture, config_dir)?;
    let mut text = weights::open(&weights::component_file(folder, "text_encoder")?, limits)?;
    let text_encoder = load_text_encoder(
        &mut text,
        &architecture,
        sd_clip::loader::WeightFormat::Diffusers,
        device,
    )?;
    drop(text);
    let mut unet_file = weights::open(&weights::component_file(folder, "unet")?, limits)?;
    let unet = load_unet(
        &mut unet_file,
        &architecture,
        sd_unet::WeightFormat::Diffusers,
        device,
    )?;
    drop(unet_file);
    let mut vae_file = weights::open(&weights::component_file(folder, "vae")?, limits)?;
    let vae = load_vae(
        &mut vae_file,
        &architecture,
        sd_vae::WeightFormat::Diffusers,
        device,
    )?;
    assemble(
        folder,
        architecture,
        tokenizer,
        text_encoder,
        unet,
        vae,
        device,
    )
}

fn load_single_file(
    path: &Path,
    options: &LoadOptions,
    limits: &Limits,
    device: &Device,
) -> Result<StableDiffusion> {
    let file = weights::open(path, limits)?;
    load_weights_file(file, options, device)
}

/// A single-file checkpoint's networks from its opened weights.
fn load_weights_file(
    mut file: WeightsFile,
    options: &LoadOptions,
    device: &Device,
) -> Result<StableDiffusion> {
    let path = file.path.clone();
    let path = path.as_path();
    let config = single_file_config(path, options.config_dir.as_deref());
    let mut architecture = match &config {
        Some(SingleFileConfig::Yaml(yaml)) => ModelArchitecture::from_ldm_yaml(yaml, &file.shapes)?,
        Some(SingleFileConfig::Folder(dir)) => ModelArchitecture::from_config_dir(dir)?,
        None => ModelArchitecture::recognise(path, &file.shapes)?,
    };
    let config_dir = match &config {
        Some(SingleFileConfig::Folder(dir)) => Some(dir.as_path()),
        _ => None,
    };
    let tokenizer = single_file_tokenizer(path, config_dir, &architecture)?;
    let text_encoder = load_text_encoder(
        &mut file,
        &architecture,
        sd_clip::loader::WeightFormat::Ldm,
        device,
    )?;
    let unet = load_unet(&mut file, &architecture, sd_unet::WeightFormat::Ldm, device)?;
    let vae = load_vae(&mut file, &architecture, sd_vae::WeightFormat::Ldm, device)?;
    drop(file);
    // SD 2.x 512 (ε) and 768-v (v) have the same shapes: A1111 tells them apart by running
    // the UNet once. A config (yaml or folder) says it outright, so the test runs only
    // without one.
    if config.is_none()
        && architecture.family == ModelFamily::Sd2
        && architecture.unet.in_channels == 4
        && v_prediction::is_v_prediction(&unet, architecture.unet.cross_attention_dim, device)
            .map_err(|source| CoreError::Unet {
                path: path.to_owned(),
                source,
            })?
    {
        architecture.prediction = Prediction::V;
    }
    assemble(
        path,
        architecture,
        tokenizer,
        text_encoder,
        unet,
        vae,
        device,
    )
}

/// A single file carries no tokenizer: the config folder's when it has one, else the
/// standard CLIP vocabulary cut to the text encoder's embedding rows.
fn single_file_tokenizer(
    path: &Path,
    config_dir: Option<&Path>,
    architecture: &ModelArchitecture,
) -> Result<ClipTokenizer> {
    let clip_error = |source| CoreError::TextEncoder {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = config_dir
        && (dir.join("tokenizer").is_dir())
    {
        let tokenizer = ClipTokenizer::from_pretrained(dir).map_err(clip_error)?;
        check_tokenizer_fits(&tokenizer, architecture, dir)?;
        return Ok(tokenizer);
    }
    let tokenizer =
        ClipTokenizer::for_vocab_size(architecture.text_encoder.vocab_size).map_err(clip_error)?;
    match architecture.family {
        ModelFamily::Sd2 => tokenizer
            .with_pad_token(OPEN_CLIP_PAD_TOKEN)
            .map_err(clip_error),
        _ => Ok(tokenizer),
    }
}

/// A tokenizer with more tokens than the text encoder's embedding table would look up rows
/// that do not exist: refused, naming the text encoder's config.
fn check_tokenizer_fits(
    tokenizer: &ClipTokenizer,
    architecture: &ModelArchitecture,
    config_dir: &Path,
) -> Result<()> {
    let rows = architecture.text_encoder.vocab_size;
    if tokenizer.vocab_size() > rows {
        return Err(CoreError::InvalidConfig {
            path: config_dir.join("text_encoder").join("config.json"),
            reason: format!(
                "vocab_size {rows} is smaller than the tokenizer's {} tokens ({})",
                tokenizer.vocab_size(),
                config_dir.join("tokenizer").display()
            ),
            source: None,
        });
    }
    Ok(())
}

fn load_text_encoder(
    file: &mut WeightsFile,
    architecture: &ModelArchitecture,
    format: sd_clip::loader::WeightFormat,
    device: &Device,
) -> Result<ClipTextModel> {
    sd_clip::loader::load(&architecture.text_encoder, &mut file.store, format, device)
        .map(|(model, _report)| model)
        .map_err(|source| CoreError::TextEncoder {
            path: file.path.clone(),
            source,
        })
}

fn load_unet(
    file: &mut WeightsFile,
    architecture: &ModelArchitecture,
    format: sd_unet::WeightFormat,
    device: &Device,
) -> Result<UNet2DConditionModel> {
    UNet2DConditionModel::load(&architecture.unet, &mut file.store, format, device).map_err(
        |source| CoreError::Unet {
            path: file.path.clone(),
            source,
        },
    )
}

fn load_vae(
    file: &mut WeightsFile,
    architecture: &ModelArchitecture,
    format: sd_vae::WeightFormat,
    device: &Device,
) -> Result<AutoencoderKl> {
    AutoencoderKl::load(&architecture.vae, &mut file.store, format, device).map_err(|source| {
        CoreError::Vae {
            path: file.path.clone(),
            source,
        }
    })
}

/// A VAE file on its own: LDM keys (A1111's `.vae.pt` / `.vae.safetensors`, with or without
/// the `first_stage_model.` prefix) or diffusers keys, told apart by the keys.
fn load_separate_vae(
    path: &Path,
    architecture: &ModelArchitecture,
    limits: &Limits,
    device: &Device,
) -> Result<AutoencoderKl> {
    let mut file = weights::open(path, limits)?;
    let format =
        sd_vae::WeightFormat::detect(file.shapes.keys().map(String::as_str)).ok_or_else(|| {
            CoreError::UnrecognisedCheckpoint {
                path: path.to_owned(),
                reason: "no VAE weights (neither LDM nor diffusers key names)".into(),
                source: None,
            }
        })?;
    load_vae(&mut file, architecture, format, device)
}

fn assemble(
    path: &Path,
    architecture: ModelArchitecture,
    tokenizer: ClipTokenizer,
    text_encoder: ClipTextModel,
    unet: UNet2DConditionModel,
    vae: AutoencoderKl,
    device: &Device,
) -> Result<StableDiffusion> {
    let noise_schedule = architecture.noise_schedule.init()?;
    // A1111 tokenizes SD 2.x prompts with OpenCLIP's tokenizer (its own text clean-up and
    // special tokens), SD 1.x prompts with transformers' slow CLIPTokenizer + ftfy.
    let tokenizer = match architecture.family {
        ModelFamily::Sd2 => tokenizer.with_normalization(TextNormalization::OpenClip),
        _ => tokenizer.with_normalization(TextNormalization::A1111Sd1),
    };
    Ok(StableDiffusion {
        tokenizer,
        text_encoder,
        unet,
        vae,
        architecture,
        noise_schedule,
        path: path.to_owned(),
        device: device.clone(),
        hash: OnceLock::new(),
    })
}
