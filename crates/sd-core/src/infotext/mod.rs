//! A1111's generation parameters ("infotext"): the text under every image it makes and in
//! its PNG `parameters` chunk.
//!
//! ```text
//! a photo of a cat
//! Negative prompt: blurry
//! Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, Version: v1.10.1
//! ```
//!
//! - [`GenerationParameters`]: typed fields plus every other key in order;
//!   [`GenerationParameters::parse`] and [`GenerationParameters::to_infotext`] follow A1111's
//!   `parse_generation_parameters` and `create_infotext` (`modules/infotext_utils.py`,
//!   `modules/processing.py`, v1.10), so a parsed infotext is written back as A1111 would.
//! - [`parse_generation_parameters`]: A1111's whole key/value map, defaults included, for
//!   code that needs exactly what A1111's "paste" sees.
//! - PNG: [`read_png_parameters`] (tEXt, zTXt and iTXt, as PIL reads them),
//!   [`set_png_text`] (add or replace the chunk, keeping every other chunk) and
//!   [`encode_png_rgb8`] / [`write_png_rgb8`] (chunks as PIL's `PngInfo.add_text` makes them).
//!
//! ```
//! # use sd_core::infotext::GenerationParameters;
//! let text = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1, Size: 512x768";
//! let params = GenerationParameters::parse(text);
//! assert_eq!(params.steps, Some(20));
//! assert_eq!((params.width, params.height), (Some(512), Some(768)));
//! assert_eq!(params.to_infotext(), text);
//! ```
//!
//! The tests compare against A1111's own functions, run by `tools/infotext_reference.py` on
//! the cases in `fixtures/infotext/`.

mod error;
mod number;
mod params;
mod parse;
mod png;
mod quote;
mod unicode;
mod version;

pub use error::{InfotextError, Result};
pub use number::{py_float_repr, ui_number};
pub use params::GenerationParameters;
pub use parse::{InfotextValue, parse_generation_parameters};
pub use png::{
    MAX_TEXT_CHUNK, PARAMETERS_KEY, PngText, TextChunkKind, encode_png_rgb8, read_png_parameters,
    read_png_parameters_file, read_png_text, set_png_text, text_chunk, write_png_rgb8,
};
pub(crate) use quote::json_dumps;
pub use quote::{quote, unquote};
