//! The samplers A1111 knows, with its per-sampler options: the table of A1111 1.10's
//! `samplers_k_diffusion` (`modules/sd_samplers_kdiffusion.py`) and `samplers_timesteps`
//! (`modules/sd_samplers_timesteps.py`).

use crate::sigma_schedule::SigmaSchedule;

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
    /// ([`SamplerOptions::unipc`](crate::SamplerOptions::unipc)).
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
    pub scheduler: Option<SigmaSchedule>,
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
        use SigmaSchedule::{Exponential, Karras};
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
    pub fn default_sigma_schedule(self) -> SigmaSchedule {
        self.info().scheduler.unwrap_or(SigmaSchedule::Uniform)
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
}
