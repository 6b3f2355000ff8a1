//! The embedding-file targets: safetensors, and PNG embeddings through their text chunk and
//! their pixels.

use std::path::Path;

use sd_core::embeddings::{
    self, Embedding,
    formats::png_pixels::{self, RgbImage},
};
use sd_infotext as infotext;

use crate::{fix_png_crcs, selector};

/// Largest picture (pixels) a target builds from its input.
const MAX_PIXELS: usize = 1 << 16;

/// Safetensors files: the input is read as a `.safetensors` embedding
/// (`embeddings::read_bytes`, which validates the header — length prefix, JSON, dtypes,
/// shapes against byte ranges — and decodes the tensors).
///
/// Asserts: `Ok` or a typed error, never a panic or an allocation sized by the header. Round
/// trip: an embedding that reads back is written again as safetensors
/// (`embeddings::to_bytes`) and reads back with the same vectors.
///
/// `sd_core::checkpoint::SafetensorsHeader` reads only from a path; targets do not write
/// files, so it is not reached here (its JSON step is the same validation).
pub fn safetensors_header(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    if let Ok((emb, _)) = embeddings::read_bytes(path, data.to_vec()) {
        check_rewrite(&emb);
    }
}

/// Writes `emb` as safetensors and reads it back: the vectors must match bit for bit.
fn check_rewrite(emb: &Embedding) {
    let path = Path::new("fuzz-rewrite.safetensors");
    let bytes = embeddings::to_bytes(path, emb).expect("a read embedding can be written");
    let (back, _) = embeddings::read_bytes(path, bytes).expect("the written embedding reads back");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(back.vectors.n, emb.vectors.n);
    assert_eq!(back.vectors.dim, emb.vectors.dim);
    assert_eq!(bits(&back.vectors.data), bits(&emb.vectors.data));
}

/// Standard base64 (RFC 4648, padded) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The PNG embedding reader (`embeddings::read_bytes` of a `.png`) through its text chunk.
/// The first byte picks what the rest is:
/// - `0 mod 4`: a whole PNG file, as is;
/// - `1 mod 4`: a whole PNG file whose chunk CRCs the harness fixes first;
/// - `2 mod 4`: the text of the `sd-ti-embedding` chunk (base64 of JSON) of a 1×1 PNG;
/// - `3 mod 4`: the JSON itself, base64-encoded by the harness into that chunk.
///
/// Asserts: `Ok` or a typed error, never a panic (bad base64, bad JSON, wrong shapes, odd
/// numbers, huge claimed sizes). Round trip: an embedding that reads is written as
/// safetensors and reads back with the same vectors.
pub fn embedding_png_text(data: &[u8]) {
    let (sel, rest) = selector(data);
    let png = match sel % 4 {
        0 => rest.to_vec(),
        1 => {
            let mut png = rest.to_vec();
            fix_png_crcs(&mut png);
            png
        }
        mode => {
            let text = if mode == 2 {
                String::from_utf8_lossy(rest).into_owned()
            } else {
                base64(rest)
            };
            let Ok(png) =
                infotext::encode_png_rgb8(1, 1, &[9, 9, 9], &[("sd-ti-embedding", &text)])
            else {
                return;
            };
            png
        }
    };
    if let Ok((emb, _)) = embeddings::read_bytes(Path::new("fuzz.png"), png) {
        check_rewrite(&emb);
    }
}

/// A1111's pixel encoding of embeddings. The first byte gives the width (1–64), the rest
/// is RGB pixels (rows of `3 * width` bytes; a partial last row is dropped). The picture goes
/// to `png_pixels::extract_data` (black-border crop, block split, nibble join, XOR, zlib
/// inflate with its size cap) and, encoded as a PNG without text chunk, through the whole
/// reader (`embeddings::read_bytes`: PNG decode, pixel data, JSON, layout rules).
///
/// Asserts: `Ok` or a typed error, never a panic. Round trips: what `insert_data` writes
/// around a picture (the input's bytes as the compressed stream), `extract_blocks` finds
/// again (cycled to fill the blocks) whenever the layout is unambiguous (see
/// `clean_layout`); an embedding that reads is written as safetensors and reads back with
/// the same vectors.
pub fn embedding_png_pixels(data: &[u8]) {
    let (sel, rest) = selector(data);
    let width = usize::from(sel % 64) + 1;
    let height = (rest.len() / (3 * width)).min(MAX_PIXELS / width);
    if height == 0 {
        return;
    }
    let img = RgbImage {
        width,
        height,
        pixels: rest[..width * height * 3].to_vec(),
    };
    let _ = png_pixels::extract_data(&img);
    if let Ok(png) = infotext::encode_png_rgb8(width as u32, height as u32, &img.pixels, &[])
        && let Ok((emb, _)) = embeddings::read_bytes(Path::new("fuzz.png"), png)
    {
        check_rewrite(&emb);
    }

    // Writer → reader: the input's bytes as the compressed stream, around a picture whose
    // pixels are non-black in every channel's low nibble (so no column of it reads as a
    // separator).
    let h = height.min(8);
    let picture = RgbImage {
        width: 2,
        height: h,
        pixels: vec![0x11; 2 * h * 3],
    };
    let payload = &rest[..rest.len().min(256)];
    let style = png_pixels::edge_style(&[0.5, -1.0, 0.25]);
    let out = png_pixels::insert_data(&picture, payload, &style);
    let bw = (out.width - picture.width - 2) / 2;
    assert_eq!(out.width, picture.width + 2 * bw + 2);
    assert!(
        bw * h * 3 >= payload.len(),
        "the blocks hold the whole stream"
    );
    // The data blocks can themselves hold a black column, or a border column of pixels each
    // with a zero channel (A1111's writer has the same weakness); only a clean layout is
    // required to read back.
    if !payload.is_empty() && clean_layout(&out) {
        let blocks = png_pixels::extract_blocks(&out).expect("a clean layout reads back");
        assert_eq!(blocks.len(), bw * h * 3);
        let cycled: Vec<u8> = payload.iter().cycle().take(blocks.len()).copied().collect();
        assert!(blocks == cycled, "insert_data / extract_blocks round trip");
    }
}

/// Whether A1111's reader sees exactly the layout the writer made: the first and last
/// columns each hold a pixel with three non-zero channels (so `crop_black` keeps the whole
/// picture) and exactly two columns have every low nibble zero (the separators).
fn clean_layout(img: &RgbImage) -> bool {
    let px = |x: usize, y: usize| &img.pixels[(y * img.width + x) * 3..(y * img.width + x) * 3 + 3];
    let lit = |x: usize| (0..img.height).any(|y| px(x, y).iter().all(|&c| c > 0));
    let black = |x: usize| (0..img.height).all(|y| px(x, y).iter().all(|&c| c & 0x0F == 0));
    img.width >= 2
        && lit(0)
        && lit(img.width - 1)
        && (0..img.width).filter(|&x| black(x)).count() == 2
}
