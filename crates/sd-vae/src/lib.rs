#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attention;
pub mod autoencoder_kl;
pub mod config;
pub mod decoder;
pub mod distribution;
pub mod encoder;
pub mod error;
pub mod loader;
pub mod resnet;
pub mod sampling;
pub mod unet_2d_blocks;

pub use autoencoder_kl::AutoencoderKl;
pub use config::AutoencoderKlConfig;
pub use distribution::DiagonalGaussianDistribution;
pub use error::{Result, VaeError};
pub use loader::WeightFormat;

/// The burn release this crate is written against, re-exported so callers name the same
/// tensor and store types.
pub use burn;
