#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod create;
pub mod dataset;
mod error;
pub mod preprocess;
pub mod train;

pub use error::{PromptSite, Result, TrainError};

/// The engine this crate trains for: checkpoints, conditioning, pipeline, embedding files.
/// Re-exported so one `cargo add sd-textual-inversion` is enough.
pub use sd_core;
