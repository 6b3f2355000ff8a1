//! The error type of the trainer.

use std::path::PathBuf;

/// What can stop training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The engine failed: a checkpoint, an image, a file written.
    #[error(transparent)]
    Core(#[from] sd_core::CoreError),
    /// A prompt could not be encoded.
    #[error(transparent)]
    Conditioning(#[from] sd_core::conditioning::ConditioningError),
    /// The data folder, a caption, a template or a schedule string is unusable.
    #[error(transparent)]
    Dataset(#[from] crate::dataset::DatasetError),
    /// A setting's text does not parse: the learning-rate or clipping schedule, the template
    /// (the message points into the text).
    #[error("{source}")]
    InvalidSetting {
        /// The setting (`learn_rate`, `clip_grad`, `template`).
        name: &'static str,
        /// What is wrong, and where in the text.
        #[source]
        source: crate::dataset::DatasetError,
    },
    /// A hypernetwork file could not be built or written.
    #[error(transparent)]
    Hypernetwork(#[from] sd_core::hypernetwork::HypernetworkError),
    /// The UNet refused its input at run time.
    #[error("network: {0}")]
    Network(#[from] sd_core::sd_unet::UNetError),
    /// A tensor could not be read back from the device.
    #[error("reading {what} back: {source}")]
    ReadBack {
        /// What was read (`"the gradient"`, `"the token embeddings"`).
        what: &'static str,
        /// burn's error.
        #[source]
        source: burn::tensor::DataError,
    },
    /// The training prompts never name the embedding (or no attention of the model has a
    /// module of the hypernetwork's widths), so nothing gets a gradient.
    #[error(
        "nothing to learn: the training prompts never contain the embedding's name, or the \
         hypernetwork has no module for this model's attention widths"
    )]
    NoGradient,
    /// A timestep outside the model's schedule.
    #[error("timestep {timestep} is outside the schedule's 0..{max}")]
    Timestep {
        /// The timestep asked for.
        timestep: usize,
        /// Number of training timesteps.
        max: usize,
    },
    /// A training setting is out of range (`name` is the [`TrainConfig`] field, e.g.
    /// `learn_rate`, `clip_grad`, `width`).
    ///
    /// [`TrainConfig`]: crate::train::TrainConfig
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A number over one of the training caps (see [`crate::train::TrainConfig::validate`]).
    #[error("{setting} = {value} is over the limit of {limit}: {why}")]
    OverLimit {
        /// The setting (a [`TrainConfig`](crate::train::TrainConfig) field, or `vectors`).
        setting: &'static str,
        /// The value asked for.
        value: u64,
        /// The cap.
        limit: u64,
        /// Why the cap is where it is.
        why: &'static str,
    },
    /// An embedding name that cannot name files and folders (`.`, `..`).
    #[error("embedding name {name:?}: {reason}")]
    InvalidEmbeddingName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A training prompt in which the embedding does not occur as its own tokens, so it
    /// would get no gradient. CLIP's pre-tokenizer merges runs of punctuation (`cat.` then
    /// `,` is one token `.,`), so a name ending in punctuation can vanish from a prompt that
    /// spells it.
    #[error(
        "{site}: the training prompt {prompt:?} does not contain the embedding {name:?} as its \
         own tokens (the template line needs [name], the caption the name; a name ending in \
         punctuation merges with the punctuation after it), so nothing would be learned"
    )]
    EmbeddingNotInPrompt {
        /// The embedding's name.
        name: String,
        /// Where the prompt comes from.
        site: Box<PromptSite>,
        /// The prompt (its first 200 characters).
        prompt: String,
    },
    /// A training prompt that cannot be encoded (an emphasis weight out of range, ...).
    #[error("{site}: {source}")]
    UnusablePrompt {
        /// Where the prompt comes from.
        site: Box<PromptSite>,
        /// Why.
        source: sd_core::conditioning::ConditioningError,
    },
    /// A training prompt (template line filled with a caption) over the prompt cap.
    #[error(
        "{site}: the training prompt has {chars} characters, over the limit of {limit} \
         (`Limits::max_prompt_chars`)"
    )]
    PromptTooLong {
        /// Where the prompt comes from.
        site: Box<PromptSite>,
        /// Its length in characters.
        chars: u64,
        /// The cap.
        limit: u64,
    },
    /// A trained embedding or hypernetwork (or its optimizer state) would be replaced.
    #[error(
        "{path} already exists: set `overwrite` (--overwrite) to replace it, or continue \
         training it from that file (--embedding FILE; a hypernetwork: --name NAME)"
    )]
    WouldOverwrite {
        /// The existing file.
        path: PathBuf,
    },
    /// Another training run holds the lock of this run folder or embedding file.
    #[error(
        "{path} is locked: another training run of this embedding is in progress (wait for it \
         to end, or train under another name)"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An output folder (`embeddings_dir`, `log_dir`) that cannot be created or written.
    #[error("{setting} {path} is not a writable folder: {action}: {source}")]
    OutputDir {
        /// The setting (`embeddings_dir` or `log_dir`).
        setting: &'static str,
        /// The folder, the file in its place, or the file that could not be written in it.
        path: PathBuf,
        /// What was tried (`"cannot create it"`, `"cannot lock it"`, ...).
        action: &'static str,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the run (the optimizer state, the settings) could not be serialised;
    /// nothing was written in its place.
    #[error("{path}: cannot write as JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The dataset folder has no usable picture.
    #[error("{path}: no training pictures ({reason})")]
    EmptyDataset {
        /// The folder.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
}

impl TrainError {
    /// The [`TrainConfig`](crate::train::TrainConfig) field this error is about, when it is
    /// about one: a command line can name its flag.
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            Self::InvalidConfig { name, .. } | Self::InvalidSetting { name, .. } => Some(name),
            Self::OverLimit { setting, .. } | Self::OutputDir { setting, .. } => Some(setting),
            Self::EmbeddingNotInPrompt { .. }
            | Self::UnusablePrompt { .. }
            | Self::PromptTooLong { .. } => Some("template"),
            Self::WouldOverwrite { .. } => Some("overwrite"),
            _ => None,
        }
    }
}

/// Where a training prompt comes from: a template line, filled with the caption of a file
/// when the line has `[filewords]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSite {
    /// The template (a shipped name or a file path).
    pub template: String,
    /// The line, 1-based.
    pub line: usize,
    /// The line's text.
    pub line_text: String,
    /// The file the caption came from (its `.txt` sidecar, or the picture whose name is the
    /// caption), for lines with `[filewords]`.
    pub caption: Option<PathBuf>,
}

impl std::fmt::Display for PromptSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text: String = self.line_text.chars().take(120).collect();
        write!(
            f,
            "template {} line {} ({text:?})",
            self.template, self.line
        )?;
        if let Some(caption) = &self.caption {
            write!(f, " with the caption of {}", caption.display())?;
        }
        Ok(())
    }
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// A file the trainer writes through [`sd_core::fs`] is an engine I/O error naming the file
/// ([`sd_core::CoreError::Io`]).
impl From<sd_core::fs::FsError> for TrainError {
    fn from(e: sd_core::fs::FsError) -> Self {
        Self::Core(e.into())
    }
}
