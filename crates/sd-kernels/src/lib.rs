#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attention;
pub mod conv;
#[cfg(feature = "flex")]
mod cpu;
pub mod geglu;
pub mod gelu;
pub mod group_norm;
pub mod linear;
pub mod precision;
pub mod pytorch_layout;
pub mod simd;

pub use attention::{SCORE_BUDGET, scaled_dot_product};
pub use conv::{Convolution3x3, conv2d, convolution_3x3, set_convolution_3x3};
pub use geglu::geglu;
pub use gelu::gelu;
pub use group_norm::group_norm;
pub use linear::linear;
pub use pytorch_layout::PyTorchLayoutF32;
pub use simd::SimdLevel;
#[cfg(feature = "flex")]
pub use simd::simd_level;
