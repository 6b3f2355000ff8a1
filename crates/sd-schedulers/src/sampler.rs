//! The samplers by A1111 name, their options, and the entry point that runs one.
//!
//! The table mirrors A1111 1.10's `samplers_k_diffusion` (`modules/sd_samplers_kdiffusion.py`),
//! `samplers_timesteps` (`modules/sd_samplers_timesteps.py`) and the name resolution of
//! `get_sampler_and_scheduler` (`modules/sd_samplers.py`).

use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;

use burn::tensor::Tensor;

use crate::denoiser::Denoiser;
use crate::error::{Result, SchedulerError};
use crate::noise::NoiseSource;
use crate::noise_schedule::NoiseSchedule;
use crate::samplers::dpm_solver::AdaptiveOptions;
use crate::samplers::dpmpp::SolverType;
use crate::samplers::unipc::UniPcOptions;
use crate::samplers::{
    Churn, Ctx, StepInfo, ddim, dpm_solver, dpmpp, euler, heun_dpm2, lms, plms, restart, unipc,
};
use crate::schedules::{self, ScheduleOptions, ScheduleType};

/// A sampler, by the name A1111 shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SamplerKind {
    /// "DPM++ 2M" (`sample_dpmpp_2m`).
    DpmPp2M,
    /// "DPM++ SDE" (`sample_dpmpp_sde`).
    DpmPpSde,
    /// "DPM++ 2M SDE" (`sample_dpmpp_2m_sde`, midpoint).
    DpmPp2MSde,
    /// "DPM++ 2M SDE Heun" (`sample_dpmpp_2m_sde`, `solver_type='heun'`).
    DpmPp2MSdeHeun,
    /// "DPM++ 2S a" (`sample_dpmpp_2s_ancestral`).
    DpmPp2SA,
    /// "DPM++ 3M SDE" (`sample_dpmpp_3m_sde`).
    DpmPp3MSde,
    /// "Euler a" (`sample_euler_ancestral`).
    EulerA,
    /// "Euler" (`sample_euler`).
    Euler,
    /// "LMS" (`sample_lms`).
    Lms,
    /// "Heun" (`sample_heun`).
    Heun,
    /// "DPM2" (`sample_dpm_2`).
    Dpm2,
    /// "DPM2 a" (`sample_dpm_2_ancestral`).
    Dpm2A,
    /// "DPM fast" (`sample_dpm_fast`).
    DpmFast,
    /// "DPM adaptive" (`sample_dpm_adaptive`).
    DpmAdaptive,
    /// "Restart" (A1111's `restart_sampler`).
    Restart,
    /// "DDIM" (A1111's `ddim`).
    Ddim,
    /// "PLMS" (A1111's `plms`).
    Plms,
    /// "UniPC" (A1111's `unipc` over its `uni_pc.py`), with A1111's UniPC settings
    /// ([`SamplerOptions::unipc`]).
    UniPc,
}

/// A1111's per-sampler options (the dict in its sampler table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerInfo {
    /// The label A1111 shows and writes in infotext.
    pub label: &'static str,
    /// Other names A1111 accepts (its `aliases`).
    pub aliases: &'static [&'static str],
    /// The schedule "Automatic" means for this sampler (`scheduler`), if not Uniform.
    pub scheduler: Option<ScheduleType>,
    /// `discard_next_to_last_sigma`: run one more step and drop the penultimate σ.
    pub discard_next_to_last_sigma: bool,
    /// `second_order`: two model evaluations per step.
    pub second_order: bool,
    /// `brownian_noise`: the noise comes from a Brownian tree seeded per image.
    pub brownian_noise: bool,
    /// `uses_ensd`: the sampler draws per-step noise (A1111's "Eta noise seed delta" applies).
    pub uses_ensd: bool,
    /// `solver_type: heun`.
    pub solver_heun: bool,
}

