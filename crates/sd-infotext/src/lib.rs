#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

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
    read_png_parameters_file, read_png_text, set_png_text, text_chunk,
};
pub use quote::{json_dumps, quote, unquote};
