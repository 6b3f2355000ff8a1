#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bundled;
pub mod checkpoint;
pub mod conditioning;
mod device;
pub mod embeddings;
mod error;
pub mod fs;
pub mod hypernetwork;
pub mod image_file;
pub mod infotext;
pub mod limits;
pub mod lora;
pub mod model;
pub mod pipeline;

/// The burn release these crates are written against, re-exported so callers build tensors
/// and devices with the same types.
pub use burn;
pub use device::DeviceChoice;
pub use error::{CoreError, ErrorCause, Result};
pub use model::{LoadOptions, ModelArchitecture, StableDiffusion};
pub use pipeline::{Generation, GenerationRequest, Img2ImgInput};
/// The CLIP tokenizer and text encoder.
pub use sd_clip;
/// A1111's seeds and noise: torch's CPU `randn`, Philox, per-image generators, the Brownian
/// tree (the [`sd_noise`] crate).
pub use sd_noise as noise;
/// The A1111 prompt language.
pub use sd_prompt;
/// Noise schedules and samplers.
pub use sd_schedulers;
/// PyTorch `.pt` / `.ckpt` files read and written as data (the [`sd_torch_file`] crate).
pub use sd_torch_file as torch_file;
/// The denoising UNet.
pub use sd_unet;
/// The autoencoder.
pub use sd_vae;
