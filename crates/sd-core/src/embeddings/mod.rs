//! Textual-inversion embedding files, both ways, and the embeddings folder — the formats
//! AUTOMATIC1111 reads (`modules/textual_inversion/textual_inversion.py`,
//! `image_embedding.py`) and the ones diffusers and kohya write:
//!
//! | layout | read | write |
//! |---|---|---|
//! | A1111 `.pt` (`string_to_param`, also as `ParameterDict`; zip or legacy torch files) | ✓ | ✓ (`Embedding.save`'s dict) |
//! | diffusers `learned_embeds.bin` / `.safetensors` (`{token: [n, dim]}` or `[dim]`) | ✓ | ✓ |
//! | kohya `.safetensors` (`emb_params`) | ✓ | ✓ ([`SafetensorsLayout::Kohya`]) |
//! | SDXL `{clip_l, clip_g}` | ✓ (SD 1.x uses `clip_l`) | ✓ (`.safetensors`, `.bin`) |
//! | PNG `sd-ti-embedding` text chunk (base64 JSON) | ✓ | ✓ |
//! | PNG pixel encoding (A1111's data blocks beside the picture) | ✓ | ✓ |
//!
//! Tensors may be f16, bf16, f32 or f64. Pickles are parsed as data by
//! [`sd_torch_file`]; nothing in a file runs.
//!
//! ```no_run
//! # fn main() -> Result<(), sd_core::embeddings::EmbeddingError> {
//! use sd_core::embeddings::{read_file, write_file, EmbeddingDatabase};
//! let (emb, format) = read_file("embeddings/realbenny-t1.pt".as_ref())?;
//! println!("{} ({}): {} vectors of {}, checksum {:?}", emb.name, format.name(),
//!          emb.vectors.n, emb.vectors.dim, emb.checksum());
//! write_file("realbenny-t1.safetensors".as_ref(), &emb)?;
//!
//! let db = EmbeddingDatabase::load_dirs(&["embeddings".into()], Some(768));
//! println!("{}", db.summary());
//! # Ok(()) }
//! ```

mod database;
mod detect;
mod embedding;
mod error;
pub mod formats;

pub use database::{
    EmbeddingDatabase, LoadedEmbedding, SkipReason, SkippedFile, file_sha256, file_shorthash,
};
pub use detect::MAX_EMBEDDING_VALUES;
pub use embedding::{Embedding, EmbeddingFormat, Vectors};
pub use error::{EmbeddingError, Result};
pub use formats::{
    FileKind, MAX_EMBEDDING_FILE_BYTES, read_bytes, read_file, safetensors::SafetensorsLayout,
    to_bytes, write_file,
};