const fn info(label: &'static str, aliases: &'static [&'static str]) -> SamplerInfo {
    SamplerInfo {
        label,
        aliases,
        scheduler: None,
        discard_next_to_last_sigma: false,
        second_order: false,
        brownian_noise: false,
        uses_ensd: false,
        solver_heun: false,
    }
}

impl SamplerKind {
    /// Every sampler, in A1111 1.10's order.
    pub const ALL: [SamplerKind; 18] = [
        Self::DpmPp2M,
        Self::DpmPpSde,
        Self::DpmPp2MSde,
        Self::DpmPp2MSdeHeun,
        Self::DpmPp2SA,
        Self::DpmPp3MSde,
        Self::EulerA,
        Self::Euler,
        Self::Lms,
        Self::Heun,
        Self::Dpm2,
        Self::Dpm2A,
        Self::DpmFast,
        Self::DpmAdaptive,
        Self::Restart,
        Self::Ddim,
        Self::Plms,
        Self::UniPc,
    ];

    /// A1111's table entry for this sampler.
    pub fn info(self) -> SamplerInfo {
        use ScheduleType::{Exponential, Karras};
        match self {
            Self::DpmPp2M => SamplerInfo {
                scheduler: Some(Karras),
                ..info("DPM++ 2M", &["k_dpmpp_2m"])
            },
            Self::DpmPpSde => SamplerInfo {
                scheduler: Some(Karras),
                second_order: true,
                brownian_noise: true,
                ..info("DPM++ SDE", &["k_dpmpp_sde"])
            },
            Self::DpmPp2MSde => SamplerInfo {
                scheduler: Some(Exponential),
                brownian_noise: true,
                ..info("DPM++ 2M SDE", &["k_dpmpp_2m_sde"])
            },
            Self::DpmPp2MSdeHeun => SamplerInfo {
                scheduler: Some(Exponential),
                brownian_noise: true,
                solver_heun: true,
                ..info("DPM++ 2M SDE Heun", &["k_dpmpp_2m_sde_heun"])
            },
            Self::DpmPp2SA => SamplerInfo {
                scheduler: Some(Karras),
                uses_ensd: true,
                second_order: true,
                ..info("DPM++ 2S a", &["k_dpmpp_2s_a"])
            },
            Self::DpmPp3MSde => SamplerInfo {
                scheduler: Some(Exponential),
                discard_next_to_last_sigma: true,
                brownian_noise: true,
                ..info("DPM++ 3M SDE", &["k_dpmpp_3m_sde"])
            },
            Self::EulerA => SamplerInfo {
                uses_ensd: true,
                ..info("Euler a", &["k_euler_a", "k_euler_ancestral"])
            },
            Self::Euler => info("Euler", &["k_euler"]),
            Self::Lms => info("LMS", &["k_lms"]),
            Self::Heun => SamplerInfo {
                second_order: true,
                ..info("Heun", &["k_heun"])
            },
            Self::Dpm2 => SamplerInfo {
                scheduler: Some(Karras),
                discard_next_to_last_sigma: true,
                second_order: true,
                ..info("DPM2", &["k_dpm_2"])
            },
            Self::Dpm2A => SamplerInfo {
                scheduler: Some(Karras),
                discard_next_to_last_sigma: true,
                uses_ensd: true,
                second_order: true,
                ..info("DPM2 a", &["k_dpm_2_a"])
            },
            Self::DpmFast => SamplerInfo {
                uses_ensd: true,
                ..info("DPM fast", &["k_dpm_fast"])
            },
            Self::DpmAdaptive => SamplerInfo {
                uses_ensd: true,
                ..info("DPM adaptive", &["k_dpm_ad"])
            },
            Self::Restart => SamplerInfo {
                scheduler: Some(Karras),
                second_order: true,
                ..info("Restart", &["restart"])
            },
            Self::Ddim => info("DDIM", &["ddim"]),
            Self::Plms => info("PLMS", &["plms"]),
            Self::UniPc => info("UniPC", &["unipc"]),
        }
    }

    /// The label A1111 shows ("DPM++ 2M").
    pub fn label(self) -> &'static str {
        self.info().label
    }

    /// The concrete schedule "Automatic" stands for with this sampler.
    pub fn default_schedule(self) -> ScheduleType {
        self.info().scheduler.unwrap_or(ScheduleType::Uniform)
    }

    /// Whether the sampler steps over training timesteps (DDIM, PLMS, UniPC) rather than σ;
    /// A1111 ignores the schedule type for those.
    pub fn is_timestep_sampler(self) -> bool {
        matches!(self, Self::Ddim | Self::Plms | Self::UniPc)
    }

    /// The η A1111 uses when the user gives none: `eta_ddim` (0) for DDIM, `eta_ancestral`
    /// (1) for the samplers that take an η.
    pub fn default_eta(self) -> f64 {
        if self == Self::Ddim { 0.0 } else { 1.0 }
    }

    /// The σ list A1111's `KDiffusionSampler.get_sigmas` builds for `steps` steps:
    /// "Automatic" resolved to the sampler's default, one extra step when the sampler
    /// discards the penultimate σ (or `always_discard` is set, A1111's "Always discard next
    /// to last sigma"), then that σ dropped.
    pub fn sigmas(
        self,
        schedule: ScheduleType,
        steps: usize,
        ns: &NoiseSchedule,
        opts: &ScheduleOptions,
        always_discard: bool,
    ) -> Result<Vec<f32>> {
        if steps == 0 {
            return Err(SchedulerError::ZeroSteps(steps));
        }
        let discard = self.info().discard_next_to_last_sigma || always_discard;
        let schedule = match schedule {
            ScheduleType::Automatic => self.default_schedule(),
            s => s,
        };
        let s = schedules::sigmas(schedule, steps + usize::from(discard), ns, opts)?;
        Ok(if discard {
            schedules::discard_penultimate(s)
        } else {
            s
        })
    }

    /// The plan a txt2img run of `steps` steps follows (see [`Plan`]).
    pub fn plan(
        self,
        schedule: ScheduleType,
        steps: usize,
        ns: &NoiseSchedule,
        opts: &ScheduleOptions,
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

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for SamplerKind {
    type Err = SchedulerError;

    /// The exact A1111 label or one of its aliases (any case). Combined names such as
    /// "DPM++ 2M Karras" are [`SamplerSpec`]'s job.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|k| {
                let i = k.info();
                i.label.eq_ignore_ascii_case(t)
                    || i.aliases.iter().any(|a| a.eq_ignore_ascii_case(t))
            })
            .ok_or_else(|| SchedulerError::UnknownSampler(s.to_owned()))
    }
}

