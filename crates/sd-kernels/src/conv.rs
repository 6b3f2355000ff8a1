//! 2-D convolutions of a frozen network: under autodiff on burn's CPU backend (`flex`), as a
//! graph operation that does not keep its input (burn's `conv2d` keeps it for a weight
//! gradient that frozen weights never ask for); everywhere else, burn's `Conv2d`.

use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

/// `conv(x)`, for `x: [batch, channels, height, width]`: the same values as
/// `conv.forward(x)`, and under autodiff on `flex` with a weight and bias that want no
/// gradient, the same input gradient without keeping `x`.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match tracked(conv, &x) {
        Some(out) => out,
        None => conv.forward(x),
    }
}

/// The frozen-weight graph operation where it applies.
#[cfg(feature = "flex")]
fn tracked(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    if !x.device().is_autodiff() {
        return None;
    }
    crate::cpu::tracked::tracked_conv2d(conv, x)
}

/// Without the CPU backend there is no such operation.
#[cfg(not(feature = "flex"))]
fn tracked(_: &Conv2d, _: &Tensor<4>) -> Option<Tensor<4>> {
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
                let ours = tracked(&conv, &x).expect("a frozen convolution on autodiff flex");
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
}
