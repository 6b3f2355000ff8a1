//! Running a sampler: its options, the dispatch to the `sample_*` functions, and what a run
//! returns.

use std::ops::ControlFlow;

use burn::tensor::Tensor;

use super::{Plan, SamplerKind};
use crate::denoiser::Denoiser;
use crate::error::SchedulerError;
use crate::noise::NoiseSource;
use crate::noise_schedule::NoiseSchedule;
use crate::samplers::dpm_solver::AdaptiveOptions;
use crate::samplers::dpmpp::SolverType;
use crate::samplers::unipc::UniPcOptions;
use crate::samplers::{
    Churn, Ctx, StepInfo, Stop, ddim, dpm_solver, dpmpp, euler, heun_dpm2, lms, plms, restart,
    unipc,
};
use crate::sigma_schedule::{SigmaSchedule, SigmaScheduleOptions};

/// Sampler parameters users can set (A1111's "Eta", "sigma churn", ... settings).
/// `Default` is A1111's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SamplerOptions {
    /// η of ancestral / SDE / DDIM steps; `None` = [`SamplerKind::default_eta`].
    pub eta: Option<f64>,
    /// Karras' churn for Euler, Heun and DPM2, and `s_noise` for every sampler that adds
    /// noise.
    pub churn: Churn,
    /// DPM adaptive's tolerances.
    pub adaptive: AdaptiveOptions,
    /// A1111's UniPC settings (variant, skip type, order, lower order final).
    pub unipc: UniPcOptions,
    /// The run is img2img (A1111's `is_img2img`), the plan's timesteps cut at `t_enc`. Only
    /// UniPC looks at it: it then starts at `timesteps[-1] / 1000 + 1 / 1000` instead of
    /// t = 1.
    pub img2img: bool,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// The final latent, or — when the callback stopped the run — the last denoised
    /// estimate, as A1111 returns on interrupt.
    pub latent: Tensor<4>,
    /// The step at which the callback stopped the run, if it did.
    pub cancelled_at: Option<usize>,
}

