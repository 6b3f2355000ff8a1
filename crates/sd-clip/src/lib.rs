#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attention;
pub mod config;
pub mod embeddings;
pub mod encoder;
pub mod error;
pub mod loader;
pub mod mlp;
pub mod normalize;
mod pretokenizer;
pub mod text_model;
pub mod tokenizer;
pub mod vocab;

pub use config::{ClipTextConfig, HiddenAct};
pub use embeddings::EmbeddingOverride;
pub use error::{ClipError, Result};
pub use normalize::TextNormalization;
pub use text_model::{ClipTextModel, ClipTextOutput};
pub use tokenizer::ClipTokenizer;
