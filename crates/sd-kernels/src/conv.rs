//! 2-D convolutions of the networks, on the fastest implementation the device has.
//!
//! On burn's CPU backend (`flex`) at f32, the stride-1, padding-1 3×3 convolutions with at
//! least 64 channels (nearly all of SD's convolution arithmetic) run by Winograd's
//! F(4×4, 3×3), a quarter of the direct convolution's multiplications, at inference and in
//! training (forward and input gradient), unless [`set_convolution_3x3`] chose
//! [`Convolution3x3::Direct`]. Under autodiff on `flex`, a convolution whose weight and bias
//! want no gradient is one graph operation that does not keep its input (burn's `conv2d`
//! keeps it for a weight gradient that frozen weights never ask for). Everywhere else,
//! burn's `Conv2d`.
//!
//! Winograd rounds differently from the direct sum: against an f64 direct convolution at
//! SD's shapes and weight scales its largest error is 2–7 × 10⁻⁵ of the outputs' RMS,
//! 4–12 times that of a direct f32 sum (the kernel's tests measure it).

use std::sync::atomic::{AtomicBool, Ordering};

use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

/// How the CPU kernels compute the stride-1, padding-1 3×3 convolutions they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Convolution3x3 {
    /// Winograd's F(4×4, 3×3): about 2–3 times faster, rounding a few times more (the
    /// default).
    #[default]
    Winograd,
    /// burn's direct convolution (im2col and a matrix product).
    Direct,
}

/// Whether [`Convolution3x3::Direct`] was chosen.
static DIRECT_3X3: AtomicBool = AtomicBool::new(false);

/// Chooses, for the whole process, how the CPU kernels compute 3×3 convolutions (for
/// comparisons and benchmarks; the default is [`Convolution3x3::Winograd`]).
pub fn set_convolution_3x3(algorithm: Convolution3x3) {
    DIRECT_3X3.store(algorithm == Convolution3x3::Direct, Ordering::Relaxed);
}

/// The algorithm [`set_convolution_3x3`] chose.
pub fn convolution_3x3() -> Convolution3x3 {
    if DIRECT_3X3.load(Ordering::Relaxed) {
        Convolution3x3::Direct
    } else {
        Convolution3x3::Winograd
    }
}

/// `conv(x)`, for `x: [batch, channels, height, width]`: the same values as
/// `conv.forward(x)` (within the rounding of the algorithm chosen), and under autodiff on
/// `flex` with a weight and bias that want no gradient, the same input gradient without
/// keeping `x`.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match on_cpu(conv, &x) {
        Some(out) => out,
        None => conv.forward(x),
    }
}

/// The CPU kernels' result, where they apply.
#[cfg(feature = "flex")]
fn on_cpu(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    use burn::backend::Flex;

    use crate::cpu::winograd::{KernelOrientation, conv3x3_flex, winograd_shape};
    use crate::cpu::{kernels_take, tracked};

    let device = x.device();
    if device.is_autodiff() {
        return tracked::tracked_conv2d(conv, x);
    }
    if !kernels_take(&device, x.dtype()) || convolution_3x3() == Convolution3x3::Direct {
        return None;
    }
    let options = tracked::conv_options(conv)?;
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    let bias_len = bias.as_ref().map(|b| b.dims()[0]);
    let shape = winograd_shape(x.dims(), weight.dims(), bias_len, &options)?;
    let primitive = |t: Tensor<4>| t.try_into_primitive::<Flex>().ok();
    let bias = match bias {
        Some(bias) => Some(bias.try_into_primitive::<Flex>().ok()?),
        None => None,
    };
    let out = conv3x3_flex(
        &primitive(x.clone())?,
        shape,
        &primitive(weight)?,
        KernelOrientation::Forward,
        bias.as_ref(),
    );
    Some(Tensor::from_primitive::<Flex>(out))
}

/// Without the CPU backend there is no CPU kernel.
#[cfg(not(feature = "flex"))]
fn on_cpu(_: &Conv2d, _: &Tensor<4>) -> Option<Tensor<4>> {
    None
}

