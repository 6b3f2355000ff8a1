//! Inpainting masks as A1111 prepares them (whole-picture mode): blur, resize, the rounded
//! latent mask, the overlay that pastes the untouched pixels back.

use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, RgbImage, imageops};

use super::pil_resize::{PilFilter, resize_gray};

/// A mask made ready for one run at `width × height`.
#[derive(Debug, Clone)]
pub struct PreparedMask {
    /// The blurred mask at the picture's size (255 = repaint): A1111's `image_mask` after
    /// `resize_image`. Source of the latent mask and of inpainting models' mask channel.
    pub mask: GrayImage,
    /// The overlay's opacity mask: the blurred mask doubled and clipped (A1111's
    /// `mask_for_overlay` in whole-picture mode).
    pub overlay: GrayImage,
}

/// Blurs (`blur` pixels, A1111's "Mask blur", along x then y as its two `cv2.GaussianBlur`
/// passes), optionally inverts, and resizes `mask` to `width × height` (PIL's `LANCZOS`, as
/// A1111's `resize_image`; exact).
///
/// The blur is OpenCV's own for 8-bit pictures (`2·⌊2.5·σ + 0.5⌋ + 1` taps, σ = `blur`,
/// mirrored border): its bit-exact kernel in 8-bit fixed point and integer sums, each of
/// A1111's two calls rounded to 8 bits — identical to `cv2.GaussianBlur` (checked against
/// OpenCV 4.10 in `tests/mask_blur.rs`).
pub fn prepare_mask(
    mask: &GrayImage,
    invert: bool,
    blur: u32,
    width: u32,
    height: u32,
) -> PreparedMask {
    let mut mask = mask.clone();
    if invert {
        imageops::invert(&mut mask);
    }
    if blur > 0 {
        mask = gaussian_blur_x_then_y(&mask, blur as f64);
    }
    if mask.dimensions() != (width, height) {
        mask = resize_gray(&mask, width, height, PilFilter::Lanczos);
    }
    let overlay = GrayImage::from_fn(width, height, |x, y| {
        image::Luma([mask.get_pixel(x, y).0[0].saturating_mul(2)])
    });
    PreparedMask { mask, overlay }
}

/// OpenCV's kernel for 8-bit Gaussian blurs, odd `size`, `sigma > 0`: the taps of
/// `getGaussianKernelBitExact` (`exp(−x²/(2σ²))`, normalised) turned into 8-bit fixed point
/// by `getGaussianKernelFixedPoint_ED` (rounded half to even from the outside in, each
/// rounding error carried to the next tap, the centre taking what makes the sum 256).
fn opencv_kernel_u8(size: usize, sigma: f64) -> Vec<u32> {
    let half = (size - 1) / 2;
    let scale = -0.125 / (sigma * sigma);
    // x runs over 2·(i − half): exp(x² · (−1/(8σ²))) = exp(−d²/(2σ²)).
    let values: Vec<f64> = (0..half)
        .map(|i| {
            let x = 1.0 - size as f64 + 2.0 * i as f64;
            (x * x * scale).exp()
        })
        .collect();
    let sum = values.iter().sum::<f64>() * 2.0 + 1.0;
    let inverse = 1.0 / sum;
    let mut kernel = vec![0u32; size];
    let mut error = 0.0;
    let mut total = 0u32;
    for (i, v) in values.iter().enumerate() {
        let adjusted = v * inverse * 256.0 + error;
        let rounded = adjusted.round_ties_even();
        error = adjusted - rounded;
        let tap = rounded.max(0.0) as u32;
        kernel[i] = tap;
        kernel[size - 1 - i] = tap;
        total += 2 * tap;
    }
    kernel[half] = 256u32.saturating_sub(total);
    kernel
}

