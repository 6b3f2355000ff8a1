//! The UNet's residual block, diffusers' `ResnetBlock2D` (`diffusers/models/resnet.py`) with
//! the options SD uses: pre-norm, SiLU, the time embedding added after the first convolution.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use sd_kernels::{conv2d, group_norm};

/// Shapes and numbers of one [`ResnetBlock2D`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResnetBlock2DConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels; a 1×1 `conv_shortcut` matches the residual when they differ.
    pub out_channels: usize,
    /// Width of the time embedding.
    pub temb_channels: usize,
    /// GroupNorm groups.
    pub groups: usize,
    /// GroupNorm epsilon.
    pub eps: f64,
    /// The output is `(shortcut + h) / output_scale_factor` (1 in SD).
    pub output_scale_factor: f64,
}

impl ResnetBlock2DConfig {
    /// An uninitialised block (parameters are created lazily, so loading weights never pays
    /// for a random initialisation).
    pub fn init(&self, device: &Device) -> ResnetBlock2D {
        let conv3 = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let norm = |c| {
            GroupNormConfig::new(self.groups, c)
                .with_epsilon(self.eps)
                .init(device)
        };
        ResnetBlock2D {
            norm1: norm(self.in_channels),
            conv1: conv3(self.in_channels, self.out_channels),
            time_emb_proj: LinearConfig::new(self.temb_channels, self.out_channels).init(device),
            norm2: norm(self.out_channels),
            conv2: conv3(self.out_channels, self.out_channels),
            conv_shortcut: (self.in_channels != self.out_channels).then(|| {
                Conv2dConfig::new([self.in_channels, self.out_channels], [1, 1]).init(device)
            }),
            output_scale_factor: self.output_scale_factor,
        }
    }
}

/// `h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb)); h = conv2(silu(norm2(h)));
/// out = (shortcut(x) + h) / output_scale_factor`.
///
/// LDM names: `in_layers.0` = norm1, `in_layers.2` = conv1, `emb_layers.1` = time_emb_proj,
/// `out_layers.0` = norm2, `out_layers.3` = conv2, `skip_connection` = conv_shortcut.
#[derive(Module, Debug)]
pub struct ResnetBlock2D {
    /// GroupNorm of the input.
    pub norm1: GroupNorm,
    /// First 3×3 convolution.
    pub conv1: Conv2d,
    /// Projects the (activated) time embedding to one value per output channel.
    pub time_emb_proj: Linear,
    /// GroupNorm after the time embedding is added.
    pub norm2: GroupNorm,
    /// Second 3×3 convolution.
    pub conv2: Conv2d,
    /// 1×1 convolution of the residual when the channel count changes.
    pub conv_shortcut: Option<Conv2d>,
    /// Divides the output (1 in SD).
    pub output_scale_factor: f64,
}

impl ResnetBlock2D {
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - `temb_act`: `[batch, temb_channels]`, the time embedding *after* SiLU (every resnet
    ///   activates the same embedding, so the caller does it once)
    /// - output: `[batch, out_channels, height, width]`
    pub fn forward(&self, x: Tensor<4>, temb_act: Tensor<2>) -> Tensor<4> {
        let h = conv2d(&self.conv1, group_norm(&self.norm1, x.clone(), true));
        let t = self.time_emb_proj.forward(temb_act);
        let [batch, channels] = t.dims();
        let h = h + t.reshape([batch, channels, 1, 1]);
        let h = conv2d(&self.conv2, group_norm(&self.norm2, h, true));
        let shortcut = match &self.conv_shortcut {
            Some(conv) => conv2d(conv, x),
            None => x,
        };
        let out = shortcut + h;
        if self.output_scale_factor == 1.0 {
            out
        } else {
            out / self.output_scale_factor
        }
    }
}
