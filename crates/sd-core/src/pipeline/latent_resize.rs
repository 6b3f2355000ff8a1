//! `torch.nn.functional.interpolate` of a latent batch to a size (`align_corners=False`), for
//! the hires fix's latent upscalers: nearest, nearest-exact, bilinear and bicubic (Keys
//! a = −0.75, indices clamped at the borders), and their antialiased forms (torch's `_aa`
//! kernels: PIL's separable filters, a triangle or Keys a = −0.5, widened when shrinking and
//! normalised over the taps inside the picture). Latents are small: this runs on the CPU.

use burn::tensor::{Tensor, TensorData};

use crate::error::{CoreError, Result};

/// How a latent is resized (A1111's `latent_upscale_modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LatentMode {
    /// `mode="nearest"`: source index ⌊i · in/out⌋.
    Nearest,
    /// `mode="nearest-exact"`: source index ⌊(i + ½) · in/out⌋.
    NearestExact,
    /// `mode="bilinear"`, with `antialias`.
    Bilinear { antialias: bool },
    /// `mode="bicubic"`, with `antialias`.
    Bicubic { antialias: bool },
}

/// The taps of one output index: the first input index and the weights from there.
struct Taps {
    first: usize,
    weights: Vec<f32>,
}

/// Every output index's taps along one axis of `input` → `output` samples.
fn taps(mode: LatentMode, input: usize, output: usize) -> Vec<Taps> {
    // torch: `area_pixel_compute_scale` in the input's (f32) arithmetic.
    let scale = input as f32 / output as f32;
    let last = input - 1;
    (0..output)
        .map(|i| match mode {
            LatentMode::Nearest => Taps {
                first: ((i as f32 * scale).floor() as usize).min(last),
                weights: vec![1.0],
            },
            LatentMode::NearestExact => Taps {
                first: (((i as f32 + 0.5) * scale).floor() as usize).min(last),
                weights: vec![1.0],
            },
            LatentMode::Bilinear { antialias: false } => {
                let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
                let i0 = src as usize;
                let l1 = src - i0 as f32;
                if i0 < last {
                    Taps {
                        first: i0,
                        weights: vec![1.0 - l1, l1],
                    }
                } else {
                    Taps {
                        first: i0.min(last),
                        weights: vec![1.0],
                    }
                }
            }
            LatentMode::Bicubic { antialias: false } => cubic_taps(scale, i, input),
            LatentMode::Bilinear { antialias: true } => aa_taps(scale, i, input, 1.0, triangle),
            LatentMode::Bicubic { antialias: true } => aa_taps(scale, i, input, 2.0, keys_aa),
        })
        .collect()
}

