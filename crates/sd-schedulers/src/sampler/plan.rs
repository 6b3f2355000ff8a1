//! Where a run goes ([`Plan`]): the σ list or training timesteps a sampler walks, as A1111's
//! `KDiffusionSampler.get_sigmas` and `CompVisSampler.get_timesteps` build them.

use super::SamplerKind;
use crate::error::{Result, SchedulerError};
use crate::noise_schedule::NoiseSchedule;
use crate::samplers::ddim;
use crate::sigma_schedule::{self, SigmaSchedule, SigmaScheduleOptions};

impl SamplerKind {
    /// The σ list A1111's `KDiffusionSampler.get_sigmas` builds for `steps` steps:
    /// "Automatic" resolved to the sampler's default, one extra step when the sampler
    /// discards the penultimate σ (or `always_discard` is set, A1111's "Always discard next
    /// to last sigma"), then that σ dropped.
    pub fn sigmas(
        self,
        schedule: SigmaSchedule,
        steps: usize,
        ns: &NoiseSchedule,
        opts: &SigmaScheduleOptions,
        always_discard: bool,
    ) -> Result<Vec<f32>> {
        if steps == 0 {
            return Err(SchedulerError::ZeroSteps(steps));
        }
        let discard = self.info().discard_next_to_last_sigma || always_discard;
        let schedule = match schedule {
            SigmaSchedule::Automatic => self.default_sigma_schedule(),
            s => s,
        };
        let s = sigma_schedule::sigmas(schedule, steps + usize::from(discard), ns, opts)?;
        Ok(if discard {
            sigma_schedule::discard_penultimate(s)
        } else {
            s
        })
    }

    /// The plan a txt2img run of `steps` steps follows (see [`Plan`]).
    pub fn plan(
        self,
        schedule: SigmaSchedule,
        steps: usize,
        ns: &NoiseSchedule,
        opts: &SigmaScheduleOptions,
    ) -> Result<Plan> {
        if steps == 0 {
            return Err(SchedulerError::ZeroSteps(steps));
        }
        Ok(match self {
            Self::Ddim | Self::Plms | Self::UniPc => {
                Plan::Timesteps(ddim::a1111_timesteps(steps, ns.num_train_timesteps()))
            }
            Self::DpmFast | Self::DpmAdaptive => {
                let s = self.sigmas(schedule, steps, ns, opts, false)?;
                Plan::DpmSolver {
                    sigma_min: ns.sigma_min(),
                    sigma_max: ns.sigma_max(),
                    steps,
                    start_sigma: s[0],
                }
            }
            _ => Plan::Sigmas(self.sigmas(schedule, steps, ns, opts, false)?),
        })
    }
}

/// Where a run goes: the σ list of a k-diffusion sampler, the training timesteps of a
/// timestep sampler, or the σ range of DPM fast / adaptive (which pick their own steps).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Plan {
    /// σ of every step, then the final σ (usually 0).
    Sigmas(Vec<f32>),
    /// Training timesteps, increasing (A1111 walks them from the last to the first).
    Timesteps(Vec<usize>),
    /// DPM fast / adaptive from `sigma_max` down to `sigma_min`; `steps` model evaluations
    /// for DPM fast. `start_sigma` is what A1111 scales the initial noise by (the first σ of
    /// the schedule it computes anyway).
    DpmSolver {
        /// Lowest σ.
        sigma_min: f32,
        /// Highest σ.
        sigma_max: f32,
        /// Model evaluations (DPM fast).
        steps: usize,
        /// Scale of the initial noise in txt2img.
        start_sigma: f32,
    },
}

impl Plan {
    /// What txt2img multiplies the unit initial noise by: σ_0, or 1 for timestep samplers
    /// (they work in the variance-preserving scale).
    pub fn initial_noise_scale(&self) -> f32 {
        match self {
            Plan::Sigmas(s) => s.first().copied().unwrap_or(1.0),
            Plan::Timesteps(_) => 1.0,
            Plan::DpmSolver { start_sigma, .. } => *start_sigma,
        }
    }
}
