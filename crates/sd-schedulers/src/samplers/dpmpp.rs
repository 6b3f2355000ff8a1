//! The DPM-Solver++ family (Lu et al. 2022) as k-diffusion implements it:
//! `sample_dpmpp_2s_ancestral`, `sample_dpmpp_sde`, `sample_dpmpp_2m`,
//! `sample_dpmpp_2m_sde`, `sample_dpmpp_3m_sde`. They step in t = −log σ.

use burn::tensor::Tensor;

use super::{Ctx, Stop, ancestral_step, to_d};

fn t_fn(sigma: f32) -> f32 {
    -sigma.ln()
}

fn sigma_fn(t: f32) -> f32 {
    (-t).exp()
}

/// "DPM++ 2S a": ancestral sampling with DPM-Solver++(2S) steps.
pub(crate) fn sample_dpmpp_2s_ancestral<E>(
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
        if sigma_down == 0.0 {
            let d = to_d(&x, sigmas[i], &denoised);
            x = x + d.mul_scalar(sigma_down - sigmas[i]);
        } else {
            let (t, t_next) = (t_fn(sigmas[i]), t_fn(sigma_down));
            let r = 0.5_f32;
            let h = t_next - t;
            let s = t + r * h;
            let x_2 = x.clone().mul_scalar(sigma_fn(s) / sigma_fn(t))
                - denoised.clone().mul_scalar((-h * r).exp_m1());
            let denoised_2 = ctx.denoise(&x_2, sigma_fn(s))?;
            x = x.mul_scalar(sigma_fn(t_next) / sigma_fn(t)) - denoised_2.mul_scalar((-h).exp_m1());
        }
        if sigmas[i + 1] > 0.0 {
            let n = ctx.randn(i, sigmas[i], sigmas[i + 1], &x);
            x = x + n.mul_scalar(s_noise).mul_scalar(sigma_up);
        }
    }
    Ok(x)
}

/// "DPM++ SDE": DPM-Solver++ (stochastic), midpoint r = 1/2, Brownian noise.
pub(crate) fn sample_dpmpp_sde<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
    eta: f32,
    s_noise: f32,
) -> Result<Tensor<4>, Stop<E>> {
    let r = 0.5_f32;
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        ctx.report(i, sigmas[i], sigmas[i], &x, &denoised)?;
        if sigmas[i + 1] == 0.0 {
            let d = to_d(&x, sigmas[i], &denoised);
            x = x + d.mul_scalar(sigmas[i + 1] - sigmas[i]);
        } else {
            let (t, t_next) = (t_fn(sigmas[i]), t_fn(sigmas[i + 1]));
            let h = t_next - t;
            let s = t + h * r;
            let fac = 1.0 / (2.0 * r);

            // Step 1
            let (sd, su) = ancestral_step(sigma_fn(t), sigma_fn(s), eta);
            let s_ = t_fn(sd);
            let x_2 = x.clone().mul_scalar(sigma_fn(s_) / sigma_fn(t))
                - denoised.clone().mul_scalar((t - s_).exp_m1());
            let n = ctx.brownian(i, sigma_fn(t), sigma_fn(s), &x_2);
            let x_2 = x_2 + n.mul_scalar(s_noise).mul_scalar(su);
            let denoised_2 = ctx.denoise(&x_2, sigma_fn(s))?;

            // Step 2
            let (sd, su) = ancestral_step(sigma_fn(t), sigma_fn(t_next), eta);
            let t_next_ = t_fn(sd);
            let denoised_d = denoised.mul_scalar(1.0 - fac) + denoised_2.mul_scalar(fac);
            x = x.mul_scalar(sigma_fn(t_next_) / sigma_fn(t))
                - denoised_d.mul_scalar((t - t_next_).exp_m1());
            let n = ctx.brownian(i, sigma_fn(t), sigma_fn(t_next), &x);
            x = x + n.mul_scalar(s_noise).mul_scalar(su);
        }
    }
    Ok(x)
}

/// "DPM++ 2M": DPM-Solver++(2M), deterministic.
pub(crate) fn sample_dpmpp_2m<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
) -> Result<Tensor<4>, Stop<E>> {
    let mut old_denoised: Option<Tensor<4>> = None;
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        ctx.report(i, sigmas[i], sigmas[i], &x, &denoised)?;
        let (t, t_next) = (t_fn(sigmas[i]), t_fn(sigmas[i + 1]));
        let h = t_next - t;
        let ratio = sigma_fn(t_next) / sigma_fn(t);
        x = match &old_denoised {
            Some(old) if sigmas[i + 1] != 0.0 => {
                let h_last = t - t_fn(sigmas[i - 1]);
                let r = h_last / h;
                let denoised_d = denoised.clone().mul_scalar(1.0 + 1.0 / (2.0 * r))
                    - old.clone().mul_scalar(1.0 / (2.0 * r));
                x.mul_scalar(ratio) - denoised_d.mul_scalar((-h).exp_m1())
            }
            _ => x.mul_scalar(ratio) - denoised.clone().mul_scalar((-h).exp_m1()),
        };
        old_denoised = Some(denoised);
    }
    Ok(x)
}

