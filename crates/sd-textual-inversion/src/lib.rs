#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The engine this crate trains for: checkpoints, conditioning, pipeline, embedding files.
/// Re-exported so one `cargo add sd-textual-inversion` is enough.
pub use sd_core;