// The tests check the CPU kernel paths against burn's ops, so they need the CPU backend.
#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::module::Module;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    use super::*;

    /// Values and input gradients equal burn's `Conv2d` under autodiff (with and without
    /// checkpointing) for the UNet's convolutions: 3×3 padding 1, the downsampler's 3×3
    /// stride 2 (on even and odd sizes), 1×1.
    #[test]
    fn the_frozen_convolution_matches_burns() {
        for device in [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ] {
            for (kernel, stride, padding, size) in [
                (3, 1, 1, [9, 7]),
                (3, 2, 1, [8, 8]),
                (3, 2, 1, [9, 7]),
                (1, 1, 0, [5, 6]),
            ] {
                let conv = Conv2dConfig::new([6, 4], [kernel, kernel])
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(
                        padding, padding, padding, padding,
                    ))
                    .init(&device)
                    .no_grad();
                let x =
                    Tensor::<4>::random([2, 6, size[0], size[1]], Distribution::Default, &device)
                        .require_grad();
                let ours = on_cpu(&conv, &x).expect("a frozen convolution on autodiff flex");
                let expected = conv.forward(x.clone());
                let weights = Tensor::<4>::random(expected.dims(), Distribution::Default, &device);
                let grad_of = |out: Tensor<4>| {
                    let grads = (out * weights.clone()).sum().backward();
                    x.grad(&grads).expect("a gradient")
                };
                let err: f32 = (ours.clone() - expected.clone()).abs().max().into_scalar();
                assert!(
                    err <= 1e-5,
                    "k{kernel} s{stride} {size:?}: value error {err}"
                );
                let (ours, expected) = (grad_of(ours), grad_of(expected));
                assert_eq!(ours.dims(), expected.dims());
                let err: f32 = (ours - expected).abs().max().into_scalar();
                assert!(
                    err <= 1e-5,
                    "k{kernel} s{stride} {size:?}: gradient error {err}"
                );
            }
        }
    }

    /// The Winograd path (64 channels, 32×32: 64 tiles) against burn's direct convolution:
    /// values at inference and under autodiff, and the input gradient, within Winograd's
    /// rounding (relative to the largest value); and the `Direct` choice gives burn's values.
    #[test]
    fn the_winograd_convolution_matches_burns() {
        let relative = |a: Tensor<4>, b: Tensor<4>| {
            let scale: f32 = b.clone().abs().max().into_scalar();
            let err: f32 = (a - b).abs().max().into_scalar();
            err / scale
        };
        for device in [Device::flex(), Device::flex().autodiff()] {
            let conv = Conv2dConfig::new([64, 72], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&device)
                .no_grad();
            let x = Tensor::<4>::random([1, 64, 32, 30], Distribution::Default, &device);
            let x = if device.is_autodiff() {
                x.require_grad()
            } else {
                x
            };
            let ours = on_cpu(&conv, &x).expect("a Winograd convolution");
            let expected = conv.forward(x.clone());
            let err = relative(ours.clone(), expected.clone());
            assert!(err <= 2e-5, "{device:?}: value error {err:e}");
            if device.is_autodiff() {
                let weights = Tensor::<4>::random(expected.dims(), Distribution::Default, &device);
                let grad_of = |out: Tensor<4>| {
                    let grads = (out * weights.clone()).sum().backward();
                    x.grad(&grads).expect("a gradient")
                };
                let err = relative(grad_of(ours), grad_of(expected));
                assert!(err <= 2e-5, "gradient error {err:e}");
            } else {
                set_convolution_3x3(Convolution3x3::Direct);
                let direct = on_cpu(&conv, &x);
                set_convolution_3x3(Convolution3x3::Winograd);
                assert!(direct.is_none(), "Direct leaves the convolution to burn");
                // A bias of the wrong length (a broken file) is left to burn.
                let mut broken = conv.clone();
                broken.bias = broken.bias.map(|p| p.map(|_| Tensor::zeros([71], &device)));
                assert!(on_cpu(&broken, &x).is_none());
            }
        }
    }
}
