//! The samplers, one file per k-diffusion / A1111 function, and what they share: the step
//! callback, cancellation, noise requests.
//!
//! Each `sample_*` mirrors the function of the same name in k-diffusion's
//! `k_diffusion/sampling.py` (the version A1111 1.6–1.10 pins, crowsonkb/k-diffusion
//! ab527a9a) or A1111's `modules/sd_samplers_timesteps_impl.py` / `sd_samplers_extra.py`
//! (UniPC: over `modules/models/diffusion/uni_pc/uni_pc.py`).
//! Scalar coefficients are computed in float32 as the originals compute them on float32
//! tensors, so intermediate latents agree to float32 rounding.

use std::ops::ControlFlow;

use burn::tensor::Tensor;

use crate::denoiser::Denoiser;
use crate::noise::{NoiseKind, NoiseRequest, NoiseSource};

pub mod ddim;
pub mod dpm_solver;
pub mod dpmpp;
pub mod euler;
pub mod heun_dpm2;
pub mod lms;
pub mod plms;
pub mod restart;
pub mod unipc;

/// What a sampler reports once per step (k-diffusion's `callback` dict).
#[derive(Debug, Clone, Copy)]
pub struct StepInfo<'a> {
    /// The step index (`i`).
    pub step: usize,
    /// σ of the step (`sigma`; 0 for the timestep samplers, as A1111 reports).
    pub sigma: f32,
    /// σ the model was evaluated at (`sigma_hat`; differs from `sigma` with churn).
    pub sigma_hat: f32,
    /// The latent as the reference reports it: before the step for k-diffusion samplers,
    /// after it for DDIM / PLMS / UniPC (A1111's timestep samplers call back after updating
    /// `x`).
    pub x: &'a Tensor<4>,
    /// The denoised estimate of this step (`denoised`; `pred_x0` for DDIM / PLMS; UniPC's data
    /// prediction, which its last step, evaluating no model, repeats from the step before).
    pub denoised: &'a Tensor<4>,
}

/// Why a sampler stopped before its last step: its callback asked, or the denoiser failed
/// with `E`. Every `sample_*` returns it with `?` at once, so no step runs after either.
#[derive(Debug)]
pub(crate) enum Stop<E> {
    /// The callback returned `ControlFlow::Break`.
    Cancelled,
    /// The denoiser returned this error.
    Failed(E),
}

/// What every sampler is handed: the model, the noise, the callback.
pub(crate) struct Ctx<'a, E> {
    pub(crate) denoiser: &'a mut dyn Denoiser<Error = E>,
    pub(crate) noise: &'a mut dyn NoiseSource,
    pub(crate) callback: &'a mut dyn FnMut(&StepInfo<'_>) -> ControlFlow<()>,
    pub(crate) last_denoised: Option<Tensor<4>>,
    pub(crate) steps_reported: usize,
}

impl<'a, E> Ctx<'a, E> {
    pub(crate) fn new(
        denoiser: &'a mut dyn Denoiser<Error = E>,
        noise: &'a mut dyn NoiseSource,
        callback: &'a mut dyn FnMut(&StepInfo<'_>) -> ControlFlow<()>,
    ) -> Self {
        Self {
            denoiser,
            noise,
            callback,
            last_denoised: None,
            steps_reported: 0,
        }
    }

    /// `model(x, sigma)`; a failure stops the sampler (`?`).
    pub(crate) fn denoise(&mut self, x: &Tensor<4>, sigma: f32) -> Result<Tensor<4>, Stop<E>> {
        self.denoiser
            .denoise(x.clone(), sigma)
            .map_err(Stop::Failed)
    }

    /// Calls the user's callback; remembers `denoised` (A1111 returns the last one when
    /// interrupted).
    pub(crate) fn report(
        &mut self,
        step: usize,
        sigma: f32,
        sigma_hat: f32,
        x: &Tensor<4>,
        denoised: &Tensor<4>,
    ) -> Result<(), Stop<E>> {
        self.last_denoised = Some(denoised.clone());
        self.steps_reported += 1;
        let info = StepInfo {
            step,
            sigma,
            sigma_hat,
            x,
            denoised,
        };
        match (self.callback)(&info) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(Stop::Cancelled),
        }
    }

    /// `torch.randn_like(x)`.
    pub(crate) fn randn(
        &mut self,
        step: usize,
        sigma: f32,
        sigma_next: f32,
        like: &Tensor<4>,
    ) -> Tensor<4> {
        let req = NoiseRequest {
            kind: NoiseKind::Randn,
            step,
            sigma,
            sigma_next,
        };
        self.noise.noise(&req, like)
    }

    /// `noise_sampler(sigma, sigma_next)` of a Brownian-tree sampler.
    pub(crate) fn brownian(
        &mut self,
        step: usize,
        sigma: f32,
        sigma_next: f32,
        like: &Tensor<4>,
    ) -> Tensor<4> {
        let req = NoiseRequest {
            kind: NoiseKind::Brownian,
            step,
            sigma,
            sigma_next,
        };
        self.noise.noise(&req, like)
    }
}

