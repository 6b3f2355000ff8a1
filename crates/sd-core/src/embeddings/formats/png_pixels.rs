//! A1111's pixel encoding of an embedding (`modules/textual_inversion/image_embedding.py`:
//! `lcg`, `xor_block`, `style_block`, `crop_black`, `insert_image_data_embed`,
//! `extract_image_data_embed`).
//!
//! The zlib-compressed JSON is split into low and high nibbles; each half is laid out as an
//! `[h, w, 3]` block (cycled to fill it), its high nibbles painted with a pattern of dots whose
//! shades come from the first vector, its low nibbles XOR'd with an LCG stream
//! (m = 2^32, a = 1664525, c = 1013904223, seed 0, output `state % 255`). The low block goes
//! left of the picture and the high block right, each after one black column. Reading crops
//! black borders, finds the black columns, keeps the low nibbles and undoes the XOR.

use std::io::Read;

/// Bytes of decompressed JSON a pixel block may hold before it is refused (zip bombs).
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// A1111's `lcg()`: the LCG's states modulo 255, first outputs 253, 242, 127, 44.
#[derive(Debug, Clone)]
pub struct Lcg {
    state: u32,
}

impl Lcg {
    /// The generator with seed 0, as A1111 starts it for every block.
    pub fn new() -> Self {
        Self { state: 0 }
    }
}

impl Default for Lcg {
    fn default() -> Self {
        Self::new()
    }
}

impl Iterator for Lcg {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        self.state = self
            .state
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        Some((self.state % 255) as u8)
    }
}

/// An 8-bit RGB image, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

/// A1111's `xor_block`: XORs the low nibbles of a block with a fresh LCG stream, in row-major
/// (y, x, channel) order.
pub fn xor_block(block: &mut [u8]) {
    for (b, r) in block.iter_mut().zip(Lcg::new()) {
        *b ^= r & 0x0F;
    }
}

/// The pixels PIL's `ImageDraw.ellipse((x, y, x + 6, y + 6))` fills (Pillow 9-11): per row
/// of the 7×7 box, the first and last column.
const DOT_ROWS: [(i64, i64); 7] = [(2, 4), (1, 5), (0, 6), (0, 6), (0, 6), (1, 5), (2, 4)];

/// A1111's `style_block`: dots of 7×7 pixels every 8 pixels (odd rows shifted by 4), shade
/// `sequence[i % len]` in column-major dot order, whose high nibbles are XOR'd into the block
/// (`[h, w, 3]`).
pub fn style_block(block: &mut [u8], height: usize, width: usize, sequence: &[u8]) {
    if sequence.is_empty() {
        return;
    }
    let (h, w) = (height as i64, width as i64);
    let mut i = 0usize;
    let mut x = -6i64;
    while x < w {
        let mut yi = 0;
        let mut y = -6i64;
        while y < h {
            let offset = if yi % 2 == 0 { 4 } else { 0 };
            let shade = sequence[i % sequence.len()] & 0xF0;
            i += 1;
            for (dy, (x0, x1)) in DOT_ROWS.iter().enumerate() {
                let py = y + dy as i64;
                if !(0..h).contains(&py) {
                    continue;
                }
                for px in (x + offset + x0)..=(x + offset + x1) {
                    if (0..w).contains(&px) {
                        let at = ((py * w + px) * 3) as usize;
                        for c in &mut block[at..at + 3] {
                            *c ^= shade;
                        }
                    }
                }
            }
            yi += 1;
            y += 8;
        }
        x += 8;
    }
}

/// A1111's `edge_style`: `(|v| / max|v| * 255).astype(uint8)` over the first 1024 values of
/// the first vector (0 where the division is NaN, as numpy's cast gives on x86).
pub fn edge_style(first_vector: &[f32]) -> Vec<u8> {
    let v = &first_vector[..first_vector.len().min(1024)];
    let max = v.iter().fold(0f64, |m, x| m.max(f64::from(x.abs())));
    v.iter()
        .map(|x| (f64::from(x.abs()) / max * 255.0) as u8)
        .collect()
}

/// A1111's `insert_image_data_embed` given the compressed JSON and the edge style: the
/// picture with the data blocks left and right.
pub fn insert_data(image: &RgbImage, compressed: &[u8], edge_style: &[u8]) -> RgbImage {
    const D: usize = 3;
    let h = image.height.max(1);
    let n = compressed.len();
    let mut next = n + (h - n % h);
    next += h * D - next % (h * D);
    let bw = next / (h * D);
    let make = |f: fn(u8) -> u8, seq: &[u8]| {
        // np.resize cycles the data to fill the block.
        let mut block: Vec<u8> = if n == 0 {
            vec![0; next]
        } else {
            compressed
                .iter()
                .cycle()
                .take(next)
                .map(|&b| f(b))
                .collect()
        };
        style_block(&mut block, h, bw, seq);
        xor_block(&mut block);
        block
    };
    let low = make(|b| b & 0x0F, edge_style);
    let reversed: Vec<u8> = edge_style.iter().rev().copied().collect();
    let high = make(|b| b >> 4, &reversed);

    let out_w = image.width + 2 * bw + 2;
    let mut pixels = vec![0u8; out_w * h * 3];
    for y in 0..image.height {
        let row = &mut pixels[y * out_w * 3..(y + 1) * out_w * 3];
        row[..bw * 3].copy_from_slice(&low[y * bw * 3..(y + 1) * bw * 3]);
        let at = (bw + 1) * 3;
        row[at..at + image.width * 3]
            .copy_from_slice(&image.pixels[y * image.width * 3..(y + 1) * image.width * 3]);
        let at = (bw + 1 + image.width + 1) * 3;
        row[at..at + bw * 3].copy_from_slice(&high[y * bw * 3..(y + 1) * bw * 3]);
    }
    RgbImage {
        width: out_w,
        height: image.height,
        pixels,
    }
}

