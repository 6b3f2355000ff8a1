//! Euler and Euler ancestral (k-diffusion `sample_euler`, `sample_euler_ancestral`).

use burn::tensor::Tensor;

use super::{Churn, Ctx, Stop, ancestral_step, to_d};

/// "Euler": Karras et al. (2022) Algorithm 2 with Euler steps.
pub(crate) fn sample_euler<E>(
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
        x = x + d.mul_scalar(dt);
    }
    Ok(x)
}

/// "Euler a": ancestral sampling with Euler steps.
pub(crate) fn sample_euler_ancestral<E>(
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
        x = x + d.mul_scalar(sigma_down - sigmas[i]);
        if sigmas[i + 1] > 0.0 {
            let n = ctx.randn(i, sigmas[i], sigmas[i + 1], &x);
            x = x + n.mul_scalar(s_noise).mul_scalar(sigma_up);
        }
    }
    Ok(x)
}