/// OpenCV's default border (`BORDER_REFLECT_101`): `dcb|abcd|cba` without repeating the edge.
fn reflect_101(i: isize, n: isize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// A1111's two `cv2.GaussianBlur` calls, `(k, 1)` then `(1, k)`: each sums the 8-bit
/// pixels times the fixed-point taps in integers and rounds to 8 bits (`(Σ + 128) >> 8`,
/// OpenCV's fixed-point rounding with the other axis's one-tap kernel of 256).
fn gaussian_blur_x_then_y(mask: &GrayImage, sigma: f64) -> GrayImage {
    let size = 2 * ((2.5 * sigma + 0.5) as usize) + 1;
    let kernel = opencv_kernel_u8(size, sigma);
    let half = (size / 2) as isize;
    let (w, h) = mask.dimensions();
    let pass = |src: &GrayImage, horizontal: bool| {
        GrayImage::from_fn(w, h, |x, y| {
            let mut acc = 0u32;
            for (j, tap) in kernel.iter().enumerate() {
                let offset = j as isize - half;
                let (sx, sy) = if horizontal {
                    (reflect_101(x as isize + offset, w as isize), y as usize)
                } else {
                    (x as usize, reflect_101(y as isize + offset, h as isize))
                };
                acc += tap * u32::from(src.get_pixel(sx as u32, sy as u32).0[0]);
            }
            image::Luma([((acc + 128) >> 8).min(255) as u8])
        })
    };
    pass(&pass(mask, true), false)
}

/// The latent mask A1111 blends with: the mask shrunk to the latent size (PIL's `BICUBIC`,
/// the default of `Image.resize`, reproduced exactly: a level off near 127.5 would flip a
/// latent pixel), scaled to 0..1 and rounded to 0 or 1 ("mask_round", on by default).
/// Returns A1111's `mask` (1 where the original is kept): `[1, 1, h/8, w/8]`.
pub fn latent_keep_mask(
    mask: &GrayImage,
    latent_width: u32,
    latent_height: u32,
    device: &Device,
) -> Tensor<4> {
    let small = resize_gray(mask, latent_width, latent_height, PilFilter::Bicubic);
    let keep: Vec<f32> = small
        .pixels()
        .map(|p| 1.0 - round_half_even(f32::from(p.0[0]) / 255.0))
        .collect();
    Tensor::from_data(
        TensorData::new(keep, [1, 1, latent_height as usize, latent_width as usize]),
        device,
    )
}

/// The mask channel of 9-channel inpainting models: the mask rounded to 0/1 (1 = repaint),
/// then shrunk to the latent size by nearest neighbour (`F.interpolate`'s default):
/// `[1, 1, h/8, w/8]`, plus the full-size 0/1 mask `[1, 1, h, w]` that blanks the image.
pub fn inpainting_masks(
    mask: &GrayImage,
    latent_width: u32,
    latent_height: u32,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let (w, h) = mask.dimensions();
    let full: Vec<f32> = mask
        .pixels()
        .map(|p| round_half_even(f32::from(p.0[0]) / 255.0))
        .collect();
    // torch's nearest: source index = floor(dst · in / out).
    let mut small = Vec::with_capacity((latent_width * latent_height) as usize);
    for y in 0..latent_height {
        let sy = (y as u64 * u64::from(h) / u64::from(latent_height)) as u32;
        for x in 0..latent_width {
            let sx = (x as u64 * u64::from(w) / u64::from(latent_width)) as u32;
            small.push(full[(sy * w + sx) as usize]);
        }
    }
    (
        Tensor::from_data(
            TensorData::new(small, [1, 1, latent_height as usize, latent_width as usize]),
            device,
        ),
        Tensor::from_data(
            TensorData::new(full, [1, 1, h as usize, w as usize]),
            device,
        ),
    )
}

/// numpy's `around` / torch's `round`: halves go to the even neighbour.
fn round_half_even(v: f32) -> f32 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - v.signum()
    } else {
        r
    }
}

