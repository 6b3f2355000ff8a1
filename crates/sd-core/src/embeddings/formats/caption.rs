//! The caption A1111's `caption_image_overlay` writes on an image embedding's preview: the
//! title `<name>` top left, and the checkpoint name, `[hash]` and `Nv Ss` along the bottom.
//! A1111 draws them with a TrueType font; this crate has none, so they are drawn in white with
//! a built-in 5×7 bitmap font (capitals, digits, `<>[]()-_.:/+?`; lower case shown as capitals,
//! other characters as `?`), scaled by a whole factor to the widths A1111 aims for (title
//! ≤ 3/4 of the width − 40, each footer ≤ 1/3 − 10, at most 72 px high). The text is
//! decoration: nothing reads it back.

use super::png_pixels::RgbImage;

/// The four texts of the caption.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caption {
    /// Top left, A1111: `<name>`.
    pub title: String,
    /// Bottom left, A1111: the checkpoint's name.
    pub left: String,
    /// Bottom centre, A1111: `[checkpoint short hash]`.
    pub mid: String,
    /// Bottom right, A1111: `{vectors}v {steps}s`.
    pub right: String,
}

impl Caption {
    /// A1111's caption of an embedding: `<name>`, `sd_checkpoint_name`, `[sd_checkpoint]`,
    /// `{n}v {step}s`.
    pub fn for_embedding(e: &crate::embeddings::Embedding) -> Self {
        Self {
            title: format!("<{}>", e.name),
            left: e.sd_checkpoint_name.clone().unwrap_or_default(),
            mid: e
                .sd_checkpoint
                .as_ref()
                .map(|h| format!("[{h}]"))
                .unwrap_or_default(),
            right: format!("{}v {}s", e.vectors.n, e.step.unwrap_or(0)),
        }
    }
}

const PADDING: usize = 10;
const MAX_HEIGHT: usize = 72;

fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        ' ' => [0; 7],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

/// Width of `text` in font cells (6 per character, less the last gap).
fn cells(text: &str) -> usize {
    (text.chars().count() * 6).saturating_sub(1)
}

/// The largest whole scale that keeps `text` within `width` pixels and 72 px high (at least 1).
fn scale_for(text: &str, width: f64) -> usize {
    let c = cells(text).max(1) as f64;
    ((width / c).floor().max(1.0) as usize).min(MAX_HEIGHT / 7)
}

/// Draws `text` with its top-left corner at (x, y), clipped to the image.
fn draw(img: &mut RgbImage, text: &str, x: i64, y: i64, scale: usize) {
    let s = scale as i64;
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as i64 * 6 * s;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        let px = gx + col * s + dx;
                        let py = y + row as i64 * s + dy;
                        if (0..img.width as i64).contains(&px)
                            && (0..img.height as i64).contains(&py)
                        {
                            let at = (py as usize * img.width + px as usize) * 3;
                            img.pixels[at..at + 3].fill(255);
                        }
                    }
                }
            }
        }
    }
}

/// Draws the caption texts (see the module docs for how they differ from A1111's).
pub fn draw_caption(img: &mut RgbImage, caption: &Caption) {
    let (w, h) = (img.width as f64, img.height as f64);
    let pad = PADDING as f64;
    let title_scale = scale_for(&caption.title, w * 0.75 - pad * 4.0);
    draw(
        img,
        &caption.title,
        PADDING as i64,
        PADDING as i64,
        title_scale,
    );
    let footers = [&caption.left, &caption.mid, &caption.right];
    let scale = footers
        .iter()
        .map(|t| scale_for(t, w / 3.0 - pad))
        .min()
        .unwrap_or(1);
    let top = (h - pad) as i64 - 7 * scale as i64;
    let width = |t: &str| (cells(t) * scale) as i64;
    draw(img, &caption.left, PADDING as i64, top, scale);
    draw(
        img,
        &caption.mid,
        (w / 2.0) as i64 - width(&caption.mid) / 2,
        top,
        scale,
    );
    let right_x = img.width as i64 - PADDING as i64 - width(&caption.right);
    draw(img, &caption.right, right_x, top, scale);
}
