//! Inpainting masks as A1111 prepares them (whole-picture mode): blur, resize, the rounded
//! latent mask, the overlay that pastes the untouched pixels back.

use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, RgbImage, imageops};

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
/// passes), optionally inverts, and resizes `mask` to `width × height` (Lanczos).
///
/// The blur uses OpenCV's kernel (`2·⌊2.5·σ + 0.5⌋ + 1` taps, σ = `blur`, mirrored border)
/// in floating point; OpenCV computes 8-bit blurs in fixed point, so edge pixels can differ
/// by one level.
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
        mask = imageops::resize(&mask, width, height, imageops::FilterType::Lanczos3);
    }
    let overlay = GrayImage::from_fn(width, height, |x, y| {
        image::Luma([mask.get_pixel(x, y).0[0].saturating_mul(2)])
    });
    PreparedMask { mask, overlay }
}

/// OpenCV's Gaussian kernel for an odd `size` and `sigma > 0` (`getGaussianKernel`).
fn gaussian_kernel(size: usize, sigma: f64) -> Vec<f64> {
    let centre = (size as f64 - 1.0) / 2.0;
    let mut k: Vec<f64> = (0..size)
        .map(|i| {
            let d = i as f64 - centre;
            (-(d * d) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
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

fn gaussian_blur_x_then_y(mask: &GrayImage, sigma: f64) -> GrayImage {
    let size = 2 * ((2.5 * sigma + 0.5) as usize) + 1;
    let kernel = gaussian_kernel(size, sigma);
    let half = (size / 2) as isize;
    let (w, h) = mask.dimensions();
    let pass = |src: &GrayImage, horizontal: bool| {
        GrayImage::from_fn(w, h, |x, y| {
            let mut acc = 0.0;
            for (j, weight) in kernel.iter().enumerate() {
                let offset = j as isize - half;
                let (sx, sy) = if horizontal {
                    (reflect_101(x as isize + offset, w as isize), y as usize)
                } else {
                    (x as usize, reflect_101(y as isize + offset, h as isize))
                };
                acc += weight * f64::from(src.get_pixel(sx as u32, sy as u32).0[0]);
            }
            image::Luma([acc.round().clamp(0.0, 255.0) as u8])
        })
    };
    pass(&pass(mask, true), false)
}

/// The latent mask A1111 blends with: the mask shrunk to the latent size (bicubic), scaled to
/// 0..1 and rounded to 0 or 1 ("mask_round", on by default). Returns A1111's `mask` (1 where
/// the original is kept): `[1, 1, h/8, w/8]`.
pub fn latent_keep_mask(
    mask: &GrayImage,
    latent_width: u32,
    latent_height: u32,
    device: &Device,
) -> Tensor<4> {
    let small = imageops::resize(
        mask,
        latent_width,
        latent_height,
        imageops::FilterType::CatmullRom,
    );
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
/// (A1111's `apply_overlay` with the whole-picture overlay: original pixels at opacity
/// `255 − overlay`).
pub fn apply_overlay(generated: &RgbImage, original: &RgbImage, overlay: &GrayImage) -> RgbImage {
    RgbImage::from_fn(generated.width(), generated.height(), |x, y| {
        let alpha = f32::from(255 - overlay.get_pixel(x, y).0[0]) / 255.0;
        let g = generated.get_pixel(x, y).0;
        let o = original.get_pixel(x, y).0;
        let mut out = [0u8; 3];
        for c in 0..3 {
            let v = f32::from(o[c]) * alpha + f32::from(g[c]) * (1.0 - alpha);
            out[c] = v.round().clamp(0.0, 255.0) as u8;
        }
        image::Rgb(out)
    })
}

/// A1111's "fill" (`masking.fill`): the masked area painted with ever less blurred copies of
/// the unmasked colours (Gaussian radii 256, 64, 16, 4, 2, 0 composited over each other).
/// PIL's Gaussian blur is an extended box blur; this one is three box passes of the same
/// variance, so colours inside the hole differ slightly from A1111's.
pub fn fill_masked(image: &RgbImage, mask: &GrayImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    // Premultiplied RGBA, opaque where the picture is kept.
    let mut premultiplied = vec![[0f32; 4]; wu * hu];
    for (i, (p, m)) in image.pixels().zip(mask.pixels()).enumerate() {
        let a = f32::from(255 - m.0[0]) / 255.0;
        premultiplied[i] = [
            f32::from(p.0[0]) * a,
            f32::from(p.0[1]) * a,
            f32::from(p.0[2]) * a,
            a,
        ];
    }
    let mut out = vec![[0f32; 4]; wu * hu]; // straight RGBA, starts transparent
    for (radius, repeats) in [
        (256.0, 1),
        (64.0, 1),
        (16.0, 2),
        (4.0, 4),
        (2.0, 2),
        (0.0, 1),
    ] {
        let blurred = if radius > 0.0 {
            box_blur_3(&premultiplied, wu, hu, radius)
        } else {
            premultiplied.clone()
        };
        for _ in 0..repeats {
            for (dst, src) in out.iter_mut().zip(&blurred) {
                let sa = src[3];
                if sa <= 0.0 {
                    continue;
                }
                // `alpha_composite` of the unpremultiplied blur over what is there.
                let da = dst[3];
                let oa = sa + da * (1.0 - sa);
                for c in 0..3 {
                    let s = src[c] / sa;
                    dst[c] = (s * sa + dst[c] * da * (1.0 - sa)) / oa;
                }
                dst[3] = oa;
            }
        }
    }
    RgbImage::from_fn(w, h, |x, y| {
        let p = out[y as usize * wu + x as usize];
        image::Rgb([0, 1, 2].map(|c| p[c].round().clamp(0.0, 255.0) as u8))
    })
}

/// Three box blurs whose combined variance is `sigma²` (per axis), edges clamped.
fn box_blur_3(src: &[[f32; 4]], w: usize, h: usize, sigma: f32) -> Vec<[f32; 4]> {
    // Each box of radius r has variance ((2r+1)² − 1) / 12; three of them sum to σ².
    let r = ((((4.0 * sigma * sigma) + 1.0).sqrt() - 1.0) / 2.0)
        .round()
        .max(1.0) as usize;
    let mut buf = src.to_vec();
    for _ in 0..3 {
        buf = box_pass(&buf, w, h, r, true);
        buf = box_pass(&buf, w, h, r, false);
    }
    buf
}

fn box_pass(src: &[[f32; 4]], w: usize, h: usize, r: usize, horizontal: bool) -> Vec<[f32; 4]> {
    let (n, lines) = if horizontal { (w, h) } else { (h, w) };
    let at = |line: usize, i: usize| {
        if horizontal {
            line * w + i
        } else {
            i * w + line
        }
    };
    let mut out = vec![[0f32; 4]; w * h];
    let norm = 1.0 / (2 * r + 1) as f32;
    for line in 0..lines {
        let mut acc = [0f32; 4];
        let clamp = |i: isize| i.clamp(0, n as isize - 1) as usize;
        for k in -(r as isize)..=(r as isize) {
            let v = src[at(line, clamp(k))];
            (0..4).for_each(|c| acc[c] += v[c]);
        }
        for i in 0..n {
            out[at(line, i)] = acc.map(|v| v * norm);
            let add = src[at(line, clamp(i as isize + r as isize + 1))];
            let sub = src[at(line, clamp(i as isize - r as isize))];
            (0..4).for_each(|c| acc[c] += add[c] - sub[c]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opencv_kernel_size_and_normalisation() {
        // Blur 4 → 21 taps, as A1111 computes `2 * int(2.5 * 4 + 0.5) + 1`.
        let k = gaussian_kernel(21, 4.0);
        assert_eq!(k.len(), 21);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(k[10] > k[9] && (k[0] - k[20]).abs() < 1e-15);
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
        // Kept pixels are unchanged, hole pixels take the only colour there is.
        assert_eq!(filled.get_pixel(3, 3).0, [200, 10, 10]);
        assert_eq!(filled.get_pixel(30, 30).0, [200, 10, 10]);
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
