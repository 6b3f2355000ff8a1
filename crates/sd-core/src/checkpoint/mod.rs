//! Checkpoint files: headers, hashes and what a file holds.
//!
//! Loading the networks' weights from these files lives with each network's loader; this
//! module answers the questions asked before loading: is it valid, which model is it, which
//! hash does A1111 print for it.

mod floats;
mod hash;
mod safetensors_header;
mod summary;

pub(crate) use floats::floats_of;
pub use hash::ModelHash;
pub use safetensors_header::{DType, MAX_HEADER_BYTES, SafetensorsHeader, TensorInfo};
pub(crate) use summary::ldm_family;
pub use summary::{CheckpointFormat, CheckpointSummary, Component, ComponentStats, ModelFamily};
