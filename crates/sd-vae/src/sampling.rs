//! Changing resolution between levels: diffusers' `Downsample2D` and `Upsample2D` as the VAE
//! configures them.
//!
//! Upstream: `diffusers/models/downsampling.py` (`Downsample2D(use_conv=True, padding=0)`)
//! and `diffusers/models/upsampling.py` (`Upsample2D(use_conv=True)`).

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use crate::resnet::conv3x3;
use sd_kernels::conv2d;

/// Halves height and width with a stride-2 3x3 convolution.
#[derive(Module, Debug)]
pub struct Downsample2D {
    /// The strided convolution (`downsample.conv` in LDM checkpoints).
    pub conv: Conv2d,
}

impl Downsample2D {
    /// A downsampler over `channels` channels.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([channels, channels], [3, 3])
                .with_stride([2, 2])
                // diffusers (and LDM before it) pads one zero row at the bottom and one zero
                // column on the right only (`F.pad(x, (0, 1, 0, 1))`), not one on every side:
                // burn's order is (top, left, bottom, right).
                .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1))
                .init(device),
        }
    }

    /// Runs the downsampler.
    ///
    /// # Shapes
    /// - input: `[batch, channels, height, width]`
    /// - output: `[batch, channels, height / 2, width / 2]` (rounded down; odd sizes as
    ///   diffusers: `floor((size - 2) / 2) + 1`)
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        conv2d(&self.conv, input)
    }
}

/// Doubles height and width: nearest-neighbour repeat, then a 3x3 convolution.
#[derive(Module, Debug)]
pub struct Upsample2D {
    /// The convolution after the repeat (`upsample.conv` in LDM checkpoints).
    pub conv: Conv2d,
}

impl Upsample2D {
    /// An upsampler over `channels` channels.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            conv: conv3x3(channels, channels, device),
        }
    }

    /// Runs the upsampler.
    ///
    /// # Shapes
    /// - input: `[batch, channels, height, width]`
    /// - output: `[batch, channels, 2 * height, 2 * width]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let [_, _, height, width] = input.dims();
        // An explicit output size rather than a scale factor: exactly 2x, and the nearest
        // source pixel of output `i` is `floor(i / 2)`, which is PyTorch's `mode="nearest"`.
        let options = InterpolateOptions::new(InterpolateMode::Nearest)
            .with_output_size([2 * height, 2 * width]);
        conv2d(&self.conv, interpolate(input, options))
    }
}
