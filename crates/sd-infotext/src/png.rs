//! The `parameters` text chunk of a PNG, read and written as A1111 does through PIL
//! (`modules/images.py`): `PngInfo.add_text` stores a tEXt chunk when the text is Latin-1 and
//! an uncompressed iTXt chunk otherwise; `Image.open(...).info` reads tEXt, zTXt and iTXt
//! (the last chunk of a keyword wins, malformed iTXt chunks are skipped, a zTXt chunk whose
//! zlib data is broken reads as empty text).
//!
//! The chunks are walked directly (no pixel decoding), up to IEND, so text placed after the
//! image data is found too.

use std::io::Read;
use std::path::Path;

use super::error::{InfotextError, Result};

/// The text chunk keyword A1111 stores its infotext under.
pub const PARAMETERS_KEY: &str = "parameters";

/// Decompressed size above which a zTXt/iTXt chunk is refused (PIL's own limit is 1 MiB; a
/// larger one keeps long prompts readable while still stopping zip bombs).
pub const MAX_TEXT_CHUNK: usize = 16 << 20;

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Which chunk type a text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextChunkKind {
    /// `tEXt`: Latin-1, uncompressed.
    Text,
    /// `zTXt`: Latin-1, zlib-compressed.
    CompressedText,
    /// `iTXt`: UTF-8, compressed or not.
    International {
        /// Whether the text was zlib-compressed.
        compressed: bool,
    },
}

/// One text chunk of a PNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngText {
    /// The keyword (`parameters`, `Software`, ...).
    pub keyword: String,
    /// The text.
    pub text: String,
    /// The chunk it was stored in.
    pub kind: TextChunkKind,
}

/// One raw chunk: where it starts, its type, its data.
struct Chunk<'a> {
    offset: usize,
    kind: [u8; 4],
    data: &'a [u8],
    /// The whole chunk (length, type, data, CRC).
    raw: &'a [u8],
}

fn chunk_name(kind: [u8; 4]) -> String {
    String::from_utf8_lossy(&kind).into_owned()
}

/// The chunks after the signature, up to and including IEND (or the end of the data).
fn chunks(png: &[u8]) -> Result<Vec<Chunk<'_>>> {
    if !png.starts_with(&SIGNATURE) {
        return Err(InfotextError::NotPng);
    }
    let mut out = Vec::new();
    let mut at = SIGNATURE.len();
    while at < png.len() {
        let truncated = |chunk: String| InfotextError::Truncated { chunk, offset: at };
        let header = png.get(at..at + 8).ok_or_else(|| truncated("?".into()))?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = [header[4], header[5], header[6], header[7]];
        let end = at
            .checked_add(12)
            .and_then(|v| v.checked_add(len))
            .filter(|&e| e <= png.len())
            .ok_or_else(|| truncated(chunk_name(kind)))?;
        out.push(Chunk {
            offset: at,
            kind,
            data: &png[at + 8..at + 8 + len],
            raw: &png[at..end],
        });
        at = end;
        if &kind == b"IEND" {
            break;
        }
    }
    Ok(out)
}

fn check_crc(chunk: &Chunk<'_>) -> Result<()> {
    let stored = &chunk.raw[chunk.raw.len() - 4..];
    let mut h = crc32fast::Hasher::new();
    h.update(&chunk.kind);
    h.update(chunk.data);
    if h.finalize().to_be_bytes() != stored {
        return Err(InfotextError::BadCrc {
            chunk: chunk_name(chunk.kind),
            offset: chunk.offset,
        });
    }
    Ok(())
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// PIL's `_safe_zlib_decompress`: `Ok(None)` on a zlib error (PIL's callers then skip the
/// chunk or read it as empty), an error when it inflates past [`MAX_TEXT_CHUNK`].
fn inflate(data: &[u8], keyword: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let limit = MAX_TEXT_CHUNK as u64 + 1;
    match flate2::read::ZlibDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
    {
        Ok(_) if out.len() > MAX_TEXT_CHUNK => Err(InfotextError::TextTooLarge {
            keyword: latin1(keyword),
            limit: MAX_TEXT_CHUNK,
        }),
        Ok(_) => Ok(Some(out)),
        Err(_) => Ok(None),
    }
}

/// Splits at the first NUL, as `bytes.split(b"\0", 1)`.
fn split_nul(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == 0)?;
    Some((&b[..i], &b[i + 1..]))
}

