//! PLMS (pseudo linear multistep, Liu et al. 2022) as A1111 ≥ 1.6 runs it: `plms` in
//! `modules/sd_samplers_timesteps_impl.py`, on the same timesteps as DDIM.

use burn::tensor::Tensor;

use super::ddim::{alphas, eps_at_timestep};
use super::{Ctx, Stop};
use crate::noise_schedule::NoiseSchedule;

/// "PLMS".
pub(crate) fn sample_plms<E>(
    ctx: &mut Ctx<'_, E>,
    ns: &NoiseSchedule,
    mut x: Tensor<4>,
    timesteps: &[usize],
) -> Result<Tensor<4>, Stop<E>> {
    if timesteps.is_empty() {
        return Ok(x);
    }
    let (alphas, alphas_prev) = alphas(ns, timesteps);
    let step = |x: &Tensor<4>, e_t: &Tensor<4>, index: usize| -> (Tensor<4>, Tensor<4>) {
        let (a_t, a_prev) = (alphas[index], alphas_prev[index]);
        let sqrt_one_minus_at = (1.0 - a_t).sqrt();
        let pred_x0 =
            (x.clone() - e_t.clone().mul_scalar(sqrt_one_minus_at)).div_scalar(a_t.sqrt());
        let dir_xt = e_t.clone().mul_scalar((1.0 - a_prev).sqrt());
        (pred_x0.clone().mul_scalar(a_prev.sqrt()) + dir_xt, pred_x0)
    };
    let mut old_eps: Vec<Tensor<4>> = Vec::new();
    for i in 0..timesteps.len() - 1 {
        let index = timesteps.len() - 1 - i;
        let t = timesteps[index];
        let t_next = timesteps[index.saturating_sub(1)];
        let e_t = eps_at_timestep(ctx, ns, &x, t)?;
        let e_t_prime = match old_eps.len() {
            0 => {
                // Pseudo improved Euler (2nd order).
                let (x_prev, _) = step(&x, &e_t, index);
                let e_t_next = eps_at_timestep(ctx, ns, &x_prev, t_next)?;
                (e_t.clone() + e_t_next).div_scalar(2.0)
            }
            1 => (e_t.clone().mul_scalar(3.0) - old_eps[0].clone()).div_scalar(2.0),
            2 => (e_t.clone().mul_scalar(23.0) - old_eps[1].clone().mul_scalar(16.0)
                + old_eps[0].clone().mul_scalar(5.0))
            .div_scalar(12.0),
            _ => {
                let n = old_eps.len();
                (e_t.clone().mul_scalar(55.0) - old_eps[n - 1].clone().mul_scalar(59.0)
                    + old_eps[n - 2].clone().mul_scalar(37.0)
                    - old_eps[n - 3].clone().mul_scalar(9.0))
                .div_scalar(24.0)
            }
        };
        let (x_prev, pred_x0) = step(&x, &e_t_prime, index);
        old_eps.push(e_t);
        if old_eps.len() >= 4 {
            old_eps.remove(0);
        }
        x = x_prev;
        ctx.report(i, 0.0, 0.0, &x, &pred_x0)?;
    }
    Ok(x)
}
