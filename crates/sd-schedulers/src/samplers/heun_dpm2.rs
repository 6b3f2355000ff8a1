//! Heun, DPM2 and DPM2 ancestral (k-diffusion `sample_heun`, `sample_dpm_2`,
//! `sample_dpm_2_ancestral`): second-order steps that evaluate the model twice.

use burn::tensor::Tensor;

use super::{Churn, Ctx, Stop, ancestral_step, to_d};

/// "Heun": Karras et al. (2022) Algorithm 2 with Heun steps (Euler on the last step).
pub(crate) fn sample_heun<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
    churn: &Churn,
) -> Result<Tensor<4>, Stop<E>> {
    for i in 0..sigmas.len() - 1 {
        let (xc, sigma_hat) = churn.apply(ctx, x, sigmas, i);
        x = xc;
        let denoised = ctx.denoise(&x, sigma_hat)?;
        let d = to_d(&x, sigma_hat, &denoised);
        ctx.report(i, sigmas[i], sigma_hat, &x, &denoised)?;
        let dt = sigmas[i + 1] - sigma_hat;
        if sigmas[i + 1] == 0.0 {
            x = x + d.mul_scalar(dt);
        } else {
            let x_2 = x.clone() + d.clone().mul_scalar(dt);
            let denoised_2 = ctx.denoise(&x_2, sigmas[i + 1])?;
            let d_2 = to_d(&x_2, sigmas[i + 1], &denoised_2);
            let d_prime = (d + d_2).div_scalar(2.0);
            x = x + d_prime.mul_scalar(dt);
        }
    }
    Ok(x)
}

/// σ halfway between `a` and `b` in log space: `a.log().lerp(b.log(), 0.5).exp()`.
fn log_midpoint(a: f32, b: f32) -> f32 {
    let (la, lb) = (a.ln(), b.ln());
    // torch.lerp with a weight of at least 0.5 computes end - (end - start) * (1 - weight).
    (lb - (lb - la) * 0.5).exp()
}

/// "DPM2": DPM-Solver-2-like midpoint steps with Karras' churn.
pub(crate) fn sample_dpm_2<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
    churn: &Churn,
) -> Result<Tensor<4>, Stop<E>> {
    for i in 0..sigmas.len() - 1 {
        let (xc, sigma_hat) = churn.apply(ctx, x, sigmas, i);
        x = xc;
        let denoised = ctx.denoise(&x, sigma_hat)?;
        let d = to_d(&x, sigma_hat, &denoised);
        ctx.report(i, sigmas[i], sigma_hat, &x, &denoised)?;
        if sigmas[i + 1] == 0.0 {
            x = x + d.mul_scalar(sigmas[i + 1] - sigma_hat);
        } else {
            let sigma_mid = log_midpoint(sigma_hat, sigmas[i + 1]);
            let dt_1 = sigma_mid - sigma_hat;
            let dt_2 = sigmas[i + 1] - sigma_hat;
            let x_2 = x.clone() + d.mul_scalar(dt_1);
            let denoised_2 = ctx.denoise(&x_2, sigma_mid)?;
            let d_2 = to_d(&x_2, sigma_mid, &denoised_2);
            x = x + d_2.mul_scalar(dt_2);
        }
    }
    Ok(x)
}

/// "DPM2 a": ancestral sampling with DPM-Solver-2 steps.
pub(crate) fn sample_dpm_2_ancestral<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
    eta: f32,
    s_noise: f32,
) -> Result<Tensor<4>, Stop<E>> {
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        let (sigma_down, sigma_up) = ancestral_step(sigmas[i], sigmas[i + 1], eta);
        ctx.report(i, sigmas[i], sigmas[i], &x, &denoised)?;
        let d = to_d(&x, sigmas[i], &denoised);
        if sigma_down == 0.0 {
            x = x + d.mul_scalar(sigma_down - sigmas[i]);
        } else {
            let sigma_mid = log_midpoint(sigmas[i], sigma_down);
            let dt_1 = sigma_mid - sigmas[i];
            let dt_2 = sigma_down - sigmas[i];
            let x_2 = x.clone() + d.mul_scalar(dt_1);
            let denoised_2 = ctx.denoise(&x_2, sigma_mid)?;
            let d_2 = to_d(&x_2, sigma_mid, &denoised_2);
            x = x + d_2.mul_scalar(dt_2);
            // k-diffusion adds the noise unconditionally in this branch.
            let n = ctx.randn(i, sigmas[i], sigmas[i + 1], &x);
            x = x + n.mul_scalar(s_noise).mul_scalar(sigma_up);
        }
    }
    Ok(x)
}
