//! GroupNorm, alone or followed by SiLU, through this crate's one-pass kernel where it can
//! run (`cpu::group_norm`: f32 on burn's CPU backend, outside autodiff) and through burn's
//! `GroupNorm` and `silu` everywhere else: the same function, tested against the f64 formula
//! and, on the VAE, by the diffusers goldens.

use burn::nn::GroupNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

/// `silu(norm(x))` when `then_silu`, else `norm(x)`, for `x: [batch, channels, height,
/// width]`.
pub(crate) fn normalize(norm: &GroupNorm, x: Tensor<4>, then_silu: bool) -> Tensor<4> {
    if let Some(out) = on_cpu(norm, &x, then_silu) {
        return out;
    }
    let out = norm.forward(x);
    if then_silu { silu(out) } else { out }
}

/// The CPU kernel's result, or `None` where it does not apply: another backend or dtype,
/// an autodiff device, or a norm without affine parameters.
#[cfg(feature = "flex")]
fn on_cpu(norm: &GroupNorm, x: &Tensor<4>, then_silu: bool) -> Option<Tensor<4>> {
    use burn::backend::Flex;
    use burn::tensor::{DType, Device, TensorData};

    use crate::cpu::group_norm::{Affine, GroupNormShape, group_norm};

    let device = x.device();
    let [batch, channels, height, width] = x.dims();
    let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) else {
        return None;
    };
    if !norm.affine
        || device.is_autodiff()
        || device != Device::flex()
        || x.dtype() != DType::F32
        || channels != norm.num_channels
        || !channels.is_multiple_of(norm.num_groups)
    {
        return None;
    }
    let floats = |t: Tensor<1>| t.into_data().convert::<f32>().try_into_vec::<f32>().ok();
    let (gamma, beta) = (floats(gamma.val())?, floats(beta.val())?);
    // The primitive, not `into_data`: `x` is usually still held (a residual), and reading
    // its buffer in place saves a copy.
    let primitive = x.clone().try_into_primitive::<Flex>().ok()?;
    let primitive = primitive.to_contiguous();
    let values = primitive.as_slice::<f32>()?;
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
    let out = group_norm(values, shape, affine, norm.epsilon as f32);
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

#[cfg(test)]
mod tests {
    use burn::nn::GroupNormConfig;
    use burn::tensor::{Device, Distribution};

    use super::*;

    /// Through the kernel, the values of burn's `GroupNorm` (random affine parameters, the
    /// VAE's epsilon) and `silu`.
    #[test]
    fn the_kernel_matches_burns_group_norm() {
        let device = Device::flex();
        let mut norm = GroupNormConfig::new(4, 12).with_epsilon(1e-6).init(&device);
        let random = |mean| Tensor::<1>::random([12], Distribution::Normal(mean, 0.5), &device);
        norm.gamma = norm.gamma.map(|p| p.map(|_| random(1.0)));
        norm.beta = norm.beta.map(|p| p.map(|_| random(0.0)));
        for then_silu in [false, true] {
            let x = Tensor::<4>::random([2, 12, 5, 7], Distribution::Normal(0.5, 2.0), &device);
            let ours = on_cpu(&norm, &x, then_silu).expect("the kernel applies");
            let out = norm.forward(x);
            let expected = if then_silu { silu(out) } else { out };
            let scale: f32 = expected.clone().abs().max().into_scalar();
            let err: f32 = (ours - expected).abs().max().into_scalar();
            assert!(err <= 2e-6 * scale, "silu {then_silu}: error {err}");
        }
    }
}