/// Pastes the original picture back over the generated one where the overlay mask is dark
/// (A1111's `apply_overlay` with the whole-picture overlay), with PIL's 8-bit arithmetic:
/// the original is pasted into an empty "RGBa" picture through `255 − overlay`, converted to
/// "RGBA" and alpha-composited over the generated picture.
pub fn apply_overlay(generated: &RgbImage, original: &RgbImage, overlay: &GrayImage) -> RgbImage {
    let (w, h) = generated.dimensions();
    let inverted: Vec<u8> = overlay.pixels().map(|p| 255 - p.0[0]).collect();
    let mut pasted = vec![[0u8; 4]; (w * h) as usize];
    paste_with_mask(&mut pasted, &rgb_to_premultiplied(original), &inverted);
    let layer: Vec<Rgba> = pasted.iter().map(unpremultiply).collect();
    let base: Vec<Rgba> = generated
        .pixels()
        .map(|p| [p.0[0], p.0[1], p.0[2], 255])
        .collect();
    to_rgb(w, h, &alpha_composite(&base, &layer))
}

/// A1111's "fill" (`masking.fill`): the masked area painted with ever less blurred copies of
/// the unmasked colours (PIL Gaussian radii 256, 64, 16, 4, 2, 0 alpha-composited over each
/// other). Every step is PIL's own 8-bit arithmetic (premultiplied "RGBa" paste, the
/// extended box blur behind `ImageFilter.GaussianBlur`, `alpha_composite`), so the result
/// is A1111's to the last bit.
pub fn fill_masked(image: &RgbImage, mask: &GrayImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let inverted: Vec<u8> = mask.pixels().map(|p| 255 - p.0[0]).collect();
    let mut masked = vec![[0u8; 4]; (w * h) as usize];
    paste_with_mask(&mut masked, &rgb_to_premultiplied(image), &inverted);
    let mut out = vec![[0u8; 4]; (w * h) as usize]; // `Image.new('RGBA')`: transparent black
    for (radius, repeats) in [
        (256.0, 1),
        (64.0, 1),
        (16.0, 2),
        (4.0, 4),
        (2.0, 2),
        (0.0, 1),
    ] {
        let blurred = if radius > 0.0 {
            gaussian_blur(&masked, w as usize, h as usize, radius)
        } else {
            masked.clone()
        };
        let layer: Vec<Rgba> = blurred.iter().map(unpremultiply).collect();
        for _ in 0..repeats {
            out = alpha_composite(&out, &layer);
        }
    }
    to_rgb(w, h, &out)
}

/// One 8-bit RGBA (or premultiplied RGBa) pixel.
type Rgba = [u8; 4];

/// PIL's `SHIFTFORDIV255`: `a / 255` for the sums its macros form.
fn shift_div255(a: u32) -> u32 {
    ((a >> 8) + a) >> 8
}

/// PIL's `DIV255`: rounded `a / 255`.
fn div255(a: u32) -> u8 {
    shift_div255(a + 128) as u8
}

/// `convert("RGBA").convert("RGBa")` of an RGB picture: alpha 255, channels × 255 / 255.
fn rgb_to_premultiplied(image: &RgbImage) -> Vec<Rgba> {
    image
        .pixels()
        .map(|p| {
            let c = |v: u8| div255(u32::from(v) * 255);
            [c(p.0[0]), c(p.0[1]), c(p.0[2]), 255]
        })
        .collect()
}

/// `paste(src, mask=L)`: every band blended as `BLEND(m, out, in)`.
fn paste_with_mask(out: &mut [Rgba], src: &[Rgba], mask: &[u8]) {
    for ((o, s), &m) in out.iter_mut().zip(src).zip(mask) {
        let m = u32::from(m);
        for c in 0..4 {
            o[c] = div255(u32::from(o[c]) * (255 - m) + u32::from(s[c]) * m);
        }
    }
}

/// "RGBa" → "RGBA" (`rgba2rgbA`): `255 · c / a`, truncated and clipped.
fn unpremultiply(p: &Rgba) -> Rgba {
    let a = u32::from(p[3]);
    if a == 0 || a == 255 {
        return *p;
    }
    let c = |v: u8| (255 * u32::from(v) / a).min(255) as u8;
    [c(p[0]), c(p[1]), c(p[2]), p[3]]
}