/// A1111's `crop_black(img, tol=0)`: the bounding box of the pixels whose three channels are
/// all non-zero, as `(row_start, row_end, col_start, col_end)`; the whole image when there
/// is none (numpy's `argmax` of all-False is 0).
fn crop_black(img: &RgbImage) -> (usize, usize, usize, usize) {
    let (w, h) = (img.width, img.height);
    let mut cols = vec![false; w];
    let mut rows = vec![false; h];
    for (y, row) in rows.iter_mut().enumerate() {
        let line = &img.pixels[y * w * 3..(y + 1) * w * 3];
        for (col, px) in cols.iter_mut().zip(line.chunks_exact(3)) {
            if px.iter().all(|&c| c > 0) {
                *col = true;
                *row = true;
            }
        }
    }
    let first = |v: &[bool]| v.iter().position(|&b| b).unwrap_or(0);
    let end = |v: &[bool]| v.len() - v.iter().rev().position(|&b| b).unwrap_or(0);
    (first(&rows), end(&rows), first(&cols), end(&cols))
}

/// Why [`extract_data`] found nothing.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// Fewer than two black columns: the image carries no pixel data (A1111 returns `None`
    /// and treats it as a plain preview picture).
    #[error("the image carries no pixel data")]
    NoData,
    /// The blocks are found but do not hold a zlib stream.
    #[error("the pixel data is not a zlib stream: {0}")]
    NotZlib(#[source] std::io::Error),
    /// The zlib stream inflates past [`MAX_JSON_BYTES`].
    #[error("the pixel data inflates past {limit} bytes")]
    TooLarge {
        /// [`MAX_JSON_BYTES`].
        limit: u64,
    },
    /// The data blocks left and right of the picture differ in size (numpy cannot
    /// broadcast them together: A1111 raises).
    #[error("the data blocks differ in size ({left} and {right} columns)")]
    UnevenBlocks {
        /// Columns of the left block.
        left: usize,
        /// Columns of the right block.
        right: usize,
    },
}

/// A1111's `extract_image_data_embed` up to the JSON: the decompressed bytes.
///
/// # Errors
/// [`ExtractError`].
pub fn extract_data(img: &RgbImage) -> Result<Vec<u8>, ExtractError> {
    let bytes = extract_blocks(img)?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(bytes.as_slice())
        .take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(ExtractError::NotZlib)?;
    if json.len() as u64 > MAX_JSON_BYTES {
        return Err(ExtractError::TooLarge {
            limit: MAX_JSON_BYTES,
        });
    }
    Ok(json)
}

/// The data blocks of an image, joined back into bytes (`(upper << 4) | lower`, XOR undone):
/// the compressed stream, cycled to fill the blocks.
///
/// # Errors
/// [`ExtractError`].
pub fn extract_blocks(img: &RgbImage) -> Result<Vec<u8>, ExtractError> {
    let (r0, r1, c0, c1) = crop_black(img);
    let (h, w) = (r1 - r0, c1 - c0);
    let px =
        |x: usize, y: usize, c: usize| img.pixels[((r0 + y) * img.width + c0 + x) * 3 + c] & 0x0F;
    let black: Vec<usize> = (0..w)
        .filter(|&x| (0..h).all(|y| (0..3).all(|c| px(x, y, c) == 0)))
        .collect();
    let (Some(&first), Some(&last)) = (black.first(), black.last()) else {
        return Err(ExtractError::NoData);
    };
    if black.len() < 2 {
        return Err(ExtractError::NoData);
    }
    let block = |from: usize, to: usize| {
        let mut b = Vec::with_capacity(h * (to - from) * 3);
        for y in 0..h {
            for x in from..to {
                for c in 0..3 {
                    b.push(px(x, y, c));
                }
            }
        }
        xor_block(&mut b);
        b
    };
    let lower = block(0, first);
    let upper = block(last + 1, w);
    if lower.len() != upper.len() {
        // numpy cannot broadcast the two blocks together: A1111 raises here.
        return Err(ExtractError::UnevenBlocks {
            left: first,
            right: w - last - 1,
        });
    }
    Ok(upper
        .iter()
        .zip(&lower)
        .map(|(&u, &l)| (u << 4) | l)
        .collect())
}

/// `zlib.compress(json, level=9)` (the bytes differ from CPython's zlib, the stream is
/// equivalent).
pub fn compress(json: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(json);
    z.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcg_anchor_values_from_a1111() {
        // image_embedding.py's own self-test: reference_random[:8] and the sum of the next
        // 100000 outputs.
        let first: Vec<u8> = Lcg::new().take(8).collect();
        assert_eq!(first, [253, 242, 127, 44, 157, 27, 239, 133]);
        let mut g = Lcg::new();
        let _: Vec<u8> = g.by_ref().take(100).collect();
        let sum: u64 = g.take(100_000).map(u64::from).sum();
        assert_eq!(sum, 12_731_374);
    }
}
