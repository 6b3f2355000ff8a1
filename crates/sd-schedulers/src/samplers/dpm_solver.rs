//! DPM-Solver (Lu et al. 2022) as k-diffusion's `DPMSolver` class implements it:
//! "DPM fast" (`sample_dpm_fast`, fixed steps of order 3/2/1) and "DPM adaptive"
//! (`sample_dpm_adaptive`, orders 2/3 with a PID step-size controller).

use burn::tensor::Tensor;

use super::{Ctx, Stop, ancestral_step};

fn t_of(sigma: f32) -> f32 {
    -sigma.ln()
}

fn sigma_of(t: f32) -> f32 {
    (-t).exp()
}

/// The ε evaluations of one step, cached by name as k-diffusion's `eps_cache` dict.
#[derive(Default)]
struct EpsCache {
    eps: Option<Tensor<4>>,
    eps_r1: Option<Tensor<4>>,
    eps_r2: Option<Tensor<4>>,
}

/// ε of the model at some t (k-diffusion's `DPMSolver.eps`), or why sampling stopped.
type Eps<E> = Result<Tensor<4>, Stop<E>>;

fn eps_at<E>(ctx: &mut Ctx<'_, E>, x: &Tensor<4>, t: f32) -> Eps<E> {
    let sigma = sigma_of(t);
    let denoised = ctx.denoise(x, sigma)?;
    Ok((x.clone() - denoised).div_scalar(sigma))
}

fn cached<E>(slot: &mut Option<Tensor<4>>, ctx: &mut Ctx<'_, E>, x: &Tensor<4>, t: f32) -> Eps<E> {
    match slot {
        Some(e) => Ok(e.clone()),
        None => {
            let e = eps_at(ctx, x, t)?;
            *slot = Some(e.clone());
            Ok(e)
        }
    }
}

fn step_1<E>(ctx: &mut Ctx<'_, E>, c: &mut EpsCache, x: &Tensor<4>, t: f32, t_next: f32) -> Eps<E> {
    let h = t_next - t;
    let eps = cached(&mut c.eps, ctx, x, t)?;
    Ok(x.clone() - eps.mul_scalar(sigma_of(t_next) * h.exp_m1()))
}

fn step_2<E>(
    ctx: &mut Ctx<'_, E>,
    c: &mut EpsCache,
    x: &Tensor<4>,
    t: f32,
    t_next: f32,
    r1: f32,
) -> Eps<E> {
    let h = t_next - t;
    let eps = cached(&mut c.eps, ctx, x, t)?;
    let s1 = t + r1 * h;
    let u1 = x.clone() - eps.clone().mul_scalar(sigma_of(s1) * (r1 * h).exp_m1());
    let eps_r1 = cached(&mut c.eps_r1, ctx, &u1, s1)?;
    Ok(x.clone()
        - eps.clone().mul_scalar(sigma_of(t_next) * h.exp_m1())
        - (eps_r1 - eps).mul_scalar(sigma_of(t_next) / (2.0 * r1) * h.exp_m1()))
}

fn step_3<E>(ctx: &mut Ctx<'_, E>, c: &mut EpsCache, x: &Tensor<4>, t: f32, t_next: f32) -> Eps<E> {
    let (r1, r2) = (1.0_f32 / 3.0, 2.0_f32 / 3.0);
    let h = t_next - t;
    let eps = cached(&mut c.eps, ctx, x, t)?;
    let s1 = t + r1 * h;
    let s2 = t + r2 * h;
    let u1 = x.clone() - eps.clone().mul_scalar(sigma_of(s1) * (r1 * h).exp_m1());
    let eps_r1 = cached(&mut c.eps_r1, ctx, &u1, s1)?;
    let u2 = x.clone()
        - eps.clone().mul_scalar(sigma_of(s2) * (r2 * h).exp_m1())
        - (eps_r1 - eps.clone())
            .mul_scalar(sigma_of(s2) * (r2 / r1) * ((r2 * h).exp_m1() / (r2 * h) - 1.0));
    let eps_r2 = cached(&mut c.eps_r2, ctx, &u2, s2)?;
    Ok(x.clone()
        - eps.clone().mul_scalar(sigma_of(t_next) * h.exp_m1())
        - (eps_r2 - eps).mul_scalar(sigma_of(t_next) / r2 * (h.exp_m1() / h - 1.0)))
}

