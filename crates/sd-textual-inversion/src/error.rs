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
    /// A network refused its input at run time.
    #[error("network: {0}")]
    Network(String),
    /// The training prompts never name the embedding, so it gets no gradient.
    #[error("the training prompts never contain the embedding's name: nothing to learn")]
    NoGradient,
    /// A timestep outside the model's schedule.
    #[error("timestep {timestep} is outside the schedule's 0..{max}")]
    Timestep {
        /// The timestep asked for.
        timestep: usize,
        /// Number of training timesteps.
        max: usize,
    },
    /// A training setting is out of range.
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
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

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