/// `Image.alpha_composite(dst, src)` (`libImaging/AlphaComposite.c`, 7 extra bits).
fn alpha_composite(dst: &[Rgba], src: &[Rgba]) -> Vec<Rgba> {
    const PRECISION_BITS: u32 = 7;
    dst.iter()
        .zip(src)
        .map(|(d, s)| {
            if s[3] == 0 {
                return *d;
            }
            let (sa, da) = (u32::from(s[3]), u32::from(d[3]));
            let blend = da * (255 - sa);
            let outa255 = sa * 255 + blend;
            let coef1 = sa * 255 * 255 * (1 << PRECISION_BITS) / outa255;
            let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
            let c = |i: usize| {
                let tmp = u32::from(s[i]) * coef1 + u32::from(d[i]) * coef2;
                (shift_div255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
            };
            [c(0), c(1), c(2), shift_div255(outa255 + 0x80) as u8]
        })
        .collect()
}

fn to_rgb(w: u32, h: u32, pixels: &[Rgba]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let p = pixels[(y * w + x) as usize];
        image::Rgb([p[0], p[1], p[2]])
    })
}

/// `ImageFilter.GaussianBlur(radius)` (`libImaging/BoxBlur.c`): three passes of an extended
/// box blur along x, then three along y, each in 8 bits.
fn gaussian_blur(src: &[Rgba], w: usize, h: usize, radius: f32) -> Vec<Rgba> {
    let box_radius = gaussian_blur_radius(radius, 3);
    let mut img = src.to_vec();
    let mut line = Vec::new();
    for _ in 0..3 {
        for y in 0..h {
            line.clear();
            line.extend_from_slice(&img[y * w..(y + 1) * w]);
            box_blur_line(&line, &mut img[y * w..(y + 1) * w], box_radius);
        }
    }
    let mut column = vec![[0u8; 4]; h];
    let mut blurred = vec![[0u8; 4]; h];
    for x in 0..w {
        for y in 0..h {
            column[y] = img[y * w + x];
        }
        for _ in 0..3 {
            box_blur_line(&column, &mut blurred, box_radius);
            column.copy_from_slice(&blurred);
        }
        for y in 0..h {
            img[y * w + x] = column[y];
        }
    }
    img
}