/// "DPM fast": `nfe` model evaluations in steps of order 3 (then 2, 1), evenly spaced in t.
pub(crate) fn sample_dpm_fast<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigma_min: f32,
    sigma_max: f32,
    nfe: usize,
    eta: f32,
    s_noise: f32,
) -> Result<Tensor<4>, Stop<E>> {
    let (t_start, t_end) = (t_of(sigma_max), t_of(sigma_min));
    let m = nfe / 3 + 1;
    let ts = crate::torch_math::linspace_f32(t_start, t_end, m + 1);
    let orders: Vec<usize> = if nfe.is_multiple_of(3) {
        let mut o = vec![3; m.saturating_sub(2)];
        o.extend([2, 1]);
        o
    } else {
        let mut o = vec![3; m - 1];
        o.push(nfe % 3);
        o
    };
    for (i, &order) in orders.iter().enumerate() {
        let mut cache = EpsCache::default();
        let (t, t_next) = (ts[i], ts[i + 1]);
        let (t_next_, su) = if eta != 0.0 {
            let (sd, _) = ancestral_step(sigma_of(t), sigma_of(t_next), eta);
            let t_next_ = t_end.min(t_of(sd));
            let su = (sigma_of(t_next).powi(2) - sigma_of(t_next_).powi(2)).sqrt();
            (t_next_, su)
        } else {
            (t_next, 0.0)
        };
        let eps = cached(&mut cache.eps, ctx, &x, t)?;
        let denoised = x.clone() - eps.mul_scalar(sigma_of(t));
        ctx.report(i, sigma_of(t), sigma_of(t), &x, &denoised)?;
        x = match order {
            1 => step_1(ctx, &mut cache, &x, t, t_next_)?,
            2 => step_2(ctx, &mut cache, &x, t, t_next_, 0.5)?,
            _ => step_3(ctx, &mut cache, &x, t, t_next_)?,
        };
        // k-diffusion draws the noise even when su is 0 (eta = 0).
        let n = ctx.randn(i, sigma_of(t), sigma_of(t_next), &x);
        x = x + n.mul_scalar(su * s_noise);
    }
    Ok(x)
}

/// k-diffusion's `PIDStepSizeController` (Python floats).
struct Pid {
    h: f64,
    b1: f64,
    b2: f64,
    b3: f64,
    accept_safety: f64,
    eps: f64,
    errs: Vec<f64>,
}

impl Pid {
    fn new(h: f64, pcoeff: f64, icoeff: f64, dcoeff: f64, order: f64, accept_safety: f64) -> Self {
        Self {
            h,
            b1: (pcoeff + icoeff + dcoeff) / order,
            b2: -(pcoeff + 2.0 * dcoeff) / order,
            b3: dcoeff / order,
            accept_safety,
            eps: 1e-8,
            errs: Vec::new(),
        }
    }

    fn propose_step(&mut self, error: f64) -> bool {
        let inv_error = 1.0 / (error + self.eps);
        if self.errs.is_empty() {
            self.errs = vec![inv_error; 3];
        }
        self.errs[0] = inv_error;
        let factor =
            self.errs[0].powf(self.b1) * self.errs[1].powf(self.b2) * self.errs[2].powf(self.b3);
        let factor = 1.0 + (factor - 1.0).atan();
        let accept = factor >= self.accept_safety;
        if accept {
            self.errs[2] = self.errs[1];
            self.errs[1] = self.errs[0];
        }
        self.h *= factor;
        accept
    }
}

/// Settings of "DPM adaptive" (k-diffusion's defaults, which A1111 keeps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveOptions {
    /// Solver order, 2 or 3.
    pub order: usize,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Initial step in t.
    pub h_init: f64,
    /// PID proportional coefficient.
    pub pcoeff: f64,
    /// PID integral coefficient.
    pub icoeff: f64,
    /// PID derivative coefficient.
    pub dcoeff: f64,
    /// Smallest step-size factor that accepts a step.
    pub accept_safety: f64,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        Self {
            order: 3,
            rtol: 0.05,
            atol: 0.0078,
            h_init: 0.05,
            pcoeff: 0.0,
            icoeff: 1.0,
            dcoeff: 0.0,
            accept_safety: 0.81,
        }
    }
}

