//! Image embeddings: reading the `sd-ti-embedding` text chunk or, failing that, the pixel
//! data (as A1111's `load_from_file` does), and writing A1111's image embedding: the preview
//! with its caption overlay, the pixel data around it and the text chunk
//! (`train_embedding`'s `save_image_with_stored_embedding`).

use std::path::Path;

use crate::embeddings::{
    detect::RawData,
    embedding::Embedding,
    error::{EmbeddingError, Result},
    formats::{
        caption::{Caption, draw_caption},
        png_pixels::{self, ExtractError, RgbImage},
        png_text::{self, TEXT_CHUNK_KEY},
    },
};
use sd_infotext::{encode_png_rgb8, read_png_text};

/// Size of the flat preview used when none is given (A1111's previews are the model's
/// 512×512 samples).
pub const DEFAULT_PREVIEW_SIZE: usize = 512;

/// Decodes a PNG's pixels as `Image.convert("RGB")` does (alpha dropped), refusing from its
/// header a picture over [`Limits::max_image_pixels`](crate::limits::Limits) (default
/// limits: a 20000×20000 PNG is a few hundred KB on disk and 1.2 GB decoded).
///
/// # Errors
/// [`EmbeddingError::Image`] when it is no decodable PNG or is too large.
pub fn decode_rgb(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    use image::ImageDecoder as _;
    let limits = crate::limits::Limits::default();
    let cannot =
        |e: image::ImageError| EmbeddingError::image_caused(path, "cannot decode the PNG", e);
    let mut decoder =
        image::codecs::png::PngDecoder::new(std::io::Cursor::new(bytes)).map_err(cannot)?;
    let (width, height) = decoder.dimensions();
    limits
        .check_image_pixels(width, height)
        .map_err(|e| EmbeddingError::image_caused(path, format!("{width}×{height} picture"), e))?;
    decoder
        .set_limits(limits.image_decoder_limits())
        .map_err(cannot)?;
    let img = image::DynamicImage::from_decoder(decoder)
        .map_err(cannot)?
        .to_rgb8();
    Ok(RgbImage {
        width: img.width() as usize,
        height: img.height() as usize,
        pixels: img.into_raw(),
    })
}

/// Reads the embedding data of a PNG: the decoded dict, its stored name, and whether it came
/// from the text chunk (else the pixels).
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<(RawData, Option<String>, bool)> {
    let texts = read_png_text(bytes)
        .map_err(|e| EmbeddingError::image_caused(path, "cannot read the PNG's chunks", e))?;
    // PIL's `.text` keeps the last chunk of a keyword.
    if let Some(t) = texts.iter().rev().find(|t| t.keyword == TEXT_CHUNK_KEY) {
        let (data, name) = png_text::from_base64(path, &t.text)?;
        return Ok((data, name, true));
    }
    let img = decode_rgb(path, bytes)?;
    match png_pixels::extract_data(&img) {
        Ok(json) => {
            let (data, name) = png_text::from_json(path, &json)?;
            Ok((data, name, false))
        }
        Err(ExtractError::NoData) => Err(EmbeddingError::NoEmbeddingInImage {
            path: path.to_path_buf(),
        }),
        Err(corrupt) => Err(EmbeddingError::image_caused(
            path,
            "cannot read the embedding from the pixels",
            corrupt,
        )),
    }
}

/// The darkening gradient of A1111's `caption_image_overlay`, composited as PIL's
/// `Image.alpha_composite` does (7-bit fixed point); pixel for pixel A1111's. The text is
/// [`draw_caption`]'s.
pub fn caption_gradient(image: &mut RgbImage) {
    const PRECISION_BITS: u32 = 7;
    let shift_div_255 = |a: u32| ((a >> 8) + a) >> 8;
    let h = image.height as f64;
    let factor = 1.5;
    for y in 0..image.height {
        let yf = y as f64;
        let mag = (1.0 - (yf / h * factor).cos()).max(1.0 - ((h - yf) / h * factor * 1.1).cos());
        // putpixel clips the int to 0..=255.
        let a = ((mag * 255.0) as i64).clamp(0, 255) as u32;
        if a == 0 {
            continue;
        }
        let blend = 255 * (255 - a);
        let outa255 = a * 255 + blend;
        let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / outa255;
        let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
        let row = &mut image.pixels[y * image.width * 3..(y + 1) * image.width * 3];
        for c in row {
            let tmp = u32::from(*c) * coef2;
            *c = (shift_div_255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8;
        }
    }
}

/// A1111's image embedding of `e` as PNG bytes: `preview` (a flat grey
/// [`DEFAULT_PREVIEW_SIZE`] square when `None`) with the caption overlay (gradient and
/// `caption`, [`Caption::for_embedding`] when `None`), the pixel data left and right of it,
/// and the `sd-ti-embedding` text chunk. Both encodings hold the JSON of the `.pt` A1111
/// would save.
///
/// # Errors
/// [`EmbeddingError::Write`] for SDXL embeddings or an empty preview; PNG encoder errors.
pub fn write(
    path: &Path,
    e: &Embedding,
    preview: Option<&RgbImage>,
    caption: Option<&Caption>,
) -> Result<Vec<u8>> {
    e.validate()?;
    let mut picture = match preview {
        Some(p) if p.width > 0 && p.height > 0 && p.pixels.len() == p.width * p.height * 3 => {
            p.clone()
        }
        Some(p) => {
            return Err(EmbeddingError::Write {
                path: path.to_path_buf(),
                reason: format!(
                    "the preview is {}x{} with {} bytes",
                    p.width,
                    p.height,
                    p.pixels.len()
                ),
                source: None,
            });
        }
        None => RgbImage {
            width: DEFAULT_PREVIEW_SIZE,
            height: DEFAULT_PREVIEW_SIZE,
            pixels: vec![128; DEFAULT_PREVIEW_SIZE * DEFAULT_PREVIEW_SIZE * 3],
        },
    };
    caption_gradient(&mut picture);
    match caption {
        Some(c) => draw_caption(&mut picture, c),
        None => draw_caption(&mut picture, &Caption::for_embedding(e)),
    }
    let json = png_text::to_json(path, e)?;
    let b64 = png_text::to_base64(path, e)?;
    let style = png_pixels::edge_style(e.vectors.row(0));
    let out = png_pixels::insert_data(&picture, &png_pixels::compress(json.as_bytes()), &style);
    let too_big = |_| EmbeddingError::Write {
        path: path.to_path_buf(),
        reason: format!(
            "an image of {}x{} pixels is too large",
            out.width, out.height
        ),
        source: None,
    };
    let w = u32::try_from(out.width).map_err(too_big)?;
    let h = u32::try_from(out.height).map_err(too_big)?;
    encode_png_rgb8(w, h, &out.pixels, &[(TEXT_CHUNK_KEY, &b64)]).map_err(|err| {
        EmbeddingError::Write {
            path: path.to_path_buf(),
            reason: "encoding the PNG".into(),
            source: Some(Box::new(err.into())),
        }
    })
}
