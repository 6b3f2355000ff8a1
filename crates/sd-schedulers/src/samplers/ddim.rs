//! DDIM (Song et al. 2020) as A1111 ≥ 1.6 runs it: `ddim` in
//! `modules/sd_samplers_timesteps_impl.py`, stepping over training timesteps in the
//! variance-preserving scale, with the model seen as an ε-predictor.
//!
//! A1111 hands it the timesteps `clip(range(0, N, N // steps) + 1, 0, N-1)` and runs
//! `len(timesteps) - 1` updates, the last one landing on timestep 1, not 0 (so "10 steps" is
//! 9 model evaluations, and 1 step returns the input unchanged). That is kept.

use burn::tensor::Tensor;

use super::{Ctx, Stop};
use crate::noise_schedule::NoiseSchedule;

/// A1111's `CompVisSampler.get_timesteps`: `clip(range(0, N, N // steps) + 1, 0, N - 1)`.
pub fn a1111_timesteps(steps: usize, num_train_timesteps: usize) -> Vec<usize> {
    let stride = (num_train_timesteps / steps.max(1)).max(1);
    (0..num_train_timesteps)
        .step_by(stride)
        .map(|t| (t + 1).min(num_train_timesteps - 1))
        .collect()
}

/// ε of the denoiser at training timestep `t`, for a latent `x` in the VP scale: the
/// denoiser sees `x·√(1+σ_t²)` at σ_t (the table value), and ε = (x_ve − D) / σ_t — what
/// k-diffusion's ε-denoiser inverts, so a [`crate::DiscreteDenoiser`] hands the network
/// exactly `x` at timestep `t`.
pub(crate) fn eps_at_timestep<E>(
    ctx: &mut Ctx<'_, E>,
    ns: &NoiseSchedule,
    x: &Tensor<4>,
    t: usize,
) -> Result<Tensor<4>, Stop<E>> {
    let sigma = ns.sigmas()[t];
    let x_ve = x.clone().mul_scalar((1.0 + sigma * sigma).sqrt());
    let denoised = ctx.denoise(&x_ve, sigma)?;
    Ok((x_ve - denoised).div_scalar(sigma))
}

/// The ᾱ of each timestep and of the one before it (`alphas_prev`: ᾱ at 0 first, then the
/// previous entry), as A1111 indexes them.
pub(crate) fn alphas(ns: &NoiseSchedule, timesteps: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let ac = ns.alphas_cumprod();
    let a: Vec<f32> = timesteps.iter().map(|&t| ac[t]).collect();
    let mut prev = vec![ac[0]];
    prev.extend(
        timesteps[..timesteps.len().saturating_sub(1)]
            .iter()
            .map(|&t| ac[t]),
    );
    (a, prev)
}

/// "DDIM" with η (A1111's `eta_ddim`, default 0).
pub(crate) fn sample_ddim<E>(
    ctx: &mut Ctx<'_, E>,
    ns: &NoiseSchedule,
    mut x: Tensor<4>,
    timesteps: &[usize],
    eta: f64,
) -> Result<Tensor<4>, Stop<E>> {
    if timesteps.is_empty() {
        return Ok(x);
    }
    let (alphas, alphas_prev) = alphas(ns, timesteps);
    // σ_t of DDIM, computed in float64 from the float32 ᾱ as A1111's numpy/torch mix does.
    let sigmas: Vec<f64> = alphas
        .iter()
        .zip(&alphas_prev)
        .map(|(&a, &ap)| {
            let (a, ap) = (a as f64, ap as f64);
            eta * ((1.0 - ap) / (1.0 - a) * (1.0 - a / ap)).sqrt()
        })
        .collect();
    for i in 0..timesteps.len() - 1 {
        let index = timesteps.len() - 1 - i;
        let e_t = eps_at_timestep(ctx, ns, &x, timesteps[index])?;
        let a_t = alphas[index];
        let a_prev = alphas_prev[index];
        let sigma_t = sigmas[index] as f32;
        let sqrt_one_minus_at = (1.0 - a_t).sqrt();
        let pred_x0 =
            (x.clone() - e_t.clone().mul_scalar(sqrt_one_minus_at)).div_scalar(a_t.sqrt());
        let dir_xt = e_t.mul_scalar((1.0 - a_prev - sigma_t * sigma_t).sqrt());
        let noise = ctx.randn(i, 0.0, 0.0, &x).mul_scalar(sigma_t);
        x = pred_x0.clone().mul_scalar(a_prev.sqrt()) + dir_xt + noise;
        ctx.report(i, 0.0, 0.0, &x, &pred_x0)?;
    }
    Ok(x)
}
