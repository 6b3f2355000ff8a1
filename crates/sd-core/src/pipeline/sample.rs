//! Where sampling starts and which σ (or timesteps) it walks: txt2img from pure noise, img2img
//! part-way down the schedule, as A1111's `sample` / `sample_img2img` do.

use std::ops::ControlFlow;

use burn::tensor::Tensor;
use sd_schedulers::{
    Denoiser, NoiseSchedule, Plan, SamplerOptions, SamplerSpec, SigmaScheduleOptions, StepInfo,
};

use super::ImageNoise;
use crate::error::{CoreError, Result};

/// How a run begins.
#[derive(Debug, Clone)]
pub enum Start {
    /// From noise alone (txt2img).
    Noise,
    /// From an encoded image, noised to the level `strength` asks for (img2img).
    Image {
        /// The init latent, scaled as the UNet sees latents: `[batch, 4, h, w]`.
        latent: Box<Tensor<4>>,
        /// A1111's "Denoising strength", 0..1.
        strength: f32,
        /// A1111's `setup_img2img_steps` with the steps given (the hires fix's second pass,
        /// or img2img with "fix steps"): exactly `steps` steps are run, over the last part of
        /// a schedule of `⌊steps / min(strength, 0.999)⌋`. Off: `⌊min(strength, 0.999) ·
        /// steps⌋` steps of a schedule of `steps`.
        fix_steps: bool,
    },
}

/// The plan of an img2img run and its starting latent, following A1111 with "fix steps" off:
/// `t_enc = ⌊min(strength, 0.999) · steps⌋`; k-diffusion samplers take
/// `σ[steps − t_enc − 1 ..]` and start at `x₀ + noise · σ_start`; timestep samplers take
/// `timesteps[.. t_enc]` and start at `√ᾱ·x₀ + √(1 − ᾱ)·noise` with ᾱ of `timesteps[t_enc]`.
pub(crate) fn img2img_plan(
    spec: SamplerSpec,
    full: Plan,
    (steps, t_enc): (usize, usize),
    ns: &NoiseSchedule,
    init: Tensor<4>,
    noise: Tensor<4>,
) -> Result<(Plan, Tensor<4>)> {
    let out_of_range = || CoreError::InvalidRequest {
        name: "steps",
        reason: format!("the schedule of {steps} steps is too short for img2img"),
    };
    Ok(match full {
        Plan::Sigmas(sigmas) => {
            let sched = sigmas
                .get(steps - t_enc - 1..)
                .ok_or_else(out_of_range)?
                .to_vec();
            let x = init + noise.mul_scalar(sched[0]);
            (Plan::Sigmas(sched), x)
        }
        Plan::Timesteps(timesteps) => {
            let t = *timesteps.get(t_enc).ok_or_else(out_of_range)?;
            let a = ns.alphas_cumprod()[t];
            let x = init.mul_scalar(a.sqrt()) + noise.mul_scalar((1.0 - a).sqrt());
            (Plan::Timesteps(timesteps[..t_enc].to_vec()), x)
        }
        Plan::DpmSolver { .. } => {
            // A1111 hands DPM fast / adaptive the σ range of the img2img part of the
            // sampler's σ list, and `n = len − 1` evaluations.
            let sigmas = spec.sampler.sigmas(
                spec.sigma_schedule,
                steps,
                ns,
                &SigmaScheduleOptions::default(),
                false,
            )?;
            let sched = sigmas.get(steps - t_enc - 1..).ok_or_else(out_of_range)?;
            if sched.len() < 2 {
                return Err(out_of_range());
            }
            let x = init + noise.mul_scalar(sched[0]);
            let plan = Plan::DpmSolver {
                sigma_min: sched[sched.len() - 2],
                sigma_max: sched[0],
                steps: sched.len() - 1,
                start_sigma: sched[0],
            };
            (plan, x)
        }
        _ => return Err(out_of_range()),
    })
}

/// A1111's `setup_img2img_steps`: the length of the schedule and `t_enc`, the steps run
/// from it (see [`Start::Image`]).
///
/// # Errors
/// A strength outside 0..1, or 0 with `fix_steps` (A1111 would divide by it).
pub(crate) fn img2img_steps(
    steps: usize,
    strength: f32,
    fix_steps: bool,
) -> Result<(usize, usize)> {
    if !(0.0..=1.0).contains(&strength) {
        return Err(CoreError::InvalidRequest {
            name: "denoising strength",
            reason: format!("{strength} is outside 0..1"),
        });
    }
    // A1111's strength is a Python float: the number as written (0.7), not the f32 nearest
    // to it widened (0.699999988…), which would floor 0.7 · 10 to 6 instead of 7.
    let capped = super::as_typed(strength).min(0.999);
    if fix_steps {
        if strength <= 0.0 || steps == 0 {
            return Err(CoreError::InvalidRequest {
                name: "denoising strength",
                reason: "a second pass needs a strength above 0 and at least one step".into(),
            });
        }
        Ok(((steps as f64 / capped) as usize, steps - 1))
    } else {
        Ok((steps, (capped * steps as f64).floor() as usize))
    }
}

/// Runs `spec` for `steps` steps from `start`, with unit-variance `noise` as the first draw
/// of the image generators; returns the final latent (or the last denoised estimate when the
/// callback cancelled), or the denoiser's first error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    denoiser: &mut dyn Denoiser<Error = CoreError>,
    ns: &NoiseSchedule,
    spec: SamplerSpec,
    steps: usize,
    start: Start,
    noise: Tensor<4>,
    step_noise: &mut ImageNoise,
    options: &SamplerOptions,
    callback: &mut dyn FnMut(&StepInfo<'_>) -> ControlFlow<()>,
) -> Result<Tensor<4>> {
    // A1111's `setup_img2img_steps`: the schedule's length and the steps run from it.
    let (steps, t_enc) = match &start {
        Start::Noise => (steps, steps),
        Start::Image {
            strength,
            fix_steps,
            ..
        } => img2img_steps(steps, *strength, *fix_steps)?,
    };
    let full = spec.sampler.plan(
        spec.sigma_schedule,
        steps,
        ns,
        &SigmaScheduleOptions::default(),
    )?;
    // A1111's Brownian trees span the σ of the full schedule, img2img included.
    if let Plan::Sigmas(sigmas) = &full {
        step_noise.set_brownian_sigmas(sigmas);
    }
    let (plan, x) = match start {
        Start::Noise => {
            let scale = full.initial_noise_scale();
            (full, noise.mul_scalar(scale))
        }
        Start::Image { latent, .. } => {
            img2img_plan(spec, full, (steps, t_enc), ns, *latent, noise)?
        }
    };
    let sampled = spec
        .sampler
        .sample(denoiser, ns, x, &plan, step_noise, options, callback)?;
    Ok(sampled.latent)
}