/// `_gaussian_blur_radius`: the extended box radius whose `passes` passes have the variance
/// of a Gaussian of σ = `radius` (Gwosdek et al. 2011), in C's float / double mix.
fn gaussian_blur_radius(radius: f32, passes: u32) -> f32 {
    let sigma2 = radius * radius / passes as f32;
    let big_l = (12.0 * f64::from(sigma2) + 1.0).sqrt() as f32;
    let l = ((f64::from(big_l) - 1.0) / 2.0).floor() as f32;
    let mut a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// `ImagingLineBoxBlur32`: one line, edges extended, the fractional radius as weight `fw` of
/// the two pixels just outside the integer box; 24-bit fixed point with C's u32 wrapping.
fn box_blur_line(line_in: &[Rgba], line_out: &mut [Rgba], float_radius: f32) {
    let radius = float_radius as usize;
    let ww = (16_777_216.0f32 / (float_radius * 2.0 + 1.0)) as u32;
    let fw = ((1u32 << 24).wrapping_sub((radius as u32 * 2 + 1).wrapping_mul(ww))) / 2;
    let n = line_in.len();
    let lastx = n - 1;
    let edge_a = (radius + 1).min(n);
    let edge_b = n.saturating_sub(radius + 1);
    let px = |i: usize, c: usize| u32::from(line_in[i][c]);
    let mut acc = [0u32; 4];
    for (c, a) in acc.iter_mut().enumerate() {
        *a = px(0, c) * (radius as u32 + 1);
        for x in 0..edge_a.saturating_sub(1) {
            *a = a.wrapping_add(px(x, c));
        }
        *a = a.wrapping_add(px(lastx, c).wrapping_mul((radius + 1 - edge_a) as u32));
    }
    let mut step = |x: usize, subtract: usize, add: usize, left: usize, right: usize| {
        for c in 0..4 {
            acc[c] = acc[c]
                .wrapping_add(px(add, c))
                .wrapping_sub(px(subtract, c));
            let bulk = acc[c]
                .wrapping_mul(ww)
                .wrapping_add((px(left, c) + px(right, c)).wrapping_mul(fw));
            line_out[x][c] = (bulk.wrapping_add(1 << 23) >> 24) as u8;
        }
    };
    if edge_a <= edge_b {
        for x in 0..edge_a {
            step(x, 0, x + radius, 0, x + radius + 1);
        }
        for x in edge_a..edge_b {
            step(
                x,
                x - radius - 1,
                x + radius,
                x - radius - 1,
                x + radius + 1,
            );
        }
        for x in edge_b..=lastx {
            step(x, x - radius - 1, lastx, x - radius - 1, lastx);
        }
    } else {
        for x in 0..edge_b {
            step(x, 0, x + radius, 0, x + radius + 1);
        }
        for x in edge_b..edge_a {
            step(x, 0, lastx, 0, lastx);
        }
        for x in edge_a..=lastx {
            step(x, x - radius - 1, lastx, x - radius - 1, lastx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opencv_kernel_size_and_normalisation() {
        // Blur 4 → 21 taps, as A1111 computes `2 * int(2.5 * 4 + 0.5) + 1`.
        let k = opencv_kernel_u8(21, 4.0);
        assert_eq!(k.len(), 21);
        assert_eq!(k.iter().sum::<u32>(), 256);
        assert!(k[10] >= k[9] && k[0] == k[20]);
        // One tap: the identity.
        assert_eq!(opencv_kernel_u8(1, 1.0), vec![256]);
    }

    #[test]
    fn reflect_101_mirrors_without_repeating_the_edge() {
        let got: Vec<usize> = (-3..7).map(|i| reflect_101(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn fill_paints_the_hole_with_the_surrounding_colour() {
        let image = RgbImage::from_fn(32, 32, |x, _| {
            if x < 16 {
                image::Rgb([200, 10, 10])
            } else {
                image::Rgb([0, 0, 0])
            }
        });
        let mask = GrayImage::from_fn(32, 32, |x, _| image::Luma([if x < 16 { 0 } else { 255 }]));
        let filled = fill_masked(&image, &mask);
        // Kept pixels are unchanged, hole pixels take the only colour there is, up to the
        // level PIL's 8-bit premultiplied arithmetic loses (`masking.fill` with Pillow 13
        // gives exactly these values).
        assert_eq!(filled.get_pixel(3, 3).0, [200, 10, 10]);
        assert_eq!(filled.get_pixel(16, 0).0, [199, 10, 10]);
        assert_eq!(filled.get_pixel(30, 30).0, [200, 9, 9]);
        assert_eq!(filled.get_pixel(31, 0).0, [200, 9, 9]);
    }

    #[test]
    fn rounding_is_half_to_even() {
        assert_eq!(round_half_even(0.5), 0.0);
        assert_eq!(round_half_even(1.5), 2.0);
        assert_eq!(round_half_even(0.51), 1.0);
    }

    #[test]
    fn a_blurred_hard_edge_stays_monotone_and_symmetric() {
        let mask = GrayImage::from_fn(32, 4, |x, _| image::Luma([if x < 16 { 0 } else { 255 }]));
        let blurred = prepare_mask(&mask, false, 4, 32, 4).mask;
        let row: Vec<u8> = (0..32).map(|x| blurred.get_pixel(x, 0).0[0]).collect();
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert_eq!(u16::from(row[15]) + u16::from(row[16]), 255, "{row:?}");
    }
}
