//! The error type of `sd-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `sd-core`, split by who is at fault: the file a user gave,
/// the request a program made, or the build (a backend that was not compiled in).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A `.safetensors` file is truncated, malformed or claims impossible sizes.
    #[error("{path}: not a valid safetensors file: {reason}{}", cause_suffix(.source))]
    InvalidSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (naming the tensor or header entry where there is one).
        reason: String,
        /// The error beneath, when one was converted: the JSON parser's, or the limit
        /// exceeded.
        #[source]
        source: Option<Box<ErrorCause>>,
    },
    /// A checkpoint's keys match no Stable Diffusion layout this crate knows.
    #[error("{path}: {reason}{}", cause_suffix(.source))]
    UnrecognisedCheckpoint {
        /// The file or folder.
        path: PathBuf,
        /// What was expected and not found.
        reason: String,
        /// The error beneath, when one was converted (a `model_index.json` that is not
        /// JSON).
        #[source]
        source: Option<Box<ErrorCause>>,
    },
    /// A config file or folder could not be used.
    #[error("{path}: invalid config: {reason}{}", cause_suffix(.source))]
    InvalidConfig {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it (naming the field where there is one).
        reason: String,
        /// The error beneath, when one was converted: a JSON or YAML parser's, or the
        /// network crate's that refused the configuration.
        #[source]
        source: Option<Box<ErrorCause>>,
    },
    /// The text encoder or its tokenizer could not be loaded.
    #[error("{path}: text encoder: {source}")]
    TextEncoder {
        /// The checkpoint or component file.
        path: PathBuf,
        /// What the loader said.
        #[source]
        source: sd_clip::ClipError,
    },
    /// The UNet could not be loaded.
    #[error("{path}: UNet: {source}")]
    Unet {
        /// The checkpoint or component file.
        path: PathBuf,
        /// What the loader said.
        #[source]
        source: sd_unet::UNetError,
    },
    /// The VAE could not be loaded.
    #[error("{path}: VAE: {source}")]
    Vae {
        /// The checkpoint or VAE file.
        path: PathBuf,
        /// What the loader said.
        #[source]
        source: sd_vae::VaeError,
    },
    /// A network refused its input at run time (shapes that do not fit the model).
    #[error("{network}: {reason}")]
    Network {
        /// Which network.
        network: &'static str,
        /// What it said.
        reason: String,
    },
    /// The UNet refused its input at run time.
    #[error("UNet: {0}")]
    UNetForward(#[source] sd_unet::UNetError),
    /// A tensor could not be read back from its device.
    #[error("reading {what} back: {source}")]
    ReadBack {
        /// What was read (`"the decoded pixels"`, `"the latents"`).
        what: &'static str,
        /// burn's error.
        #[source]
        source: burn::tensor::DataError,
    },
    /// A tensor could not be serialised as safetensors.
    #[error("{path}: writing safetensors: {source}")]
    SafetensorsWrite {
        /// The file being written.
        path: PathBuf,
        /// What the safetensors library said.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A sampler or schedule could not run (unknown name, zero steps, ...).
    #[error(transparent)]
    Sampler(#[from] sd_schedulers::SchedulerError),
    /// A generation request has a value out of range.
    #[error("invalid {name}: {reason}")]
    InvalidRequest {
        /// The parameter (`width`, `steps`, ...).
        name: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A request or file is over one of the configured [`crate::limits::Limits`].
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitExceeded),
    /// A prompt could not be turned into conditioning.
    #[error(transparent)]
    Conditioning(#[from] crate::conditioning::ConditioningError),
    /// Generation parameters (infotext) or a PNG text chunk could not be read or written.
    #[error(transparent)]
    Infotext(#[from] sd_infotext::InfotextError),
    /// A PyTorch `.ckpt` / `.pt` file is corrupt, truncated, or asks to run code.
    #[error(transparent)]
    TorchFile(#[from] sd_torch_file::TorchFileError),
    /// An embedding file could not be read or written.
    #[error(transparent)]
    Embedding(#[from] crate::embeddings::EmbeddingError),
    /// A seed or noise setting is invalid.
    #[error(transparent)]
    Noise(#[from] sd_noise::NoiseError),
    /// A picture file (init image, mask) could not be opened: unreadable, not a picture,
    /// truncated, or over the pixel cap.
    #[error(transparent)]
    Image(#[from] crate::image_file::ImageFileError),
    /// NaN or infinity came out of a stage of generation (A1111's `NansException`: "A tensor
    /// with all NaNs was produced in Unet"). A broken checkpoint (NaN weights), or settings
    /// that overflow f32, cause it; the picture would be black.
    #[error(
        "NaN or infinite values were produced in {stage}: the checkpoint's weights or the \
         settings are broken (the picture would be black)"
    )]
    NonFinite {
        /// Where they arose: `"the prompt's conditioning"`, `"the negative prompt's
        /// conditioning"`, `"the UNet (sampling)"`, `"the VAE (decoding)"`.
        stage: &'static str,
    },
    /// An output file name that cannot be written as asked (a picture not named `.png`, the
    /// latents file the same as a picture).
    #[error("{}: {reason}", path.display())]
    OutputPath {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The device cannot compute in the precision asked for.
    #[error("the device {device} cannot compute in {precision}: use f32")]
    UnsupportedPrecision {
        /// The precision asked for.
        precision: crate::model::Precision,
        /// The device, as burn names it.
        device: String,
    },
    /// A device name that is not one of `cpu`, `wgpu`, `cuda`.
    #[error("unknown device `{0}`: expected cpu, wgpu or cuda")]
    UnknownDevice(String),
    /// The device exists but its backend was not compiled into this build.
    #[error("the {device} backend is not compiled in: rebuild with `--features {feature}`")]
    BackendNotCompiled {
        /// The device asked for.
        device: &'static str,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
}

/// The library error beneath a [`CoreError`] that describes a file's problem in words
/// ([`CoreError::InvalidSafetensors`], [`CoreError::UnrecognisedCheckpoint`],
/// [`CoreError::InvalidConfig`]): the error travels typed, the words say where it arose.
/// Boxed in those variants, so that a `Result` stays small.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorCause {
    /// A JSON document (a config, a safetensors header) did not parse.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A YAML document (an LDM config) did not parse.
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A text file is not UTF-8.
    #[error(transparent)]
    NotUtf8(#[from] std::string::FromUtf8Error),
    /// A value is over one of the configured [`crate::limits::Limits`].
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitExceeded),
    /// The text encoder crate refused its configuration or could not read it.
    #[error(transparent)]
    TextEncoder(#[from] sd_clip::ClipError),
    /// The UNet crate refused its configuration or could not read it.
    #[error(transparent)]
    Unet(#[from] sd_unet::UNetError),
    /// The VAE crate refused its configuration or could not read it.
    #[error(transparent)]
    Vae(#[from] sd_vae::VaeError),
}

/// `": <cause>"`, or nothing: the cause's text after the reason in a message.
pub(crate) fn cause_suffix<E: std::fmt::Display>(source: &Option<Box<E>>) -> String {
    source
        .as_ref()
        .map(|cause| format!(": {cause}"))
        .unwrap_or_default()
}

impl CoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The [`crate::fs`] helpers' error is an I/O error naming its file: [`CoreError::Io`].
impl From<crate::fs::FsError> for CoreError {
    fn from(e: crate::fs::FsError) -> Self {
        Self::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// `Result` with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