/// Reads one text chunk as PIL's `chunk_tEXt` / `chunk_zTXt` / `chunk_iTXt` do.
fn read_text(chunk: &Chunk<'_>) -> Result<Option<PngText>> {
    let text = |keyword: &[u8], text: String, kind| {
        Some(PngText {
            keyword: latin1(keyword),
            text,
            kind,
        })
    };
    Ok(match &chunk.kind {
        b"tEXt" => {
            check_crc(chunk)?;
            let (k, v) = split_nul(chunk.data).unwrap_or((chunk.data, &[]));
            if k.is_empty() {
                None
            } else {
                text(k, latin1(v), TextChunkKind::Text)
            }
        }
        b"zTXt" => {
            check_crc(chunk)?;
            let (k, v) = split_nul(chunk.data).unwrap_or((chunk.data, &[]));
            let method = v.first().copied().unwrap_or(0);
            if method != 0 {
                return Err(InfotextError::UnknownCompression {
                    method,
                    offset: chunk.offset,
                });
            }
            let body = inflate(v.get(1..).unwrap_or(&[]), k)?.unwrap_or_default();
            if k.is_empty() {
                None
            } else {
                text(k, latin1(&body), TextChunkKind::CompressedText)
            }
        }
        b"iTXt" => {
            check_crc(chunk)?;
            // Every malformed case returns early in PIL, leaving the chunk out.
            let Some((k, r)) = split_nul(chunk.data) else {
                return Ok(None);
            };
            let [flag, method, rest @ ..] = r else {
                return Ok(None);
            };
            let Some((lang, r)) = split_nul(rest) else {
                return Ok(None);
            };
            let Some((tkey, v)) = split_nul(r) else {
                return Ok(None);
            };
            let body = if *flag != 0 {
                if *method != 0 {
                    return Ok(None);
                }
                match inflate(v, k)? {
                    Some(b) => b,
                    None => return Ok(None),
                }
            } else {
                v.to_vec()
            };
            if std::str::from_utf8(lang).is_err() || std::str::from_utf8(tkey).is_err() {
                return Ok(None);
            }
            match String::from_utf8(body) {
                Ok(s) => text(
                    k,
                    s,
                    TextChunkKind::International {
                        compressed: *flag != 0,
                    },
                ),
                Err(_) => None,
            }
        }
        _ => None,
    })
}

/// Every text chunk of a PNG (tEXt, zTXt, iTXt), in file order.
///
/// # Errors
/// [`InfotextError::NotPng`], [`Truncated`](InfotextError::Truncated), a text chunk with a bad
/// CRC or an unknown compression method, or one that inflates past [`MAX_TEXT_CHUNK`].
pub fn read_png_text(png: &[u8]) -> Result<Vec<PngText>> {
    let mut out = Vec::new();
    for chunk in chunks(png)? {
        if let Some(t) = read_text(&chunk)? {
            out.push(t);
        }
    }
    Ok(out)
}

/// The infotext of a PNG: the text of its (last) `parameters` chunk, as A1111's
/// `read_info_from_image` finds it; `None` when there is none.
///
/// # Errors
/// As [`read_png_text`].
pub fn read_png_parameters(png: &[u8]) -> Result<Option<String>> {
    Ok(read_png_text(png)?
        .into_iter()
        .rev()
        .find(|t| t.keyword == PARAMETERS_KEY)
        .map(|t| t.text))
}

