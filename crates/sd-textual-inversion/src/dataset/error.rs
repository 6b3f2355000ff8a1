//! The error type of the dataset module.

use std::path::PathBuf;

/// What can go wrong while preparing training data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A schedule string A1111 would refuse (`LearnRateScheduleIterator` raises
    /// "Invalid learning rate schedule. ..."). `entry` is the comma-separated piece at fault
    /// (empty when the schedule holds no usable entry at all).
    #[error(
        "invalid learning rate schedule {schedule:?} at {entry:?}: {reason}. It should be a number \
         or, for example, like \"0.001:100, 0.00001:1000, 1e-5:10000\" to have lr of 0.001 until \
         step 100, 0.00001 until 1000, and 1e-5 until 10000"
    )]
    InvalidLearnRateSchedule {
        /// The whole schedule string.
        schedule: String,
        /// The entry that failed.
        entry: String,
        /// Why it failed.
        reason: String,
    },
    /// `--clip-grad` is neither `value:SCHEDULE` nor `norm:SCHEDULE`.
    #[error("invalid gradient clipping {0:?}: expected value:SCHEDULE or norm:SCHEDULE")]
    InvalidClipGrad(String),
    /// A prompt-template name that is not one of the shipped templates.
    #[error("unknown prompt template {name:?}; shipped templates: {known}")]
    UnknownTemplate {
        /// The name asked for.
        name: String,
        /// The shipped names, comma-separated.
        known: String,
    },
    /// A prompt template without a single line (A1111's `random.choice` would raise).
    #[error("prompt template {0} has no lines")]
    EmptyTemplate(String),
    /// The dataset directory does not exist or is not a directory
    /// (A1111: "Dataset directory doesn't exist").
    #[error("dataset directory {0} doesn't exist")]
    NotADirectory(PathBuf),
    /// The dataset directory has no entries (A1111: "Dataset directory is empty").
    #[error("dataset directory {0} is empty")]
    EmptyDirectory(PathBuf),
    /// None of the files could be decoded as an image
    /// (A1111: "No images have been found in the dataset.").
    #[error("no images have been found in the dataset {0}")]
    NoImages(PathBuf),
    /// An alpha channel whose length is not `width * height`.
    #[error("alpha channel of {len} bytes does not match {width}x{height}")]
    AlphaShape {
        /// Bytes given.
        len: usize,
        /// Claimed width.
        width: usize,
        /// Claimed height.
        height: usize,
    },
    /// A zero batch size, group size or image dimension.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// A caption sidecar longer than the prompt cap (`Limits::max_prompt_chars`): a caption
    /// is part of every prompt built from it, and a megabyte of text is thousands of CLIP
    /// chunks per step.
    #[error(
        "caption {path}: {chars} characters is over the limit of {limit} \
         (`Limits::max_prompt_chars`)"
    )]
    CaptionTooLong {
        /// The sidecar.
        path: PathBuf,
        /// Its length in characters (at least this many when it was refused by its size).
        chars: u64,
        /// The cap.
        limit: u64,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
