//! The DDPM forward process, for training: noising a clean latent at a timestep, the
//! v-prediction target, and drawing timesteps.
//!
//! LDM (`ddpm.py`, `q_sample`, `get_v`, `p_losses`) uses float32 buffers
//! `sqrt_alphas_cumprod` and `sqrt_one_minus_alphas_cumprod` made from the float64 ᾱ, and
//! draws `t ~ randint(0, 1000)` per sample.

use burn::tensor::{Distribution, Int, Tensor, TensorData};

use crate::error::{Result, SchedulerError};
use crate::noise_schedule::NoiseSchedule;

/// `√ᾱ_t` and `√(1−ᾱ_t)` per batch item, as `[batch, 1, 1, 1]` tensors on `device`.
fn coefficients(
    ns: &NoiseSchedule,
    timesteps: &[usize],
    device: &burn::tensor::Device,
) -> (Tensor<4>, Tensor<4>) {
    let ac = ns.alphas_cumprod_f64();
    let last = ac.len() - 1;
    let a: Vec<f32> = timesteps
        .iter()
        .map(|&t| ac[t.min(last)].sqrt() as f32)
        .collect();
    let b: Vec<f32> = timesteps
        .iter()
        .map(|&t| (1.0 - ac[t.min(last)]).sqrt() as f32)
        .collect();
    let n = timesteps.len();
    (
        Tensor::from_data(TensorData::new(a, [n, 1, 1, 1]), device),
        Tensor::from_data(TensorData::new(b, [n, 1, 1, 1]), device),
    )
}

/// `q_sample`: `√ᾱ_t·x₀ + √(1−ᾱ_t)·ε`, one timestep per batch item (clamped to the table).
///
/// # Shapes
/// - `x0`, `noise`: `[batch, channels, height, width]`
/// - `timesteps`: `batch` entries
/// - returns: `[batch, channels, height, width]`
pub fn add_noise(
    ns: &NoiseSchedule,
    x0: Tensor<4>,
    noise: Tensor<4>,
    timesteps: &[usize],
) -> Tensor<4> {
    let (a, b) = coefficients(ns, timesteps, &x0.device());
    x0 * a + noise * b
}

/// The v-prediction target `√ᾱ_t·ε − √(1−ᾱ_t)·x₀` (LDM's `get_v`, diffusers'
/// `get_velocity`).
///
/// # Shapes
/// - `x0`, `noise`: `[batch, channels, height, width]`
/// - `timesteps`: `batch` entries
/// - returns: `[batch, channels, height, width]`
pub fn velocity(
    ns: &NoiseSchedule,
    x0: Tensor<4>,
    noise: Tensor<4>,
    timesteps: &[usize],
) -> Tensor<4> {
    let (a, b) = coefficients(ns, timesteps, &x0.device());
    noise * a - x0 * b
}

/// Draws `batch` training timesteps uniformly from `[0, N)` with burn's generator on
/// `device` (LDM's `torch.randint(0, num_timesteps, (batch,))`; the stream is burn's, not
/// torch's).
///
/// # Errors
/// [`SchedulerError::ReadBack`] when the device cannot hand the draw back.
pub fn sample_timesteps(
    ns: &NoiseSchedule,
    batch: usize,
    device: &burn::tensor::Device,
) -> Result<Vec<usize>> {
    let n = ns.num_train_timesteps();
    let t: Tensor<1, Int> = Tensor::random([batch], Distribution::Uniform(0.0, n as f64), device);
    let v: Vec<i64> = t
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .map_err(SchedulerError::ReadBack)?;
    Ok(v.into_iter()
        .map(|x| (x.max(0) as usize).min(n - 1))
        .collect())
}
