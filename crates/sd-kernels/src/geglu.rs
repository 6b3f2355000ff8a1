//! The GEGLU feed-forward's gate, `value · gelu(gate)` of a `[value | gate]` projection with
//! the exact (erf) GELU diffusers uses: through this crate's one-pass kernel for f32 on
//! burn's CPU backend (`flex`), as one graph operation that keeps only the projection under
//! autodiff there, and through burn's ops everywhere else.
//!
//! burn's path (two `narrow`s, `gelu`, a product) evaluates `erf` one element at a time,
//! makes a second pass over fresh memory for the product, and under autodiff keeps every
//! intermediate of its `erf` for the backward pass. Its GELU is [`crate::gelu()`], exact
//! in both passes on every backend.

use burn::tensor::{DType, Device, Tensor};

/// `value · gelu(gate)` of a `[batch, tokens, 2 · inner]` projection whose rows are
/// `[value | gate]` (diffusers' `GEGLU` after its projection); returns
/// `[batch, tokens, inner]`.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
///
/// let device = Device::default();
/// let projected = Tensor::<3>::random([2, 7, 2 * 16], Distribution::Default, &device);
/// assert_eq!(sd_kernels::geglu(projected).dims(), [2, 7, 16]);
/// ```
pub fn geglu(projected: Tensor<3>) -> Tensor<3> {
    crate::precision::in_f32(projected, geglu_in_place)
}

/// [`geglu`] in the projection's own type.
fn geglu_in_place(projected: Tensor<3>) -> Tensor<3> {
    if cpu_kernels_take(&projected.device(), projected.dtype()) {
        geglu_on_cpu(projected)
    } else if let Some(out) = tracked_geglu_on_cpu(&projected) {
        out
    } else {
        geglu_with_burn(projected)
    }
}

/// `value · gelu(gate)` of a `[value | gate]` projection, with burn's ops.
fn geglu_with_burn(projected: Tensor<3>) -> Tensor<3> {
    let [batch, tokens, double] = projected.dims();
    let inner = double / 2;
    let value = projected.clone().narrow(2, 0, inner);
    let gate = projected.narrow(2, inner, inner);
    debug_assert_eq!(value.dims(), [batch, tokens, inner]);
    value * crate::gelu(gate)
}

/// Whether this crate's CPU kernels take tensors of `dtype` on `device`: f32 on
/// burn's CPU backend (`flex`), outside autodiff.
fn cpu_kernels_take(device: &Device, dtype: DType) -> bool {
    #[cfg(feature = "flex")]
    {
        crate::cpu::kernels_take(device, dtype)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (device, dtype);
        false
    }
}

/// The GEGLU gate through this crate's one-pass kernel.
#[cfg(feature = "flex")]
fn geglu_on_cpu(projected: Tensor<3>) -> Tensor<3> {
    use burn::tensor::TensorData;

    let device = projected.device();
    let [batch, tokens, double] = projected.dims();
    // The projection is used only here: taking its data is free.
    let data = projected.into_data();
    match data.as_slice() {
        Ok(values) => {
            let out = crate::cpu::geglu::geglu(values, double / 2);
            let out = TensorData::new(out, [batch, tokens, double / 2]);
            Tensor::from_data(out, &device)
        }
        Err(_) => geglu_with_burn(Tensor::from_data(data, &device)),
    }
}

/// The GEGLU gate on an autodiff `flex` device for f32, as one graph operation that keeps
/// only the projection for its backward pass; `None` elsewhere.
#[cfg(feature = "flex")]
fn tracked_geglu_on_cpu(projected: &Tensor<3>) -> Option<Tensor<3>> {
    if !projected.device().is_autodiff() {
        return None;
    }
    crate::cpu::tracked::tracked_geglu(projected)
}

/// Without the CPU backend there is no CPU kernel.
#[cfg(not(feature = "flex"))]
fn tracked_geglu_on_cpu(_: &Tensor<3>) -> Option<Tensor<3>> {
    None
}

/// Without the CPU backend there is no CPU kernel ([`cpu_kernels_take`] is always false).
#[cfg(not(feature = "flex"))]
fn geglu_on_cpu(projected: Tensor<3>) -> Tensor<3> {
    geglu_with_burn(projected)
}

// The tests check the CPU kernel paths against burn's ops, so they need the CPU backend.
#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    /// On an autodiff `flex` device the GEGLU gate runs as one graph operation; its value
    /// and gradient equal those of burn's ops, with and without gradient checkpointing.
    #[test]
    fn tracked_geglu_gate_has_burns_gradients() {
        for device in [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ] {
            let projected =
                Tensor::<3>::random([2, 37, 2 * 40], Distribution::Normal(0.0, 2.0), &device)
                    .require_grad();
            let weights = Tensor::<3>::random([2, 37, 40], Distribution::Default, &device);
            let run = |gate: &dyn Fn(Tensor<3>) -> Tensor<3>| {
                let out = gate(projected.clone());
                let grads = (out.clone() * weights.clone()).sum().backward();
                (out, projected.grad(&grads).expect("a gradient"))
            };
            let (ours, ours_grad) = run(&|p| tracked_geglu_on_cpu(&p).expect("autodiff flex"));
            let (burns, burns_grad) = run(&geglu_with_burn);
            for (name, ours, burns) in [("value", ours, burns), ("gradient", ours_grad, burns_grad)]
            {
                let scale: f32 = burns.clone().abs().max().into_scalar();
                let err: f32 = (ours - burns).abs().max().into_scalar();
                assert!(
                    err <= 2e-6 * scale,
                    "{name}: max abs error {err}, scale {scale}"
                );
            }
        }
    }
}
