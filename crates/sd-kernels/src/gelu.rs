//! The exact (erf) GELU, `x · Φ(x)`, with its exact gradient on every backend.
//!
//! burn 0.22's `gelu` computes the erf form forward, but its backward step on the GPU
//! backends (cubecl's wgpu and CUDA, through the default `gelu_backward` of burn's
//! `ActivationOps`) is the derivative of the *tanh approximation*: about 1e-3 off, relative,
//! which put a textual-inversion gradient through the UNet's GEGLU 3e-4 off PyTorch's on
//! wgpu (the CPU backend, `flex`, overrides it with the exact derivative). Under autodiff on
//! those backends this writes the function out as `x · (1 + erf(x / √2)) / 2`, whose pieces
//! have exact derivatives (`erf′(z) = 2/√π · e^{−z²}`); elsewhere it is burn's `gelu`.

use burn::tensor::Tensor;
use burn::tensor::activation;

/// `x · Φ(x) = x · (1 + erf(x / √2)) / 2`, elementwise, as PyTorch's `gelu` (no
/// approximation), differentiated exactly on every backend (see the
/// [module docs](self)).
///
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let x = Tensor::<1>::from_floats([-1.0, 0.0, 2.0], &Device::default());
/// let y: Vec<f32> = sd_kernels::gelu(x).into_data().to_vec().unwrap();
/// assert!((y[0] + 0.158_655_3).abs() < 1e-6 && y[1] == 0.0 && (y[2] - 1.954_5).abs() < 1e-4);
/// ```
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    crate::precision::in_f32(x, gelu_in_place)
}

/// [`gelu`] in `x`'s own type.
fn gelu_in_place<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.device().is_autodiff() && !on_cpu_backend(&x) {
        (x.clone().div_scalar(std::f64::consts::SQRT_2).erf() + 1.0) * x * 0.5
    } else {
        activation::gelu(x)
    }
}

/// Whether `x` lives on burn's CPU backend, whose `gelu` backward is exact.
fn on_cpu_backend<const D: usize>(x: &Tensor<D>) -> bool {
    #[cfg(feature = "flex")]
    {
        x.device().inner() == burn::tensor::Device::flex()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = x;
        false
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    /// The written-out form (the one GPU autodiff devices take) has the exact derivative
    /// `Φ(x) + x · φ(x)`, and the same values as burn's `gelu`; checked on the CPU backend by
    /// computing the form directly.
    #[test]
    fn written_out_form_has_the_exact_gradient() {
        let device = Device::default().autodiff();
        let x = Tensor::<1>::random([1000], Distribution::Normal(0.0, 3.0), &device).require_grad();
        let written =
            (x.clone().div_scalar(std::f64::consts::SQRT_2).erf() + 1.0) * x.clone() * 0.5;
        let grads = written.clone().sum().backward();
        let got = x.grad(&grads).expect("x is tracked");
        let plain = x.clone().inner();
        let cdf = (plain.clone().div_scalar(std::f64::consts::SQRT_2).erf() + 1.0) * 0.5;
        let pdf = (plain.clone().powi_scalar(2) * -0.5).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let expected = cdf + plain.clone() * pdf;
        let err: f32 = (got - expected).abs().max().into_scalar();
        // f32 rounding only; measured ~1e-7.
        assert!(err < 1e-6, "gradient off by {err}");
        let err: f32 = (written.inner() - activation::gelu(plain))
            .abs()
            .max()
            .into_scalar();
        assert!(err < 1e-6, "values off by {err}");
    }
}