/// max(|a|, |b|) per element, times rtol, at least atol; then the RMS of diff / that.
fn scaled_error(
    x_low: &Tensor<4>,
    x_high: &Tensor<4>,
    x_prev: &Tensor<4>,
    atol: f32,
    rtol: f32,
) -> f64 {
    let delta = x_low
        .clone()
        .abs()
        .max_pair(x_prev.clone().abs())
        .mul_scalar(rtol)
        .clamp_min(atol);
    let q = (x_low.clone() - x_high.clone()) / delta;
    let numel = q.shape().num_elements() as f64;
    let sum_sq: f32 = q.clone().mul(q).sum().into_scalar();
    (sum_sq as f64).sqrt() as f32 as f64 / numel.sqrt()
}

/// "DPM adaptive": embedded DPM-Solver-2/3 pairs with PID step-size control, from σ_max
/// down to σ_min. The callback runs after every attempt (accepted or not), as in
/// k-diffusion, with the latent after the attempt.
pub(crate) fn sample_dpm_adaptive<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigma_min: f32,
    sigma_max: f32,
    opts: &AdaptiveOptions,
    eta: f32,
    s_noise: f32,
) -> Result<Tensor<4>, Stop<E>> {
    let (t_start, t_end) = (t_of(sigma_max), t_of(sigma_min));
    let forward = t_end > t_start;
    let h_init = opts.h_init.abs() * if forward { 1.0 } else { -1.0 };
    let mut s = t_start;
    let mut x_prev = x.clone();
    let order_f = if eta != 0.0 { 1.5 } else { opts.order as f64 };
    let mut pid = Pid::new(
        h_init,
        opts.pcoeff,
        opts.icoeff,
        opts.dcoeff,
        order_f,
        opts.accept_safety,
    );
    let mut steps = 0usize;
    // A hostile tolerance could stall the loop; k-diffusion has no bound, we stop after 10^5.
    while if forward {
        s < t_end - 1e-5
    } else {
        s > t_end + 1e-5
    } {
        if steps >= 100_000 {
            break;
        }
        let mut cache = EpsCache::default();
        // s + pid.h: a float32 tensor plus a Python float.
        let t = if forward {
            t_end.min(s + pid.h as f32)
        } else {
            t_end.max(s + pid.h as f32)
        };
        let (t_, su) = if eta != 0.0 {
            let (sd, _) = ancestral_step(sigma_of(s), sigma_of(t), eta);
            let t_ = t_end.min(t_of(sd));
            (t_, (sigma_of(t).powi(2) - sigma_of(t_).powi(2)).sqrt())
        } else {
            (t, 0.0)
        };
        let eps = cached(&mut cache.eps, ctx, &x, s)?;
        let denoised = x.clone() - eps.mul_scalar(sigma_of(s));
        let (x_low, x_high) = if opts.order == 2 {
            let lo = step_1(ctx, &mut cache, &x, s, t_)?;
            let hi = step_2(ctx, &mut cache, &x, s, t_, 0.5)?;
            (lo, hi)
        } else {
            let lo = step_2(ctx, &mut cache, &x, s, t_, 1.0 / 3.0)?;
            let hi = step_3(ctx, &mut cache, &x, s, t_)?;
            (lo, hi)
        };
        let error = scaled_error(&x_low, &x_high, &x_prev, opts.atol as f32, opts.rtol as f32);
        let accept = pid.propose_step(error);
        if accept {
            x_prev = x_low;
            let n = ctx.randn(steps, sigma_of(s), sigma_of(t), &x);
            x = x_high + n.mul_scalar(su * s_noise);
            s = t;
        }
        steps += 1;
        ctx.report(steps - 1, sigma_of(s), sigma_of(s), &x, &denoised)?;
    }
    Ok(x)
}