/// [`read_png_parameters`] of a file.
///
/// # Errors
/// [`InfotextError::Io`] when it cannot be read, otherwise [`InfotextError::InFile`] around
/// the errors of [`read_png_text`].
pub fn read_png_parameters_file(path: &Path) -> Result<Option<String>> {
    let bytes = std::fs::read(path).map_err(|source| InfotextError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_png_parameters(&bytes).map_err(|e| InfotextError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// The chunk PIL's `PngInfo.add_text(keyword, text)` makes: `(type, data)`, tEXt when the
/// text is Latin-1, otherwise an uncompressed iTXt with empty language and translated
/// keyword.
///
/// # Errors
/// [`InfotextError::InvalidKeyword`].
pub fn text_chunk(keyword: &str, text: &str) -> Result<([u8; 4], Vec<u8>)> {
    let key: Option<Vec<u8>> = keyword
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok().filter(|&b| b != 0))
        .collect();
    let key = key.filter(|k| (1..=79).contains(&k.len())).ok_or_else(|| {
        InfotextError::InvalidKeyword {
            keyword: keyword.to_owned(),
        }
    })?;
    let latin: Option<Vec<u8>> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect();
    Ok(match latin {
        Some(value) => (*b"tEXt", [key.as_slice(), &[0], &value].concat()),
        None => (
            *b"iTXt",
            [key.as_slice(), &[0, 0, 0, 0, 0], text.as_bytes()].concat(),
        ),
    })
}

fn push_chunk(out: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&kind);
    out.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(&kind);
    h.update(data);
    out.extend_from_slice(&h.finalize().to_be_bytes());
}

/// A copy of `png` with the text chunk `keyword` set to `text`: any tEXt/zTXt/iTXt chunk of
/// that keyword is removed and the new one (see [`text_chunk`]) goes right before the first
/// IDAT. Every other chunk is kept byte for byte, in order.
///
/// # Errors
/// As [`read_png_text`] for the input's structure, [`InfotextError::InvalidKeyword`],
/// [`InfotextError::NoImageData`].
pub fn set_png_text(png: &[u8], keyword: &str, text: &str) -> Result<Vec<u8>> {
    let (kind, data) = text_chunk(keyword, text)?;
    let key = &data[..data.iter().position(|&b| b == 0).unwrap_or(data.len())];
    let mut out = Vec::with_capacity(png.len() + data.len() + 12);
    out.extend_from_slice(&SIGNATURE);
    let mut inserted = false;
    for chunk in chunks(png)? {
        let is_text = matches!(&chunk.kind, b"tEXt" | b"zTXt" | b"iTXt");
        if is_text && split_nul(chunk.data).map_or(chunk.data, |(k, _)| k) == key {
            continue;
        }
        if &chunk.kind == b"IDAT" && !inserted {
            push_chunk(&mut out, kind, &data);
            inserted = true;
        }
        out.extend_from_slice(chunk.raw);
    }
    if !inserted {
        return Err(InfotextError::NoImageData);
    }
    Ok(out)
}

/// Encodes an 8-bit RGB image (`width * height * 3` bytes, rows top to bottom) as a PNG with
/// the given text chunks (each made as [`text_chunk`] makes it) before the image data.
///
/// # Errors
/// [`InfotextError::PixelBuffer`], [`InfotextError::InvalidKeyword`],
/// [`InfotextError::Encode`].
pub fn encode_png_rgb8(
    width: u32,
    height: u32,
    pixels: &[u8],
    texts: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let expected = (width as usize)
        .saturating_mul(height as usize)
        .saturating_mul(3);
    if width == 0 || height == 0 || pixels.len() != expected {
        return Err(InfotextError::PixelBuffer {
            width,
            height,
            expected,
            actual: pixels.len(),
        });
    }
    let chunks = texts
        .iter()
        .map(|(k, t)| text_chunk(k, t))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    for (kind, data) in &chunks {
        writer.write_chunk(png::chunk::ChunkType(*kind), data)?;
    }
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(out)
}
