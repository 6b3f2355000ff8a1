#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bundled;
pub mod checkpoint;
pub mod conditioning;
mod device;
pub mod embeddings;
mod error;
pub mod fs;
pub mod image_file;
pub mod infotext;
pub mod limits;
pub mod model;
pub mod noise;
pub mod pipeline;
pub mod torch_file;

/// The burn release these crates are written against, re-exported so callers build tensors
/// and devices with the same types.
pub use burn;
pub use device::DeviceChoice;
pub use error::{CoreError, Result};
pub use model::{LoadOptions, ModelArchitecture, StableDiffusion};
pub use pipeline::{Generation, GenerationParams, Img2ImgInput};
/// The CLIP tokenizer and text encoder.
pub use sd_clip;
/// The A1111 prompt language.
pub use sd_prompt;
/// Noise schedules and samplers.
pub use sd_schedulers;
/// The denoising UNet.
pub use sd_unet;
/// The autoencoder.
pub use sd_vae;
