//! Resolution changes between UNet levels: diffusers' `Downsample2D`
//! (`diffusers/models/downsampling.py`) and `Upsample2D` (`upsampling.py`), both with their
//! convolution, as SD uses them.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};
use sd_kernels::conv2d;

/// A 3×3, stride-2 convolution (`downsamplers.0.conv`; LDM `input_blocks.N.0.op`).
#[derive(Module, Debug)]
pub struct Downsample2D {
    /// The strided convolution.
    pub conv: Conv2d,
}

impl Downsample2D {
    /// An uninitialised downsampler keeping `channels`, zero-padded by `padding` on each side
    /// (the config's `downsample_padding`, 1 in SD).
    pub fn new(channels: usize, padding: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([channels, channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - output: `[batch, channels, ceil(height / 2), ceil(width / 2)]` (with padding 1)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(&self.conv, x)
    }
}

/// Nearest-neighbour ×2 upsampling, then a 3×3 convolution (`upsamplers.0.conv`).
#[derive(Module, Debug)]
pub struct Upsample2D {
    /// The convolution after upsampling.
    pub conv: Conv2d,
}

impl Upsample2D {
    /// An uninitialised upsampler keeping `channels`.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([channels, channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
        }
    }

    /// Upsamples to `size` (the size of the skip connection this level concatenates next).
    ///
    /// diffusers interpolates to the skip's size when a side is odd on the way down
    /// (`forward_upsample_size`). A stride-2 downsample maps `n` to `ceil(n / 2)`, so the
    /// target is `2m` or `2m - 1` for an input of `m`, and PyTorch's nearest rule
    /// `src = floor(dst * m / size)` then equals `floor(dst / 2)` in both cases: repeating
    /// every pixel twice and cropping is exact.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, m_h, m_w]`
    /// - `size`: `[2 m_h or 2 m_h - 1, 2 m_w or 2 m_w - 1]`
    /// - output: `[batch, channels, size[0], size[1]]`
    pub fn forward(&self, x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
        let [batch, channels, height, width] = x.dims();
        let x = x
            .reshape([batch, channels, height, 1, width, 1])
            .expand([batch, channels, height, 2, width, 2])
            .reshape([batch, channels, 2 * height, 2 * width]);
        let x = if size == [2 * height, 2 * width] {
            x
        } else {
            x.slice([0..batch, 0..channels, 0..size[0], 0..size[1]])
        };
        conv2d(&self.conv, x)
    }
}
