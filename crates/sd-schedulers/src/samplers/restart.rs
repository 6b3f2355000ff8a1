//! Restart sampling (Xu et al. 2023), A1111's `restart_sampler`
//! (`modules/sd_samplers_extra.py`): Heun steps on a Karras schedule, with a few jumps back
//! up in σ (adding fresh noise) near σ = 0.1.

use burn::tensor::Tensor;

use super::{Ctx, Stop, to_d};
use crate::sigma_schedule::karras;

/// Index of the σ closest to `v` (first on ties), as `argmin(abs(sigmas - v))`.
fn argmin_abs(sigmas: &[f32], v: f32) -> usize {
    let mut best = 0;
    for (i, s) in sigmas.iter().enumerate() {
        if (s - v).abs() < (sigmas[best] - v).abs() {
            best = i;
        }
    }
    best
}

/// Where to restart: (σ near which, restart steps, restart times, σ to jump back up to).
type RestartAt = (f32, usize, usize, f32);

/// The (σ, σ_next) pairs Restart walks for the given schedule (A1111's automatic
/// `restart_list`: for 20+ steps, 9 restart steps once; for 36+, steps/4 twice).
fn step_list(sigmas: &[f32]) -> Vec<(f32, f32)> {
    let steps = sigmas.len() - 1;
    let (sigmas, restart): (Vec<f32>, Option<RestartAt>) = if steps >= 20 {
        let (mut restart_steps, mut restart_times) = (9, 1);
        if steps >= 36 {
            restart_steps = steps / 4;
            restart_times = 2;
        }
        let s = karras(
            steps - restart_steps * restart_times,
            sigmas[sigmas.len() - 2],
            sigmas[0],
            7.0,
        );
        (s, Some((0.1, restart_steps + 1, restart_times, 2.0)))
    } else {
        (sigmas.to_vec(), None)
    };
    let restart_at = restart.map(|(key, n, times, max)| (argmin_abs(&sigmas, key), n, times, max));
    let mut list = Vec::new();
    for i in 0..sigmas.len() - 1 {
        list.push((sigmas[i], sigmas[i + 1]));
        if let Some((idx, restart_steps, mut restart_times, restart_max)) = restart_at
            && idx == i + 1
        {
            let min_idx = i + 1;
            let max_idx = argmin_abs(&sigmas, restart_max);
            if max_idx < min_idx {
                let mut sr = karras(restart_steps, sigmas[min_idx], sigmas[max_idx], 7.0);
                sr.pop();
                while restart_times > 0 {
                    restart_times -= 1;
                    list.extend(sr.windows(2).map(|w| (w[0], w[1])));
                }
            }
        }
    }
    list
}

/// "Restart".
pub(crate) fn sample_restart<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
    s_noise: f32,
) -> Result<Tensor<4>, Stop<E>> {
    let list = step_list(sigmas);
    let mut last_sigma: Option<f32> = None;
    for (step_id, &(old_sigma, new_sigma)) in list.iter().enumerate() {
        // A jump back up in σ (a restart) re-noises x to the higher level.
        if let Some(last) = last_sigma
            && last < old_sigma
        {
            let n = ctx.randn(step_id, old_sigma, new_sigma, &x);
            x = x + n
                .mul_scalar(s_noise)
                .mul_scalar((old_sigma * old_sigma - last * last).sqrt());
        }
        // heun_step
        let denoised = ctx.denoise(&x, old_sigma)?;
        let d = to_d(&x, old_sigma, &denoised);
        ctx.report(step_id, new_sigma, old_sigma, &x, &denoised)?;
        let dt = new_sigma - old_sigma;
        if new_sigma == 0.0 {
            x = x + d.mul_scalar(dt);
        } else {
            let x_2 = x.clone() + d.clone().mul_scalar(dt);
            let denoised_2 = ctx.denoise(&x_2, new_sigma)?;
            let d_2 = to_d(&x_2, new_sigma, &denoised_2);
            x = x + (d + d_2).div_scalar(2.0).mul_scalar(dt);
        }
        last_sigma = Some(new_sigma);
    }
    Ok(x)
}