/// torch's `upsample_bicubic2d` (align_corners false): four taps around
/// `scale · (i + ½) − ½`, Keys' cubic with a = −0.75, indices clamped into the picture.
fn cubic_taps(scale: f32, i: usize, input: usize) -> Taps {
    const A: f32 = -0.75;
    let src = scale * (i as f32 + 0.5) - 0.5;
    let floor = src.floor();
    let t = src - floor;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let w = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
    // Clamped indices repeat the border pixel: fold their weights onto it.
    let mut weights = vec![0f32; input];
    for (k, wk) in w.iter().enumerate() {
        let index = (floor as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
        weights[index] += wk;
    }
    let first = weights.iter().position(|&w| w != 0.0).unwrap_or(0);
    let end = weights
        .iter()
        .rposition(|&w| w != 0.0)
        .map_or(first + 1, |e| e + 1);
    Taps {
        first,
        weights: weights[first..end].to_vec(),
    }
}

/// The triangle filter of torch's antialiased bilinear (and PIL's).
fn triangle(x: f32) -> f32 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Keys' cubic with a = −0.5, torch's antialiased bicubic (and PIL's).
fn keys_aa(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// torch's `_compute_indices_min_size_weights_aa`: the filter of half-width `support`
/// (widened by the scale when shrinking) centred on `scale · (i + ½)`, over the input indices
/// it covers, normalised to sum 1.
fn aa_taps(scale: f32, i: usize, input: usize, support: f32, filter: fn(f32) -> f32) -> Taps {
    let (support, invscale) = if scale >= 1.0 {
        (support * scale, 1.0 / scale)
    } else {
        (support, 1.0)
    };
    let center = scale * (i as f32 + 0.5);
    let xmin = ((center - support + 0.5) as i64).max(0) as usize;
    let xmax = ((center + support + 0.5) as i64)
        .min(input as i64)
        .max(xmin as i64) as usize;
    let mut weights: Vec<f32> = (xmin..xmax)
        .map(|j| filter((j as f32 - center + 0.5) * invscale))
        .collect();
    let total: f32 = weights.iter().sum();
    if total != 0.0 {
        weights.iter_mut().for_each(|w| *w /= total);
    }
    Taps {
        first: xmin,
        weights,
    }
}

/// `values` (`[planes, height, width]`, row-major) resized along the last axis.
fn resize_rows(values: &[f32], planes: usize, width: usize, taps: &[Taps]) -> Vec<f32> {
    let out_width = taps.len();
    let mut out = vec![0f32; planes * out_width];
    for (row, out_row) in values.chunks(width).zip(out.chunks_mut(out_width)) {
        for (o, t) in out_row.iter_mut().zip(taps) {
            *o = t
                .weights
                .iter()
                .enumerate()
                .map(|(k, w)| row[t.first + k] * w)
                .sum();
        }
    }
    out
}

/// `latents` (`[batch, channels, h, w]`) resized to `[.., height, width]` as torch's
/// `interpolate(size=(height, width), mode, antialias)` does (width first, then height, as
/// its separable kernels).
///
/// # Errors
/// When the latents cannot be read back, or a size is 0.
pub(crate) fn interpolate(
    latents: Tensor<4>,
    height: usize,
    width: usize,
    mode: LatentMode,
) -> Result<Tensor<4>> {
    let [b, c, h, w] = latents.dims();
    if height == 0 || width == 0 || h == 0 || w == 0 {
        return Err(CoreError::InvalidRequest {
            name: "hires size",
            reason: format!("cannot resize a {h}×{w} latent to {height}×{width}"),
        });
    }
    let device = latents.device();
    let values = latents
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| CoreError::InvalidRequest {
            name: "latents",
            reason: format!("cannot read the latents back: {e:?}"),
        })?;
    let planes = b * c;
    // Along the width: every row of every plane.
    let wide = resize_rows(&values, planes * h, w, &taps(mode, w, width));
    // Along the height: transpose each plane, resize its rows, transpose back.
    let column_taps = taps(mode, h, height);
    let mut out = vec![0f32; planes * height * width];
    for p in 0..planes {
        let plane = &wide[p * h * width..(p + 1) * h * width];
        let mut transposed = vec![0f32; h * width];
        for y in 0..h {
            for x in 0..width {
                transposed[x * h + y] = plane[y * width + x];
            }
        }
        let resized = resize_rows(&transposed, width, h, &column_taps);
        let target = &mut out[p * height * width..(p + 1) * height * width];
        for x in 0..width {
            for y in 0..height {
                target[y * width + x] = resized[x * height + y];
            }
        }
    }
    Ok(Tensor::from_data(
        TensorData::new(out, [b, c, height, width]),
        &device,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(mode: LatentMode, input: usize, output: usize) -> Vec<(usize, Vec<f32>)> {
        taps(mode, input, output)
            .into_iter()
            .map(|t| (t.first, t.weights))
            .collect()
    }

    #[test]
    fn every_mode_keeps_a_constant_and_weights_sum_to_one() {
        for mode in [
            LatentMode::Nearest,
            LatentMode::NearestExact,
            LatentMode::Bilinear { antialias: false },
            LatentMode::Bilinear { antialias: true },
            LatentMode::Bicubic { antialias: false },
            LatentMode::Bicubic { antialias: true },
        ] {
            for (input, output) in [(8, 16), (8, 13), (13, 8), (5, 5), (1, 4)] {
                for (_, w) in weights(mode, input, output) {
                    let sum: f32 = w.iter().sum();
                    assert!(
                        (sum - 1.0).abs() < 1e-5,
                        "{mode:?} {input}->{output}: {w:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn doubling_matches_torchs_bilinear_and_nearest_indices() {
        // torch: bilinear 2× of [a, b] → [a, .75a+.25b, .25a+.75b, b].
        let w = weights(LatentMode::Bilinear { antialias: false }, 2, 4);
        assert_eq!(w[0], (0, vec![1.0, 0.0]));
        assert_eq!(w[1], (0, vec![0.75, 0.25]));
        assert_eq!(w[2], (0, vec![0.25, 0.75]));
        assert_eq!(w[3].0, 1);
        let n: Vec<usize> = weights(LatentMode::Nearest, 3, 7)
            .iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(n, [0, 0, 0, 1, 1, 2, 2]);
        let e: Vec<usize> = weights(LatentMode::NearestExact, 3, 7)
            .iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(e, [0, 0, 1, 1, 1, 2, 2]);
    }
}