impl SamplerKind {
    /// Runs the sampler from `x` (already at the plan's first noise level: `noise · σ_0` for
    /// txt2img, see [`SamplerKind::txt2img`]) along `plan`.
    ///
    /// `callback` is called once per step (see [`StepInfo`]); returning
    /// `ControlFlow::Break(())` stops the run.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - returns: the same shape
    ///
    /// # Errors
    /// The denoiser's first error, at once (no step runs after it); or, converted into the
    /// denoiser's error type, [`SchedulerError::InvalidParameter`] for an η that is negative
    /// or not finite, a plan of the wrong kind, or UniPC settings the plan cannot hold.
    #[allow(clippy::too_many_arguments)]
    pub fn sample<E: From<SchedulerError>>(
        self,
        denoiser: &mut dyn Denoiser<Error = E>,
        ns: &NoiseSchedule,
        x: Tensor<4>,
        plan: &Plan,
        noise: &mut dyn NoiseSource,
        opts: &SamplerOptions,
        callback: &mut dyn FnMut(&StepInfo<'_>) -> ControlFlow<()>,
    ) -> Result<Sampled, E> {
        let eta_f64 = opts.eta.unwrap_or(self.default_eta());
        if !eta_f64.is_finite() || eta_f64 < 0.0 {
            return Err(SchedulerError::InvalidParameter {
                name: "eta",
                value: eta_f64,
                reason: "must be finite and non-negative",
            }
            .into());
        }
        let eta = eta_f64 as f32;
        let s_noise = opts.churn.s_noise;
        let mut ctx = Ctx::new(denoiser, noise, callback);
        let start = x.clone();
        let wrong_plan = || SchedulerError::InvalidParameter {
            name: "plan",
            value: f64::NAN,
            reason: "this sampler needs a different plan kind (see SamplerKind::plan)",
        };
        let result = match (self, plan) {
            (Self::Euler, Plan::Sigmas(s)) => euler::sample_euler(&mut ctx, x, s, &opts.churn),
            (Self::EulerA, Plan::Sigmas(s)) => {
                euler::sample_euler_ancestral(&mut ctx, x, s, eta, s_noise)
            }
            (Self::Lms, Plan::Sigmas(s)) => lms::sample_lms(&mut ctx, x, s, 4),
            (Self::Heun, Plan::Sigmas(s)) => heun_dpm2::sample_heun(&mut ctx, x, s, &opts.churn),
            (Self::Dpm2, Plan::Sigmas(s)) => heun_dpm2::sample_dpm_2(&mut ctx, x, s, &opts.churn),
            (Self::Dpm2A, Plan::Sigmas(s)) => {
                heun_dpm2::sample_dpm_2_ancestral(&mut ctx, x, s, eta, s_noise)
            }
            (Self::DpmPp2M, Plan::Sigmas(s)) => dpmpp::sample_dpmpp_2m(&mut ctx, x, s),
            (Self::DpmPp2SA, Plan::Sigmas(s)) => {
                dpmpp::sample_dpmpp_2s_ancestral(&mut ctx, x, s, eta, s_noise)
            }
            (Self::DpmPpSde, Plan::Sigmas(s)) => {
                dpmpp::sample_dpmpp_sde(&mut ctx, x, s, eta, s_noise)
            }
            (Self::DpmPp2MSde, Plan::Sigmas(s)) => {
                dpmpp::sample_dpmpp_2m_sde(&mut ctx, x, s, eta, s_noise, SolverType::Midpoint)
            }
            (Self::DpmPp2MSdeHeun, Plan::Sigmas(s)) => {
                dpmpp::sample_dpmpp_2m_sde(&mut ctx, x, s, eta, s_noise, SolverType::Heun)
            }
            (Self::DpmPp3MSde, Plan::Sigmas(s)) => {
                dpmpp::sample_dpmpp_3m_sde(&mut ctx, x, s, eta, s_noise)
            }
            (Self::Restart, Plan::Sigmas(s)) => restart::sample_restart(&mut ctx, x, s, s_noise),
            (
                Self::DpmFast,
                Plan::DpmSolver {
                    sigma_min,
                    sigma_max,
                    steps,
                    ..
                },
            ) => dpm_solver::sample_dpm_fast(
                &mut ctx, x, *sigma_min, *sigma_max, *steps, eta, s_noise,
            ),
            (
                Self::DpmAdaptive,
                Plan::DpmSolver {
                    sigma_min,
                    sigma_max,
                    ..
                },
            ) => dpm_solver::sample_dpm_adaptive(
                &mut ctx,
                x,
                *sigma_min,
                *sigma_max,
                &opts.adaptive,
                eta,
                s_noise,
            ),
            (Self::Ddim, Plan::Timesteps(t)) => ddim::sample_ddim(&mut ctx, ns, x, t, eta_f64),
            (Self::Plms, Plan::Timesteps(t)) => plms::sample_plms(&mut ctx, ns, x, t),
            (Self::UniPc, Plan::Timesteps(t)) => {
                opts.unipc.check(t.len())?;
                unipc::sample_unipc(&mut ctx, ns, x, t, &opts.unipc, opts.img2img)
            }
            _ => return Err(wrong_plan().into()),
        };
        match result {
            Ok(latent) => Ok(Sampled {
                latent,
                cancelled_at: None,
            }),
            Err(Stop::Cancelled) => Ok(Sampled {
                latent: ctx.last_denoised.clone().unwrap_or(start),
                cancelled_at: Some(ctx.steps_reported.saturating_sub(1)),
            }),
            Err(Stop::Failed(error)) => Err(error),
        }
    }

    /// txt2img: plans `steps` steps of `schedule`, scales the unit `noise` latent by the
    /// plan's first noise level as A1111 does, and samples.
    ///
    /// # Shapes
    /// - `noise`: `[batch, channels, height, width]`, standard normal
    /// - returns: the same shape
    ///
    /// # Errors
    /// As [`sample`](Self::sample), plus zero steps.
    #[allow(clippy::too_many_arguments)]
    pub fn txt2img<E: From<SchedulerError>>(
        self,
        denoiser: &mut dyn Denoiser<Error = E>,
        ns: &NoiseSchedule,
        noise: Tensor<4>,
        schedule: SigmaSchedule,
        steps: usize,
        step_noise: &mut dyn NoiseSource,
        opts: &SamplerOptions,
        callback: &mut dyn FnMut(&StepInfo<'_>) -> ControlFlow<()>,
    ) -> Result<Sampled, E> {
        let plan = self.plan(schedule, steps, ns, &SigmaScheduleOptions::default())?;
        let x = noise.mul_scalar(plan.initial_noise_scale());
        self.sample(denoiser, ns, x, &plan, step_noise, opts, callback)
    }
}