/// A sampler with its schedule type: what A1111's "Sampling method" + "Schedule type" pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SamplerSpec {
    /// The sampler.
    pub sampler: SamplerKind,
    /// The schedule type ([`ScheduleType::Automatic`] = the sampler's default).
    pub schedule: ScheduleType,
}

/// Old A1111 aliases that named a sampler together with the Karras schedule.
const LEGACY_ALIASES: [(&str, SamplerKind, ScheduleType); 8] = [
    ("k_lms_ka", SamplerKind::Lms, ScheduleType::Karras),
    ("k_dpm_2_ka", SamplerKind::Dpm2, ScheduleType::Karras),
    ("k_dpm_2_a_ka", SamplerKind::Dpm2A, ScheduleType::Karras),
    (
        "k_dpmpp_2s_a_ka",
        SamplerKind::DpmPp2SA,
        ScheduleType::Karras,
    ),
    ("k_dpmpp_2m_ka", SamplerKind::DpmPp2M, ScheduleType::Karras),
    (
        "k_dpmpp_sde_ka",
        SamplerKind::DpmPpSde,
        ScheduleType::Karras,
    ),
    (
        "k_dpmpp_2m_sde_ka",
        SamplerKind::DpmPp2MSde,
        ScheduleType::Karras,
    ),
    (
        "k_dpmpp_2m_sde_heun_ka",
        SamplerKind::DpmPp2MSdeHeun,
        ScheduleType::Karras,
    ),
];

