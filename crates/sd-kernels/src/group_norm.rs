//! GroupNorm, alone or followed by SiLU (the resnets' `silu(norm(x))`), through this crate's
//! one-pass kernel where it can run (f32 on burn's CPU backend, at inference and under
//! autodiff with frozen parameters) and through burn's `GroupNorm` and `silu` everywhere
//! else. The result is the same function: the kernel is tested against the f64 formula and
//! burn's ops here, and by the diffusers goldens of the UNet and the VAE, which both run it.
//!
//! burn's `GroupNorm` makes six tensor ops (reshape, mean, variance, normalise, scale, shift)
//! and its `silu` two more: eleven passes over fresh memory at inference (128 MiB each at
//! the VAE's largest activations), and under autodiff about four input-sized tensors kept
//! per norm for the backward pass. The kernel reads each (batch, group) block three times
//! while it sits in cache and writes once, about 4× faster; under autodiff it keeps only the
//! input and two numbers per group.

use burn::nn::GroupNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

/// `silu(norm(x))` when `then_silu`, else `norm(x)`, for `x: [batch, channels, height,
/// width]`.
///
/// ```
/// use burn::nn::GroupNormConfig;
/// use burn::tensor::{Device, Distribution, Tensor};
///
/// let device = Device::default();
/// let norm = GroupNormConfig::new(4, 12).init(&device);
/// let x = Tensor::<4>::random([1, 12, 8, 8], Distribution::Default, &device);
/// let out = sd_kernels::group_norm(&norm, x, true);
/// assert_eq!(out.dims(), [1, 12, 8, 8]);
/// ```
pub fn group_norm(norm: &GroupNorm, x: Tensor<4>, then_silu: bool) -> Tensor<4> {
    if let Some(out) = on_cpu(norm, &x, then_silu) {
        return out;
    }
    if let Some(out) = widened(norm, &x, then_silu) {
        return out;
    }
    let out = norm.forward(x);
    if then_silu { silu(out) } else { out }
}

/// For f16 and bf16 inputs: the statistics, the affine and the SiLU in f32, rounded once to
/// the input's type (burn's `GroupNorm` widens only the statistics, then rounds after the
/// normalisation, the scale, the shift and each op of `silu`). `None` for other types and
/// for norms without affine parameters.
fn widened(norm: &GroupNorm, x: &Tensor<4>, then_silu: bool) -> Option<Tensor<4>> {
    use burn::tensor::DType;

    use crate::precision::{in_f32, to_dtype};

    let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) else {
        return None;
    };
    let [batch, channels, height, width] = x.dims();
    if !matches!(x.dtype(), DType::F16 | DType::BF16)
        || !norm.affine
        || channels != norm.num_channels
        || !channels.is_multiple_of(norm.num_groups)
    {
        return None;
    }
    let groups = norm.num_groups;
    let affine = |p: Tensor<1>| to_dtype(p, DType::F32).reshape([1, channels, 1, 1]);
    let (gamma, beta) = (affine(gamma.val()), affine(beta.val()));
    Some(in_f32(x.clone(), |x| {
        let x = x.reshape([batch, groups, channels / groups * height * width]);
        let x = x.clone() - x.mean_dim(2);
        let variance = x.clone().square().mean_dim(2);
        let x = x / variance.add_scalar(norm.epsilon).sqrt();
        let x = x.reshape([batch, channels, height, width]) * gamma + beta;
        if then_silu { silu(x) } else { x }
    }))
}

