//! What a sampler needs from a model: `D(x, σ)`, the denoised estimate of `x` at noise level
//! σ. Samplers know nothing else of UNets, conditioning or classifier-free guidance.
//!
//! [`DiscreteDenoiser`] turns a network that predicts ε or v at a (fractional) timestep into
//! a [`Denoiser`], with the scalings of k-diffusion's `DiscreteEpsDDPMDenoiser` and
//! `DiscreteVDDPMDenoiser` (`k_diffusion/external.py`), which A1111 wraps every SD model in
//! (`CompVisDenoiser` / `CompVisVDenoiser`).

use burn::tensor::Tensor;

use crate::error::SchedulerError;
use crate::noise_schedule::NoiseSchedule;

/// A model seen as a denoiser of `(x, σ)`.
///
/// `x` is the noisy latent in k-diffusion's variance-exploding scale (`x = x₀ + σ·ε`), σ the
/// same for the whole batch; the result is the model's estimate of `x₀`, the same shape.
///
/// An evaluation may fail (a network refusing its input): the sampler then stops at once and
/// [`SamplerKind::sample`](crate::SamplerKind::sample) returns the error. Any
/// `FnMut(Tensor<4>, f32) -> Tensor<4>` is a `Denoiser` that never fails; its `Error` is
/// [`SchedulerError`], so sampling with it returns this crate's [`Result`](crate::Result).
pub trait Denoiser {
    /// Why an evaluation failed: the caller's own error type. Sampling returns it, so it
    /// must also hold the sampler's own refusals (`From<SchedulerError>`).
    type Error;

    /// Denoises `x` at noise level `sigma`.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - returns: the same shape
    ///
    /// # Errors
    /// Whatever stopped the model; the sampler takes no further step.
    fn denoise(&mut self, x: Tensor<4>, sigma: f32) -> Result<Tensor<4>, Self::Error>;
}

impl<F: FnMut(Tensor<4>, f32) -> Tensor<4>> Denoiser for F {
    type Error = SchedulerError;

    fn denoise(&mut self, x: Tensor<4>, sigma: f32) -> Result<Tensor<4>, SchedulerError> {
        Ok(self(x, sigma))
    }
}

/// A network evaluated at a (fractional) training timestep: the UNet with its conditioning
/// and guidance, as k-diffusion's `get_eps` / `get_v` calls it. Like [`Denoiser`], it may
/// fail with an error of its own, and a closure is one that never fails.
pub trait TimestepModel {
    /// Why an evaluation failed.
    type Error;

    /// The network's raw output (ε or v) for the scaled input `x_in` at timestep `t`.
    ///
    /// # Shapes
    /// - `x_in`: `[batch, channels, height, width]`
    /// - returns: the same shape
    ///
    /// # Errors
    /// Whatever stopped the network.
    fn forward(&mut self, x_in: Tensor<4>, t: f32) -> Result<Tensor<4>, Self::Error>;
}

impl<F: FnMut(Tensor<4>, f32) -> Tensor<4>> TimestepModel for F {
    type Error = SchedulerError;

    fn forward(&mut self, x_in: Tensor<4>, t: f32) -> Result<Tensor<4>, SchedulerError> {
        Ok(self(x_in, t))
    }
}

/// What the network predicts (diffusers' `prediction_type`; LDM's `parameterization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Prediction {
    /// The added noise ε (SD 1.x, SD 2.x base 512).
    #[default]
    Epsilon,
    /// The velocity v = √ᾱ·ε − √(1−ᾱ)·x₀ (SD 2.x 768-v).
    V,
}

/// The scalings of k-diffusion's discrete DDPM denoisers at noise level σ (σ_data = 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalings {
    /// Weight of the input in the output.
    pub c_skip: f32,
    /// Weight of the network's output.
    pub c_out: f32,
    /// Scale applied to the input before the network sees it.
    pub c_in: f32,
}

impl Scalings {
    /// ε-prediction (`DiscreteEpsDDPMDenoiser.get_scalings`): c_skip = 1, c_out = −σ,
    /// c_in = 1/√(σ²+1).
    pub fn epsilon(sigma: f32) -> Self {
        Self {
            c_skip: 1.0,
            c_out: -sigma,
            c_in: 1.0 / (sigma * sigma + 1.0).sqrt(),
        }
    }

    /// v-prediction (`DiscreteVDDPMDenoiser.get_scalings`): c_skip = 1/(σ²+1),
    /// c_out = −σ/√(σ²+1), c_in = 1/√(σ²+1).
    pub fn v(sigma: f32) -> Self {
        let s2 = sigma * sigma + 1.0;
        Self {
            c_skip: 1.0 / s2,
            c_out: -sigma / s2.sqrt(),
            c_in: 1.0 / s2.sqrt(),
        }
    }
}

/// A [`TimestepModel`] wrapped as a [`Denoiser`] on a discrete noise schedule:
/// `D(x, σ) = c_skip·x + c_out·F(c_in·x, t(σ))`, `t(σ)` from [`NoiseSchedule::sigma_to_t`].
#[derive(Debug, Clone)]
pub struct DiscreteDenoiser<'a, M> {
    model: M,
    schedule: &'a NoiseSchedule,
    prediction: Prediction,
}

impl<'a, M: TimestepModel> DiscreteDenoiser<'a, M> {
    /// Wraps `model`, which predicts `prediction`, on `schedule`.
    pub fn new(model: M, schedule: &'a NoiseSchedule, prediction: Prediction) -> Self {
        Self {
            model,
            schedule,
            prediction,
        }
    }

    /// The wrapped model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The wrapped model, mutably.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// Unwraps the model.
    pub fn into_model(self) -> M {
        self.model
    }
}

impl<M: TimestepModel> Denoiser for DiscreteDenoiser<'_, M> {
    type Error = M::Error;

    fn denoise(&mut self, x: Tensor<4>, sigma: f32) -> Result<Tensor<4>, M::Error> {
        let s = match self.prediction {
            Prediction::Epsilon => Scalings::epsilon(sigma),
            Prediction::V => Scalings::v(sigma),
        };
        let t = self.schedule.sigma_to_t(sigma);
        let out = self.model.forward(x.clone().mul_scalar(s.c_in), t)?;
        Ok(match self.prediction {
            // k-diffusion: input + eps * c_out (c_skip is 1, so no multiply).
            Prediction::Epsilon => x + out.mul_scalar(s.c_out),
            Prediction::V => out.mul_scalar(s.c_out) + x.mul_scalar(s.c_skip),
        })
    }
}
