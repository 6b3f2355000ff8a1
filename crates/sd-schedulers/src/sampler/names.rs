//! Sampler names as A1111 reads them: labels, aliases, the legacy `_ka` names and the
//! combined "DPM++ 2M Karras" form (`get_sampler_and_scheduler` in `modules/sd_samplers.py`).

use std::fmt;
use std::str::FromStr;

use super::SamplerKind;
use crate::error::{Result, SchedulerError};
use crate::sigma_schedule::SigmaSchedule;

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
    /// The schedule type ([`SigmaSchedule::Automatic`] = the sampler's default).
    pub sigma_schedule: SigmaSchedule,
}

/// Old A1111 aliases that named a sampler together with the Karras schedule.
const LEGACY_ALIASES: [(&str, SamplerKind, SigmaSchedule); 8] = [
    ("k_lms_ka", SamplerKind::Lms, SigmaSchedule::Karras),
    ("k_dpm_2_ka", SamplerKind::Dpm2, SigmaSchedule::Karras),
    ("k_dpm_2_a_ka", SamplerKind::Dpm2A, SigmaSchedule::Karras),
    (
        "k_dpmpp_2s_a_ka",
        SamplerKind::DpmPp2SA,
        SigmaSchedule::Karras,
    ),
    ("k_dpmpp_2m_ka", SamplerKind::DpmPp2M, SigmaSchedule::Karras),
    (
        "k_dpmpp_sde_ka",
        SamplerKind::DpmPpSde,
        SigmaSchedule::Karras,
    ),
    (
        "k_dpmpp_2m_sde_ka",
        SamplerKind::DpmPp2MSde,
        SigmaSchedule::Karras,
    ),
    (
        "k_dpmpp_2m_sde_heun_ka",
        SamplerKind::DpmPp2MSdeHeun,
        SigmaSchedule::Karras,
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
            Some(s) if !s.trim().is_empty() => s.parse::<SigmaSchedule>()?,
            _ => SigmaSchedule::Automatic,
        };
        let mut name = sampler.trim();
        if let Some((_, kind, sched)) = LEGACY_ALIASES
            .iter()
            .find(|(a, _, _)| a.eq_ignore_ascii_case(name))
        {
            return Ok(Self::new(*kind, *sched).normalized());
        }
        'outer: for st in SigmaSchedule::ALL {
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
    pub fn new(sampler: SamplerKind, schedule: SigmaSchedule) -> Self {
        Self {
            sampler,
            sigma_schedule: schedule,
        }
    }

    /// Automatic when the schedule is the sampler's own default (A1111's `convert_automatic`).
    pub fn normalized(self) -> Self {
        if self.sampler.info().scheduler == Some(self.sigma_schedule) {
            Self::new(self.sampler, SigmaSchedule::Automatic)
        } else {
            self
        }
    }

    /// The schedule actually used ("Automatic" resolved).
    pub fn effective_sigma_schedule(&self) -> SigmaSchedule {
        match self.sigma_schedule {
            SigmaSchedule::Automatic => self.sampler.default_sigma_schedule(),
            s => s,
        }
    }
}

impl fmt::Display for SamplerSpec {
    /// The combined name A1111 < 1.9 used: "DPM++ 2M Karras"; just the label when the
    /// schedule is Automatic.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sigma_schedule {
            SigmaSchedule::Automatic => f.write_str(self.sampler.label()),
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
