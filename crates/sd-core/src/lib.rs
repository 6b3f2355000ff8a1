#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bundled;
pub mod checkpoint;
mod device;
mod error;
pub mod fs;

/// The burn release these crates are written against, re-exported so callers build tensors
/// and devices with the same types.
pub use burn;
pub use device::DeviceChoice;
pub use error::{CoreError, Result};
/// The A1111 prompt language.
pub use sd_prompt;
