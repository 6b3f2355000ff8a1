//! Center crop (A1111's `images.resize_image` mode 1, "Crop and resize") and the Pillow
//! `crop`/`paste` semantics it and the other steps rely on.

use image::RgbImage;

use super::resample::{Filter, resize};

/// A box `[left, top, right, bottom)` in pixel coordinates, as Pillow's `crop` takes it; may
/// reach outside the picture.
pub type CropBox = [i64; 4];

/// Pillow's `image.crop(box)`: pixels outside the picture come out black.
pub fn crop(src: &RgbImage, b: CropBox) -> RgbImage {
    let w = u32::try_from((b[2] - b[0]).max(0)).unwrap_or(0);
    let h = u32::try_from((b[3] - b[1]).max(0)).unwrap_or(0);
    let mut out = RgbImage::new(w, h);
    paste(&mut out, src, -b[0], -b[1]);
    out
}

/// Pillow's `dst.paste(src, (x, y))`: copies the overlapping part, clipping at every edge.
pub fn paste(dst: &mut RgbImage, src: &RgbImage, x: i64, y: i64) {
    let (dw, dh) = (i64::from(dst.width()), i64::from(dst.height()));
    let (sw, sh) = (i64::from(src.width()), i64::from(src.height()));
    let x0 = x.max(0);
    let x1 = (x + sw).min(dw);
    let y0 = y.max(0);
    let y1 = (y + sh).min(dh);
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let len = ((x1 - x0) * 3) as usize;
    for dy in y0..y1 {
        let sy = dy - y;
        let s = ((sy * sw + (x0 - x)) * 3) as usize;
        let d = ((dy * dw + x0) * 3) as usize;
        let src_row = &src.as_raw()[s..s + len];
        let dst_raw: &mut [u8] = dst;
        dst_raw[d..d + len].copy_from_slice(src_row);
    }
}

/// The size A1111's "Crop and resize" scales a `src_w × src_h` picture to before cutting the
/// middle `width × height` out of it: the smallest size that covers the target, keeping the
/// aspect ratio, with Python's floor divisions. Never zero (Pillow would refuse a zero size).
pub fn cover_size(src_w: u32, src_h: u32, width: u32, height: u32) -> (u32, u32) {
    let ratio = f64::from(width) / f64::from(height);
    let src_ratio = f64::from(src_w) / f64::from(src_h);
    let w = if ratio > src_ratio {
        u64::from(width)
    } else {
        u64::from(src_w) * u64::from(height) / u64::from(src_h)
    };
    let h = if ratio <= src_ratio {
        u64::from(height)
    } else {
        u64::from(src_h) * u64::from(width) / u64::from(src_w)
    };
    (
        u32::try_from(w.max(1)).unwrap_or(u32::MAX),
        u32::try_from(h.max(1)).unwrap_or(u32::MAX),
    )
}

/// `images.resize_image(1, im, width, height)` with no upscaler: Lanczos-resize to cover the
/// target, then paste centred on a black `width × height` canvas (cutting the overflow).
pub fn center_crop(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (src_w, src_h) = cover_size(src.width(), src.height(), width, height);
    let resized = resize(src, src_w, src_h, Filter::Lanczos);
    let mut out = RgbImage::new(width, height);
    let x = i64::from(width / 2) - i64::from(src_w / 2);
    let y = i64::from(height / 2) - i64::from(src_h / 2);
    paste(&mut out, &resized, x, y);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_outside_is_black() {
        let src = RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]));
        let out = crop(&src, [-1, 2, 3, 6]);
        assert_eq!(out.dimensions(), (4, 4));
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(1, 0).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(1, 2).0, [0, 0, 0]);
    }

    #[test]
    fn cover_size_matches_a1111() {
        // 96×64 to 32×32: src_ratio 1.5 > 1 → height 32, width 96·32//64 = 48.
        assert_eq!(cover_size(96, 64, 32, 32), (48, 32));
        assert_eq!(cover_size(40, 120, 32, 32), (32, 96));
        assert_eq!(cover_size(1, 20000, 512, 512), (512, 10_240_000));
        assert_eq!(cover_size(20000, 1, 512, 512), (10_240_000, 512));
    }
}
