//! LoRA, the extra network users load most: kohya / A1111 and diffusers (PEFT) files, applied
//! as A1111's built-in Lora extension does (`W += multiplier · alpha / rank · up · down`, the
//! text encoder's and the UNet's modules each with its own multiplier), to a copy of the
//! model that shares every untouched weight.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sd_core::lora::{ActiveLora, LoraFile};
//! # let dir = std::env::temp_dir().join("sd-core-doctest-lora");
//! # let path = sd_core::bundled::TINY_SD1_CONCEPT.extract_to(&dir)?;
//! let device = sd_core::DeviceChoice::Cpu.device()?;
//! let model = sd_core::StableDiffusion::load(path, &device)?;
//! # let lora_path = dir.join("none.safetensors");
//! # std::fs::write(&lora_path, b"\x02\x00\x00\x00\x00\x00\x00\x00{}")?;
//! let lora = LoraFile::read(&lora_path)?;
//! let active = [ActiveLora { file: &lora, text_encoder: 0.8, unet: 0.8 }];
//! # if !lora.modules().is_empty() {
//! let (styled, report) = model.with_loras(&active)?;
//! # }
//! # Ok(()) }
//! ```

mod apply;
mod error;
mod file;
mod library;

pub use apply::{ActiveLora, LoraReport};
pub use error::{LoraError, Result};
pub use file::{LoraFile, LoraModule, LoraTensor};
pub use library::{LoraEntry, LoraLibrary, PromptLoras, SkippedLora};
