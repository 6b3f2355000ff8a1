//! The Winograd convolution against the direct sum in f64, on small odd shapes (every
//! edge case of the tiling) and on SD's real shapes and weight scales.

use super::*;
use crate::cpu::pseudo_random;

/// Output `(n, k, y, x)` of a stride-1, padding-1 3×3 convolution, in f64.
fn direct(
    x: &[f32],
    shape: Conv3x3Shape,
    weight: &[f32],
    orientation: KernelOrientation,
    bias: Option<&[f32]>,
    [n, k, y, x_]: [usize; 4],
) -> (f64, f32) {
    let (inputs, outputs) = (shape.in_channels, shape.out_channels);
    let (height, width) = (shape.height, shape.width);
    let mut sum = bias.map_or(0.0, |b| f64::from(b[k]));
    let mut sum32 = bias.map_or(0.0, |b| b[k]);
    for c in 0..inputs {
        for i in 0..3 {
            for j in 0..3 {
                let (Some(row), Some(col)) = ((y + i).checked_sub(1), (x_ + j).checked_sub(1))
                else {
                    continue;
                };
                if row >= height || col >= width {
                    continue;
                }
                let w = match orientation {
                    KernelOrientation::Forward => weight[(k * inputs + c) * 9 + i * 3 + j],
                    KernelOrientation::Transposed => {
                        weight[(c * outputs + k) * 9 + (2 - i) * 3 + (2 - j)]
                    }
                };
                let value = x[((n * inputs + c) * height + row) * width + col];
                sum += f64::from(w) * f64::from(value);
                sum32 = w.mul_add(value, sum32);
            }
        }
    }
    (sum, sum32)
}

/// The largest error of `conv3x3` against [`direct`] over `positions` output elements
/// (every element when `None`), relative to the outputs' root mean square; and the same for
/// the direct sum in f32 (one fused multiply-add per term, in order).
fn relative_error(
    shape: Conv3x3Shape,
    orientation: KernelOrientation,
    positions: Option<usize>,
    seed: u32,
) -> (f64, f64) {
    let Conv3x3Shape {
        batch,
        in_channels,
        out_channels,
        height,
        width,
    } = shape;
    // Inputs of unit scale (a normalised activation), weights at PyTorch's default
    // initialisation scale for `in · 9` fan-in, biases small.
    let x = pseudo_random(batch * in_channels * height * width, seed, -1.7, 1.7);
    let fan_in = match orientation {
        KernelOrientation::Forward => in_channels,
        KernelOrientation::Transposed => out_channels,
    };
    let scale = (1.0 / (9.0 * fan_in as f32)).sqrt();
    let weight = pseudo_random(in_channels * out_channels * 9, seed + 1, -scale, scale);
    let bias = pseudo_random(out_channels, seed + 2, -0.1, 0.1);
    let out = conv3x3(&x, shape, &weight, orientation, Some(&bias));
    assert_eq!(out.len(), batch * out_channels * height * width);
    let total = out.len();
    let picks: Vec<usize> = match positions {
        None => (0..total).collect(),
        Some(count) => pseudo_random(count, seed + 3, 0.0, 1.0)
            .into_iter()
            .map(|u| ((u * total as f32) as usize).min(total - 1))
            .collect(),
    };
    let (mut worst, mut worst32, mut square_sum) = (0f64, 0f64, 0f64);
    for &index in &picks {
        let place = [
            index / (out_channels * height * width),
            index / (height * width) % out_channels,
            index / width % height,
            index % width,
        ];
        let (expected, direct32) = direct(&x, shape, &weight, orientation, Some(&bias), place);
        worst = worst.max((f64::from(out[index]) - expected).abs());
        worst32 = worst32.max((f64::from(direct32) - expected).abs());
        square_sum += expected * expected;
    }
    let rms = (square_sum / picks.len() as f64).sqrt();
    (worst / rms, worst32 / rms)
}

/// Every size of partial tile at the right and bottom edges, and both orientations.
#[test]
fn small_shapes_match_the_direct_sum() {
    for (height, width) in [(1, 1), (4, 4), (5, 9), (9, 7), (11, 13), (8, 3)] {
        for orientation in [KernelOrientation::Forward, KernelOrientation::Transposed] {
            let shape = Conv3x3Shape {
                batch: 2,
                in_channels: 5,
                out_channels: 7,
                height,
                width,
            };
            let (err, _) = relative_error(shape, orientation, None, 11);
            assert!(
                err < 1e-5,
                "{shape:?} {orientation:?}: relative error {err:e}"
            );
        }
    }
}

/// Several chunks of tiles (more tiles than one chunk holds), and more output channels
/// than input channels.
#[test]
fn many_chunks_match_the_direct_sum() {
    let shape = Conv3x3Shape {
        batch: 1,
        in_channels: 64,
        out_channels: 1280,
        height: 90,
        width: 90,
    };
    assert!(shape.chunk_tiles() < shape.tiles());
    let (err, _) = relative_error(shape, KernelOrientation::Forward, Some(3000), 5);
    assert!(err < 1e-4, "relative error {err:e}");
}

/// SD 1.5's 3×3 convolutions at a 64×64 latent (the UNet's 320 and 640 channels, the
/// VAE's 512), and the VAE's 128 channels at 128×128, both orientations: the largest
/// error on 3000 sampled outputs, against f64, relative to the outputs' RMS.
#[test]
fn sd_shapes_stay_accurate() {
    for (channels, size) in [(320, 64), (640, 32), (512, 64), (128, 128)] {
        for orientation in [KernelOrientation::Forward, KernelOrientation::Transposed] {
            let shape = Conv3x3Shape {
                batch: 1,
                in_channels: channels,
                out_channels: channels,
                height: size,
                width: size,
            };
            let (err, err32) = relative_error(shape, orientation, Some(3000), 7);
            eprintln!(
                "{channels} channels, {size}²: {orientation:?} relative error {err:e} \
                 (direct f32 sum: {err32:e})"
            );
            assert!(
                err < 1e-4,
                "{shape:?} {orientation:?}: relative error {err:e}"
            );
        }
    }
}