impl SamplerSpec {
    /// A1111's `get_sampler_and_scheduler(sampler_name, scheduler_name)`: a trailing
    /// `" <schedule>"` in the sampler name (label, short name or alias: "DPM++ 2M Karras",
    /// "Euler a exponential") selects the schedule; otherwise `schedule` (a label or short
    /// name) does; and a schedule equal to the sampler's own default becomes Automatic.
    /// Unlike A1111, an unknown sampler is an error instead of silently the first one.
    pub fn parse(sampler: &str, schedule: Option<&str>) -> Result<Self> {
        let mut found = match schedule {
            Some(s) if !s.trim().is_empty() => s.parse::<ScheduleType>()?,
            _ => ScheduleType::Automatic,
        };
        let mut name = sampler.trim();
        if let Some((_, kind, sched)) = LEGACY_ALIASES
            .iter()
            .find(|(a, _, _)| a.eq_ignore_ascii_case(name))
        {
            return Ok(Self::new(*kind, *sched).normalized());
        }
        'outer: for st in ScheduleType::ALL {
            let options = [st.label(), st.name()]
                .into_iter()
                .chain(st.aliases().iter().copied());
            for opt in options {
                let suffix_len = opt.len() + 1;
                if name.len() > suffix_len {
                    let (head, tail) = name.split_at(name.len() - suffix_len);
                    if tail.starts_with(' ')
                        && tail[1..].eq_ignore_ascii_case(opt)
                        && head.parse::<SamplerKind>().is_ok()
                    {
                        found = st;
                        name = head;
                        break 'outer;
                    }
                }
            }
        }
        let kind = name.parse::<SamplerKind>()?;
        Ok(Self::new(kind, found).normalized())
    }

    /// A sampler with a schedule.
    pub fn new(sampler: SamplerKind, schedule: ScheduleType) -> Self {
        Self { sampler, schedule }
    }

    /// Automatic when the schedule is the sampler's own default (A1111's `convert_automatic`).
    pub fn normalized(self) -> Self {
        if self.sampler.info().scheduler == Some(self.schedule) {
            Self::new(self.sampler, ScheduleType::Automatic)
        } else {
            self
        }
    }

    /// The schedule actually used ("Automatic" resolved).
    pub fn effective_schedule(&self) -> ScheduleType {
        match self.schedule {
            ScheduleType::Automatic => self.sampler.default_schedule(),
            s => s,
        }
    }
}

impl fmt::Display for SamplerSpec {
    /// The combined name A1111 < 1.9 used: "DPM++ 2M Karras"; just the label when the
    /// schedule is Automatic.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.schedule {
            ScheduleType::Automatic => f.write_str(self.sampler.label()),
            s => write!(f, "{} {}", self.sampler.label(), s.label()),
        }
    }
}

impl FromStr for SamplerSpec {
    type Err = SchedulerError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s, None)
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
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        self,
        denoiser: &mut dyn Denoiser,
        ns: &NoiseSchedule,
        x: Tensor<4>,
        plan: &Plan,
        noise: &mut dyn NoiseSource,
        opts: &SamplerOptions,
        callback: &mut dyn FnMut(&StepInfo<'_>) -> ControlFlow<()>,
    ) -> Result<Sampled> {
        let eta_f64 = opts.eta.unwrap_or(self.default_eta());
        if !eta_f64.is_finite() || eta_f64 < 0.0 {
            return Err(SchedulerError::InvalidParameter {
                name: "eta",
                value: eta_f64,
                reason: "must be finite and non-negative",
            });
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
            _ => return Err(wrong_plan()),
        };
        Ok(match result {
            Ok(latent) => Sampled {
                latent,
                cancelled_at: None,
            },
            Err(_) => Sampled {
                latent: ctx.last_denoised.clone().unwrap_or(start),
                cancelled_at: Some(ctx.steps_reported.saturating_sub(1)),
            },
        })
    }

    /// txt2img: plans `steps` steps of `schedule`, scales the unit `noise` latent by the
    /// plan's first noise level as A1111 does, and samples.
    ///
    /// # Shapes
    /// - `noise`: `[batch, channels, height, width]`, standard normal
    /// - returns: the same shape
    #[allow(clippy::too_many_arguments)]
    pub fn txt2img(
        self,
        denoiser: &mut dyn Denoiser,
        ns: &NoiseSchedule,
        noise: Tensor<4>,
        schedule: ScheduleType,
        steps: usize,
        step_noise: &mut dyn NoiseSource,
        opts: &SamplerOptions,
        callback: &mut dyn FnMut(&StepInfo<'_>) -> ControlFlow<()>,
    ) -> Result<Sampled> {
        let plan = self.plan(schedule, steps, ns, &ScheduleOptions::default())?;
        let x = noise.mul_scalar(plan.initial_noise_scale());
        self.sample(denoiser, ns, x, &plan, step_noise, opts, callback)
    }
}