/// k-diffusion's `to_d`: the ODE derivative `(x − D) / σ`.
pub(crate) fn to_d(x: &Tensor<4>, sigma: f32, denoised: &Tensor<4>) -> Tensor<4> {
    (x.clone() - denoised.clone()).div_scalar(sigma)
}

/// k-diffusion's `get_ancestral_step`: (σ_down, σ_up) for an ancestral step of strength η.
///
/// Computed in float64: when σ_to ≪ σ_from, σ_down = √(σ_to² − σ_up²) cancels
/// catastrophically, and float32 leaves only a couple of correct digits in it.
pub(crate) fn ancestral_step(sigma_from: f32, sigma_to: f32, eta: f32) -> (f32, f32) {
    if eta == 0.0 {
        return (sigma_to, 0.0);
    }
    let (f, t, eta) = (sigma_from as f64, sigma_to as f64, eta as f64);
    let sigma_up = t.min(eta * (t * t * (f * f - t * t) / (f * f)).sqrt());
    let sigma_down = (t * t - sigma_up * sigma_up).sqrt();
    (sigma_down as f32, sigma_up as f32)
}

/// Churn parameters of Karras et al. (2022), Algorithm 2 (Euler, Heun, DPM2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// Amount of churn (`s_churn`), 0 = none (A1111's default).
    pub s_churn: f32,
    /// Lowest σ churn applies at (`s_tmin`).
    pub s_tmin: f32,
    /// Highest σ churn applies at (`s_tmax`; A1111 turns its 0 into ∞).
    pub s_tmax: f32,
    /// Scale of the added noise (`s_noise`).
    pub s_noise: f32,
}

impl Default for Churn {
    fn default() -> Self {
        Self {
            s_churn: 0.0,
            s_tmin: 0.0,
            s_tmax: f32::INFINITY,
            s_noise: 1.0,
        }
    }
}

impl Churn {
    /// γ of step `i` for a schedule of `n_sigmas` values (k-diffusion evaluates it in
    /// Python floats: `min(s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1)`).
    pub(crate) fn gamma(&self, sigma: f32, n_sigmas: usize) -> f64 {
        if self.s_tmin <= sigma && sigma <= self.s_tmax {
            (self.s_churn as f64 / (n_sigmas - 1) as f64).min(2f64.sqrt() - 1.0)
        } else {
            0.0
        }
    }

    /// The first half of a churned step: draws the (always requested, as k-diffusion calls
    /// `randn_like` every step) noise and raises `x` from σ to σ̂. Returns (x, σ̂).
    pub(crate) fn apply<E>(
        &self,
        ctx: &mut Ctx<'_, E>,
        x: Tensor<4>,
        sigmas: &[f32],
        i: usize,
    ) -> (Tensor<4>, f32) {
        let gamma = self.gamma(sigmas[i], sigmas.len());
        let eps = ctx
            .randn(i, sigmas[i], sigmas[i + 1], &x)
            .mul_scalar(self.s_noise);
        let sigma_hat = sigmas[i] * (gamma + 1.0) as f32;
        if gamma > 0.0 {
            let x = x + eps.mul_scalar((sigma_hat * sigma_hat - sigmas[i] * sigmas[i]).sqrt());
            (x, sigma_hat)
        } else {
            (x, sigma_hat)
        }
    }
}