/// Second-order correction of DPM++ 2M SDE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolverType {
    /// `solver_type='midpoint'` ("DPM++ 2M SDE").
    #[default]
    Midpoint,
    /// `solver_type='heun'` ("DPM++ 2M SDE Heun").
    Heun,
}

/// "DPM++ 2M SDE" / "DPM++ 2M SDE Heun".
///
/// k-diffusion raises `UnboundLocalError` when the first step already lands on σ = 0 (one
/// step); here that step simply returns the denoised latent, as every later σ = 0 step does.
pub(crate) fn sample_dpmpp_2m_sde<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
    eta: f32,
    s_noise: f32,
    solver: SolverType,
) -> Result<Tensor<4>, Stop<E>> {
    let mut old_denoised: Option<Tensor<4>> = None;
    let mut h_last: Option<f32> = None;
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        ctx.report(i, sigmas[i], sigmas[i], &x, &denoised)?;
        let mut h_now = h_last;
        if sigmas[i + 1] == 0.0 {
            x = denoised.clone();
        } else {
            let (t, s) = (-sigmas[i].ln(), -sigmas[i + 1].ln());
            let h = s - t;
            let eta_h = eta * h;
            let c = -(-h - eta_h).exp_m1();
            x = x.mul_scalar(sigmas[i + 1] / sigmas[i] * (-eta_h).exp())
                + denoised.clone().mul_scalar(c);
            if let (Some(old), Some(hl)) = (&old_denoised, h_last) {
                let r = hl / h;
                let diff = denoised.clone() - old.clone();
                x = match solver {
                    SolverType::Heun => x + diff.mul_scalar((c / (-h - eta_h) + 1.0) * (1.0 / r)),
                    SolverType::Midpoint => x + diff.mul_scalar(0.5 * c * (1.0 / r)),
                };
            }
            if eta != 0.0 {
                let n = ctx.brownian(i, sigmas[i], sigmas[i + 1], &x);
                let scale = sigmas[i + 1] * (-(-2.0 * eta_h).exp_m1()).sqrt() * s_noise;
                x = x + n.mul_scalar(scale);
            }
            h_now = Some(h);
        }
        old_denoised = Some(denoised);
        h_last = h_now;
    }
    Ok(x)
}

/// "DPM++ 3M SDE": DPM-Solver++(3M) SDE.
///
/// As [`sample_dpmpp_2m_sde`], a first step to σ = 0 returns the denoised latent where
/// k-diffusion raises.
pub(crate) fn sample_dpmpp_3m_sde<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
    eta: f32,
    s_noise: f32,
) -> Result<Tensor<4>, Stop<E>> {
    let (mut denoised_1, mut denoised_2): (Option<Tensor<4>>, Option<Tensor<4>>) = (None, None);
    let (mut h_1, mut h_2): (Option<f32>, Option<f32>) = (None, None);
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        ctx.report(i, sigmas[i], sigmas[i], &x, &denoised)?;
        // k-diffusion carries the last defined h into the σ = 0 step's bookkeeping.
        let mut h = h_1;
        if sigmas[i + 1] == 0.0 {
            x = denoised.clone();
        } else {
            let (t, s) = (-sigmas[i].ln(), -sigmas[i + 1].ln());
            let hh = s - t;
            let h_eta = hh * (eta + 1.0);
            x = x.mul_scalar((-h_eta).exp()) + denoised.clone().mul_scalar(-(-h_eta).exp_m1());
            let phi_2 = (-h_eta).exp_m1() / h_eta + 1.0;
            if let (Some(h2), Some(h1), Some(d1), Some(d2)) = (h_2, h_1, &denoised_1, &denoised_2) {
                let r0 = h1 / hh;
                let r1 = h2 / hh;
                let d1_0 = (denoised.clone() - d1.clone()).div_scalar(r0);
                let d1_1 = (d1.clone() - d2.clone()).div_scalar(r1);
                let d1v = d1_0.clone()
                    + (d1_0.clone() - d1_1.clone())
                        .mul_scalar(r0)
                        .div_scalar(r0 + r1);
                let d2v = (d1_0 - d1_1).div_scalar(r0 + r1);
                let phi_3 = phi_2 / h_eta - 0.5;
                x = x + d1v.mul_scalar(phi_2) - d2v.mul_scalar(phi_3);
            } else if let (Some(h1), Some(d1)) = (h_1, &denoised_1) {
                let r = h1 / hh;
                let d = (denoised.clone() - d1.clone()).div_scalar(r);
                x = x + d.mul_scalar(phi_2);
            }
            if eta != 0.0 {
                let n = ctx.brownian(i, sigmas[i], sigmas[i + 1], &x);
                let scale = sigmas[i + 1] * (-(-2.0 * hh * eta).exp_m1()).sqrt() * s_noise;
                x = x + n.mul_scalar(scale);
            }
            h = Some(hh);
        }
        denoised_2 = denoised_1.take();
        denoised_1 = Some(denoised);
        h_2 = h_1;
        h_1 = h;
    }
    Ok(x)
}
