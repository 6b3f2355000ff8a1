#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attention;
pub mod config;
pub mod embeddings;
mod error;
pub mod hypernetwork;
pub mod loader;
pub mod resnet;
pub mod sampling;
pub mod transformer_2d;
pub mod unet_2d_blocks;
pub mod unet_2d_condition;

pub use config::{PerBlock, UNetConfig};
pub use error::UNetError;
pub use loader::WeightFormat;
pub use unet_2d_condition::UNet2DConditionModel;
