//! One module per file layout, and the dispatch by file extension A1111 uses
//! (`.pt`/`.bin` torch, `.safetensors`, `.png` image; A1111 also reads `.webp`, `.jxl` and
//! `.avif` images, which this crate does not read as embeddings).

pub mod a1111_pt;
pub mod caption;
pub mod png_image;
pub mod png_pixels;
pub mod png_text;
pub mod safetensors;

use std::path::Path;

use super::{
    detect::{Container, interpret},
    embedding::{Embedding, EmbeddingFormat},
    error::{EmbeddingError, Result},
};

/// Largest file read as an embedding (real ones are a few KB to a few hundred KB; a
/// checkpoint dropped into the embeddings folder is refused without being read).
pub const MAX_EMBEDDING_FILE_BYTES: u64 = 64 << 20;

/// The kind of file an extension names, as A1111's `load_from_file` dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// `.pt`, `.bin`: a torch file.
    Torch,
    /// `.safetensors`.
    Safetensors,
    /// `.png`.
    Png,
}

impl FileKind {
    /// The kind of `path` by its extension (case-insensitive); `None` for files A1111 passes
    /// over (and for `.webp`/`.jxl`/`.avif`, which this crate does not read as embeddings).
    pub fn of(path: &Path) -> Option<FileKind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "pt" | "bin" => Some(FileKind::Torch),
            "safetensors" => Some(FileKind::Safetensors),
            "png" => Some(FileKind::Png),
            _ => None,
        }
    }
}

/// The trigger word A1111 gives a tensor file: `os.path.splitext(filename)[0]`.
pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads an embedding file: dispatch by extension, then A1111's layout rules.
///
/// # Errors
/// [`EmbeddingError::Io`], [`EmbeddingError::TooLarge`],
/// [`EmbeddingError::UnknownExtension`], and the decoding errors of each format.
pub fn read_file(path: &Path) -> Result<(Embedding, EmbeddingFormat)> {
    let len = std::fs::metadata(path)
        .map_err(|e| EmbeddingError::io(path, e))?
        .len();
    if len > MAX_EMBEDDING_FILE_BYTES {
        return Err(EmbeddingError::TooLarge {
            path: path.to_path_buf(),
            len,
            limit: MAX_EMBEDDING_FILE_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| EmbeddingError::io(path, e))?;
    read_bytes(path, bytes)
}

/// [`read_file`] of bytes already in memory; `path` gives the extension, the name and the
/// label in errors.
///
/// # Errors
/// As [`read_file`].
pub fn read_bytes(path: &Path, bytes: Vec<u8>) -> Result<(Embedding, EmbeddingFormat)> {
    let kind = FileKind::of(path).ok_or_else(|| EmbeddingError::UnknownExtension {
        path: path.to_path_buf(),
    })?;
    let stem = file_stem(path);
    match kind {
        FileKind::Torch => {
            let data = a1111_pt::read(path, bytes)?;
            interpret(path, stem, &data, Container::Torch)
        }
        FileKind::Safetensors => {
            let data = safetensors::read(path, &bytes)?;
            interpret(path, stem, &data, Container::Safetensors)
        }
        FileKind::Png => {
            let (data, name, from_text) = png_image::read(path, &bytes)?;
            let format = if from_text {
                EmbeddingFormat::PngText
            } else {
                EmbeddingFormat::PngPixels
            };
            interpret(path, name.unwrap_or(stem), &data, Container::Image(format))
        }
    }
}

/// The bytes of `e` in the format `path`'s extension implies: `.pt` A1111's
/// `Embedding.save`, `.bin` diffusers' `learned_embeds.bin`, `.safetensors` diffusers'
/// `learned_embeds.safetensors` (SDXL: `{clip_l, clip_g}`), `.png` A1111's image embedding
/// on a flat preview with A1111's caption ([`caption::Caption::for_embedding`]).
///
/// # Errors
/// [`EmbeddingError::UnknownExtension`], and the writers' errors.
pub fn to_bytes(path: &Path, e: &Embedding) -> Result<Vec<u8>> {
    let kind = FileKind::of(path).ok_or_else(|| EmbeddingError::UnknownExtension {
        path: path.to_path_buf(),
    })?;
    let is_bin = path
        .extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("bin"));
    match kind {
        FileKind::Torch if is_bin => a1111_pt::write_diffusers_bin(path, e),
        FileKind::Torch => a1111_pt::write_a1111(path, e),
        FileKind::Safetensors => {
            safetensors::write(path, e, safetensors::SafetensorsLayout::Diffusers)
        }
        FileKind::Png => png_image::write(path, e, None, None),
    }
}

/// Writes `e` to `path` (format by extension, see [`to_bytes`]) through a temporary file
/// and a rename ([`crate::fs::write_atomic`]).
///
/// # Errors
/// As [`to_bytes`], and [`EmbeddingError::Io`].
pub fn write_file(path: &Path, e: &Embedding) -> Result<()> {
    let bytes = to_bytes(path, e)?;
    write_atomic(path, &bytes)
}

/// [`crate::fs::write_atomic`] with this module's error type.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fs::write_atomic(path, bytes).map_err(|e| EmbeddingError::Io {
        path: e.path,
        source: e.source,
    })
}
