//! PIL's `Image.resize` for 8-bit pictures, value for value: A1111 resizes masks and init
//! pictures with PIL (`LANCZOS` in `resize_image`, the default `BICUBIC` for the latent mask),
//! and the latent mask is rounded to 0/1 afterwards, so a level off near 127.5 flips a latent
//! pixel. The `image` crate's Catmull-Rom / Lanczos3 differ from PIL by a level here and there.
//!
//! A port of Pillow's `libImaging/Resample.c`: separable, horizontal pass first (rounded to
//! 8 bits), then vertical; the filter's support grows with the downscale factor
//! (antialiasing); coefficients are normalised per output pixel and turned into 22-bit fixed
//! point; sums start at one half and are clipped to 0..255.

use image::{GrayImage, RgbImage};

/// PIL's resampling filters (the ones A1111's code paths use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PilFilter {
    /// `Image.BILINEAR` (triangle, support 1).
    Bilinear,
    /// `Image.BICUBIC` (Keys cubic with a = −0.5, support 2); PIL's default for `resize`.
    Bicubic,
    /// `Image.LANCZOS` (Lanczos-3, support 3).
    Lanczos,
}

impl PilFilter {
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

/// Fixed-point fraction bits of the 8-bit path (`32 − 8 − 2`).
const PRECISION_BITS: u32 = 22;

/// The taps of one output pixel: first source index and fixed-point weights.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole source range.
fn coefficients(in_size: usize, out_size: usize, filter: PilFilter) -> Vec<Taps> {
    // PIL's box is floats (0, in_size); `scale` is computed in double from their difference.
    let scale = f64::from(in_size as f32) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C's `(int)` truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let count = (xmax - xmin).max(0) as usize;
            let mut k: Vec<f64> = (0..count)
                .map(|x| filter.weight(((x as i64 + xmin) as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = k.iter().sum();
            if total != 0.0 {
                k.iter_mut().for_each(|w| *w /= total);
            }
            let one = f64::from(1u32 << PRECISION_BITS);
            let weights = k
                .iter()
                .map(|&w| {
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            Taps {
                start: xmin as usize,
                weights,
            }
        })
        .collect()
}

/// `clip8`: drop the fraction bits (arithmetic shift) and clamp.
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples interleaved 8-bit pixels (`channels` per pixel) from `w × h` to `out_w × out_h`.
fn resample(
    src: &[u8],
    (w, h): (usize, usize),
    channels: usize,
    (out_w, out_h): (usize, usize),
    filter: PilFilter,
) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    let mut data = src.to_vec();
    let mut width = w;
    if out_w != w {
        let taps = coefficients(w, out_w, filter);
        let mut out = vec![0u8; out_w * h * channels];
        for y in 0..h {
            for (xx, t) in taps.iter().enumerate() {
                for c in 0..channels {
                    let mut sum = half;
                    for (i, &k) in t.weights.iter().enumerate() {
                        sum += i32::from(data[(y * width + t.start + i) * channels + c]) * k;
                    }
                    out[(y * out_w + xx) * channels + c] = clip8(sum);
                }
            }
        }
        data = out;
        width = out_w;
    }
    if out_h != h {
        let taps = coefficients(h, out_h, filter);
        let mut out = vec![0u8; width * out_h * channels];
        for (yy, t) in taps.iter().enumerate() {
            for x in 0..width {
                for c in 0..channels {
                    let mut sum = half;
                    for (i, &k) in t.weights.iter().enumerate() {
                        sum += i32::from(data[((t.start + i) * width + x) * channels + c]) * k;
                    }
                    out[(yy * width + x) * channels + c] = clip8(sum);
                }
            }
        }
        data = out;
    }
    data
}

/// `Image.resize((width, height), filter)` of an "L" picture (a copy at the same size).
pub fn resize_gray(image: &GrayImage, width: u32, height: u32, filter: PilFilter) -> GrayImage {
    let (w, h) = image.dimensions();
    let data = resample(
        image.as_raw(),
        (w as usize, h as usize),
        1,
        (width as usize, height as usize),
        filter,
    );
    GrayImage::from_raw(width, height, data).unwrap_or_else(|| GrayImage::new(width, height))
}

/// `Image.resize((width, height), Image.NEAREST)` of an "RGB" picture: PIL's
/// `ImagingScaleAffine`, each output pixel from input `⌊x₀⌋` where `x₀` starts at `½ · in /
/// out` and grows by `in / out` per pixel (accumulated in f64, as PIL does, so a position
/// that is an integer in exact arithmetic may land just below it).
pub fn resize_rgb_nearest(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return RgbImage::new(width, height);
    }
    let positions = |input: u32, output: u32| -> Vec<u32> {
        let step = f64::from(input) / f64::from(output.max(1));
        let mut at = step * 0.5;
        (0..output)
            .map(|_| {
                let index = (at as u32).min(input - 1);
                at += step;
                index
            })
            .collect()
    };
    let (xs, ys) = (positions(w, width), positions(h, height));
    RgbImage::from_fn(width, height, |x, y| {
        *image.get_pixel(xs[x as usize], ys[y as usize])
    })
}

/// `Image.resize((width, height), filter)` of an "RGB" picture (a copy at the same size).
pub fn resize_rgb(image: &RgbImage, width: u32, height: u32, filter: PilFilter) -> RgbImage {
    let (w, h) = image.dimensions();
    let data = resample(
        image.as_raw(),
        (w as usize, h as usize),
        3,
        (width as usize, height as usize),
        filter,
    );
    RgbImage::from_raw(width, height, data).unwrap_or_else(|| RgbImage::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy_and_flat_stays_flat() {
        let flat = GrayImage::from_pixel(13, 7, image::Luma([77]));
        for filter in [PilFilter::Bilinear, PilFilter::Bicubic, PilFilter::Lanczos] {
            assert_eq!(resize_gray(&flat, 13, 7, filter), flat);
            let small = resize_gray(&flat, 5, 3, filter);
            assert!(small.pixels().all(|p| p.0[0] == 77), "{filter:?}");
            let big = resize_gray(&flat, 40, 9, filter);
            assert!(big.pixels().all(|p| p.0[0] == 77), "{filter:?}");
        }
    }
}