/// The CPU kernel's result, or `None` where it does not apply: another backend or dtype, a
/// norm without affine parameters, or parameters that want gradients.
#[cfg(feature = "flex")]
fn on_cpu(norm: &GroupNorm, x: &Tensor<4>, then_silu: bool) -> Option<Tensor<4>> {
    use burn::backend::Flex;
    use burn::tensor::{DType, TensorData};

    use crate::cpu::group_norm::{Affine, GroupNormShape, group_norm};
    use crate::cpu::tracked::tracked_group_norm;
    use crate::cpu::{contiguous_f32, kernels_take, values};

    let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) else {
        return None;
    };
    let (gamma, beta) = (gamma.val(), beta.val());
    let device = x.device();
    let [batch, channels, height, width] = x.dims();
    if !norm.affine
        || x.dtype() != DType::F32
        || channels != norm.num_channels
        || !channels.is_multiple_of(norm.num_groups)
    {
        return None;
    }
    let eps = norm.epsilon as f32;
    if device.is_autodiff() {
        return tracked_group_norm(x, &gamma, &beta, norm.num_groups, eps, then_silu);
    }
    if !kernels_take(&device, x.dtype()) {
        return None;
    }
    let floats = |t: Tensor<1>| t.into_data().convert::<f32>().try_into_vec::<f32>().ok();
    let (gamma, beta) = (floats(gamma)?, floats(beta)?);
    // The primitive, not `into_data`: `x` is usually still held (a residual), and reading
    // its buffer in place saves a copy.
    let x = contiguous_f32(&x.clone().try_into_primitive::<Flex>().ok()?);
    let shape = GroupNormShape {
        batch,
        channels,
        groups: norm.num_groups,
        spatial: height * width,
    };
    let affine = Affine {
        gamma: &gamma,
        beta: &beta,
        silu: then_silu,
    };
    let (out, _) = group_norm(values(&x), shape, affine, eps);
    Some(Tensor::from_data(
        TensorData::new(out, [batch, channels, height, width]),
        &device,
    ))
}

/// Without the CPU backend there is no CPU kernel.
#[cfg(not(feature = "flex"))]
fn on_cpu(_: &GroupNorm, _: &Tensor<4>, _: bool) -> Option<Tensor<4>> {
    None
}

// The tests check the CPU kernel paths against burn's ops, so they need the CPU backend.
#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::module::Module;
    use burn::nn::GroupNormConfig;
    use burn::tensor::{Device, Distribution};

    use super::*;

    /// A GroupNorm with random affine parameters (not the identity that `init` makes).
    fn random_norm(groups: usize, channels: usize, epsilon: f64, device: &Device) -> GroupNorm {
        let mut norm = GroupNormConfig::new(groups, channels)
            .with_epsilon(epsilon)
            .init(device);
        let random =
            |mean| Tensor::<1>::random([channels], Distribution::Normal(mean, 0.5), device);
        norm.gamma = norm.gamma.map(|p| p.map(|_| random(1.0)));
        norm.beta = norm.beta.map(|p| p.map(|_| random(0.0)));
        norm
    }

    /// Values (inference and autodiff, with and without checkpointing) and input gradients
    /// through the kernel equal those of burn's `GroupNorm` and `silu`, at the UNet's epsilon
    /// (1e-5) and the VAE's (1e-6).
    #[test]
    fn the_kernel_paths_match_burns_group_norm() {
        let plain = Device::flex();
        let devices = [
            plain.clone(),
            plain.clone().autodiff(),
            plain.clone().autodiff().gradient_checkpointing(),
        ];
        for (device, epsilon) in devices
            .into_iter()
            .flat_map(|device| [(device.clone(), 1e-5), (device, 1e-6)])
        {
            let norm = random_norm(4, 12, epsilon, &device).no_grad();
            for then_silu in [false, true] {
                let x = Tensor::<4>::random([2, 12, 5, 7], Distribution::Normal(0.5, 2.0), &device);
                let x = if device.is_autodiff() {
                    x.require_grad()
                } else {
                    x
                };
                let weights = Tensor::<4>::random([2, 12, 5, 7], Distribution::Default, &device);
                let burns = |x: Tensor<4>| {
                    let out = norm.forward(x);
                    if then_silu { silu(out) } else { out }
                };
                assert!(on_cpu(&norm, &x, then_silu).is_some(), "the kernel applies");
                let ours = group_norm(&norm, x.clone(), then_silu);
                let expected = burns(x.clone());
                let scale: f32 = expected.clone().abs().max().into_scalar();
                let err: f32 = (ours.clone() - expected.clone()).abs().max().into_scalar();
                assert!(
                    err <= 2e-6 * scale,
                    "{device:?} silu {then_silu}: value error {err}"
                );
                if device.is_autodiff() {
                    let grad_of = |out: Tensor<4>| {
                        let grads = (out * weights.clone()).sum().backward();
                        x.grad(&grads).expect("a gradient")
                    };
                    let (ours, expected) = (grad_of(ours), grad_of(expected));
                    let scale: f32 = expected.clone().abs().max().into_scalar();
                    let err: f32 = (ours - expected).abs().max().into_scalar();
                    assert!(
                        err <= 1e-5 * scale,
                        "{device:?} silu {then_silu}: gradient error {err}, scale {scale}"
                    );
                }
            }
        }
    }
}
