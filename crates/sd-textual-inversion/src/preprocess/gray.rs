//! Pillow's colour conversions that the focal-point search depends on: `convert("L")` (for
//! corner detection) and `convert("1")` (Floyd–Steinberg dithered bilevel, for entropy).

use image::{GrayImage, RgbImage};

/// Pillow's `rgb2l`: ITU-R 601-2 luma in 16-bit fixed point, rounded.
pub fn luma(p: [u8; 3]) -> u8 {
    let [r, g, b] = p.map(u32::from);
    ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
}

/// `image.convert("L")`.
pub fn to_luma(src: &RgbImage) -> GrayImage {
    GrayImage::from_fn(src.width(), src.height(), |x, y| {
        image::Luma([luma(src.get_pixel(x, y).0)])
    })
}

/// `image.convert("1")` of an RGB picture: Pillow's `tobilevel` with its integer error
/// diffusion, reading luma as `L(rgb) / 1000` (not the rounded `convert("L")`). Returns
/// `true` for white.
pub fn to_bilevel(src: &RgbImage) -> Vec<bool> {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let raw = src.as_raw();
    let mut out = vec![false; w * h];
    let mut errors = vec![0i32; w + 1];
    for y in 0..h {
        let (mut l, mut l0, mut l1) = (0i32, 0i32, 0i32);
        for x in 0..w {
            let p = &raw[(y * w + x) * 3..(y * w + x) * 3 + 3];
            let luma1000 = i32::from(p[0]) * 299 + i32::from(p[1]) * 587 + i32::from(p[2]) * 114;
            // C integer division truncates toward zero, as Rust's does.
            l = (luma1000 / 1000 + (l + errors[x + 1]) / 16).clamp(0, 255);
            let white = l > 128;
            out[y * w + x] = white;
            // Propagate the error with Floyd–Steinberg weights 7/16, 3/16, 5/16, 1/16,
            // in Pillow's running form.
            l -= if white { 255 } else { 0 };
            let l2 = l;
            let d2 = l + l;
            l += d2;
            errors[x] = l + l0;
            l += d2;
            l0 = l + l1;
            l1 = l2;
            l += d2;
        }
        errors[w] = l0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_of_primaries() {
        assert_eq!(luma([255, 255, 255]), 255);
        assert_eq!(luma([0, 0, 0]), 0);
        // Pillow: Image.new("RGB", (1, 1), (255, 0, 0)).convert("L").getpixel((0, 0)) == 76
        assert_eq!(luma([255, 0, 0]), 76);
    }
}
