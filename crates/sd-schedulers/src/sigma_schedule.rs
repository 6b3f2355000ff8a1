//! σ schedules: A1111's "Schedule type" list (`modules/sd_schedulers.py`), built on
//! k-diffusion's `get_sigmas_karras` / `_exponential` / `_polyexponential` and the model's
//! [`NoiseSchedule`].
//!
//! Each function returns the σ of every step followed by the σ the last step lands on (0 for
//! all but KL Optimal, whose list ends at σ_min exactly as A1111's does). Values are float32,
//! computed along the same dtype path as the Python original (float32 torch ops, or float64
//! numpy then float32 where A1111 uses numpy).

use std::fmt;
use std::str::FromStr;

use crate::error::{Result, SchedulerError};
use crate::noise_schedule::NoiseSchedule;
use crate::torch_math::{beta_ppf, linspace_f32, np_interp, np_linspace};

/// An A1111 "Schedule type".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigmaSchedule {
    /// "Automatic": the sampler's own default (see [`crate::SamplerKind::default_sigma_schedule`]).
    Automatic,
    /// "Uniform": the model's `get_sigmas(n)`, timesteps evenly spaced.
    Uniform,
    /// "Karras": Karras et al. (2022), ρ = 7, between the model's σ_min and σ_max.
    Karras,
    /// "Exponential": evenly spaced in log σ.
    Exponential,
    /// "Polyexponential": a polynomial (ρ = 1) in log σ.
    Polyexponential,
    /// "SGM Uniform": n + 1 evenly spaced timesteps between σ_max and σ_min, the last dropped.
    SgmUniform,
    /// "KL Optimal": Sabour et al. (2024), evenly spaced in arctan σ; ends at σ_min, not 0.
    KlOptimal,
    /// "Align Your Steps": NVIDIA's tuned 10-step SD 1.5 list, log-linearly resampled.
    AlignYourSteps,
    /// "Simple": every (N / n)-th table σ from the top.
    Simple,
    /// "Normal": n evenly spaced timesteps between σ_max and σ_min (inclusive).
    Normal,
    /// "DDIM": the table σ at timesteps 1, 1 + N/n, ... (the DDIM sampler's own spacing).
    Ddim,
    /// "Beta": Lee et al. (2024), σ at the Beta(0.6, 0.6) quantiles.
    Beta,
}

impl SigmaSchedule {
    /// Every schedule, in A1111's order.
    pub const ALL: [SigmaSchedule; 12] = [
        Self::Automatic,
        Self::Uniform,
        Self::Karras,
        Self::Exponential,
        Self::Polyexponential,
        Self::SgmUniform,
        Self::KlOptimal,
        Self::AlignYourSteps,
        Self::Simple,
        Self::Normal,
        Self::Ddim,
        Self::Beta,
    ];

    /// The label A1111 shows and writes in infotext ("Schedule type: Karras").
    pub fn label(self) -> &'static str {
        match self {
            Self::Automatic => "Automatic",
            Self::Uniform => "Uniform",
            Self::Karras => "Karras",
            Self::Exponential => "Exponential",
            Self::Polyexponential => "Polyexponential",
            Self::SgmUniform => "SGM Uniform",
            Self::KlOptimal => "KL Optimal",
            Self::AlignYourSteps => "Align Your Steps",
            Self::Simple => "Simple",
            Self::Normal => "Normal",
            Self::Ddim => "DDIM",
            Self::Beta => "Beta",
        }
    }

    /// A1111's short name (`karras`, `sgm_uniform`, ...; the API and `--schedule` use it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Automatic => "automatic",
            Self::Uniform => "uniform",
            Self::Karras => "karras",
            Self::Exponential => "exponential",
            Self::Polyexponential => "polyexponential",
            Self::SgmUniform => "sgm_uniform",
            Self::KlOptimal => "kl_optimal",
            Self::AlignYourSteps => "align_your_steps",
            Self::Simple => "simple",
            Self::Normal => "normal",
            Self::Ddim => "ddim",
            Self::Beta => "beta",
        }
    }

    /// Other spellings A1111 accepts (`SGMUniform`).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::SgmUniform => &["SGMUniform"],
            _ => &[],
        }
    }

    /// ρ when A1111 lets the user override it (`default_rho` in its table): 7 for Karras,
    /// 1 for Polyexponential.
    pub fn default_rho(self) -> Option<f64> {
        match self {
            Self::Karras => Some(7.0),
            Self::Polyexponential => Some(1.0),
            _ => None,
        }
    }
}

impl fmt::Display for SigmaSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for SigmaSchedule {
    type Err = SchedulerError;

    /// Accepts the label, the short name or an alias, as A1111's `schedulers_map` does
    /// (which is case-sensitive; we also accept any case).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        Self::ALL
            .into_iter()
            .find(|k| {
                k.label().eq_ignore_ascii_case(t)
                    || k.name().eq_ignore_ascii_case(t)
                    || k.aliases().iter().any(|a| a.eq_ignore_ascii_case(t))
            })
            .ok_or_else(|| SchedulerError::UnknownSigmaSchedule(s.to_owned()))
    }
}

/// Knobs A1111 exposes in its settings ("Schedule min/max sigma", "Schedule rho", the Beta
/// distribution's α and β). `Default` is A1111's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SigmaScheduleOptions {
    /// Overrides the model's σ_min (A1111 `sigma_min`, 0 = the model's).
    pub sigma_min: Option<f32>,
    /// Overrides the model's σ_max (A1111 `sigma_max`, 0 = the model's).
    pub sigma_max: Option<f32>,
    /// Overrides ρ of Karras / Polyexponential (A1111 `rho`, 0 = the schedule's default).
    pub rho: Option<f64>,
    /// α of the Beta schedule (A1111 `beta_dist_alpha`, default 0.6).
    pub beta_alpha: f64,
    /// β of the Beta schedule (A1111 `beta_dist_beta`, default 0.6).
    pub beta_beta: f64,
}

impl Default for SigmaScheduleOptions {
    fn default() -> Self {
        Self {
            sigma_min: None,
            sigma_max: None,
            rho: None,
            beta_alpha: 0.6,
            beta_beta: 0.6,
        }
    }
}

/// k-diffusion's `get_sigmas_karras(n, sigma_min, sigma_max, rho)`.
pub fn karras(n: usize, sigma_min: f32, sigma_max: f32, rho: f64) -> Vec<f32> {
    let min_inv_rho = (sigma_min as f64).powf(1.0 / rho);
    let max_inv_rho = (sigma_max as f64).powf(1.0 / rho);
    // torch evaluates the tensor expression in float32, with the Python floats cast to it.
    let (a, d, r) = (
        max_inv_rho as f32,
        (min_inv_rho - max_inv_rho) as f32,
        rho as f32,
    );
    let mut s: Vec<f32> = linspace_f32(0.0, 1.0, n)
        .into_iter()
        .map(|ramp| (a + ramp * d).powf(r))
        .collect();
    s.push(0.0);
    s
}

/// k-diffusion's `get_sigmas_exponential(n, sigma_min, sigma_max)`.
pub fn exponential(n: usize, sigma_min: f32, sigma_max: f32) -> Vec<f32> {
    let start = (sigma_max as f64).ln() as f32;
    let end = (sigma_min as f64).ln() as f32;
    let mut s: Vec<f32> = linspace_f32(start, end, n)
        .into_iter()
        .map(f32::exp)
        .collect();
    s.push(0.0);
    s
}

/// k-diffusion's `get_sigmas_polyexponential(n, sigma_min, sigma_max, rho)`.
pub fn polyexponential(n: usize, sigma_min: f32, sigma_max: f32, rho: f64) -> Vec<f32> {
    let log_min = (sigma_min as f64).ln();
    let span = ((sigma_max as f64).ln() - log_min) as f32;
    let (log_min, rho) = (log_min as f32, rho as f32);
    let mut s: Vec<f32> = linspace_f32(1.0, 0.0, n)
        .into_iter()
        .map(|ramp| (ramp.powf(rho) * span + log_min).exp())
        .collect();
    s.push(0.0);
    s
}

/// A1111's `sgm_uniform`.
pub fn sgm_uniform(n: usize, sigma_min: f32, sigma_max: f32, ns: &NoiseSchedule) -> Vec<f32> {
    timestep_spaced(n, sigma_min, sigma_max, ns, true)
}

/// A1111's `normal_scheduler`.
pub fn normal(n: usize, sigma_min: f32, sigma_max: f32, ns: &NoiseSchedule) -> Vec<f32> {
    timestep_spaced(n, sigma_min, sigma_max, ns, false)
}

fn timestep_spaced(
    n: usize,
    sigma_min: f32,
    sigma_max: f32,
    ns: &NoiseSchedule,
    sgm: bool,
) -> Vec<f32> {
    let start = ns.sigma_to_t(sigma_max);
    let end = ns.sigma_to_t(sigma_min);
    let ts = if sgm {
        let mut t = linspace_f32(start, end, n + 1);
        t.pop();
        t
    } else {
        linspace_f32(start, end, n)
    };
    let mut s: Vec<f32> = ts.into_iter().map(|t| ns.t_to_sigma(t)).collect();
    s.push(0.0);
    s
}

/// A1111's `kl_optimal`: `tan(i/n · atan σ_min + (1 - i/n) · atan σ_max)` for i = 0..=n,
/// in float32; no 0 is appended.
pub fn kl_optimal(n: usize, sigma_min: f32, sigma_max: f32) -> Vec<f32> {
    let (a_min, a_max) = (sigma_min.atan(), sigma_max.atan());
    (0..=n)
        .map(|i| {
            let f = i as f32 / n as f32;
            (f * a_min + (1.0 - f) * a_max).tan()
        })
        .collect()
}

/// The Align Your Steps list for SD 1.5 (NVIDIA, "Align Your Steps" how-to page).
pub const AYS_SD15: [f64; 11] = [
    14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029,
];

/// A1111's `get_align_your_steps_sigmas` for SD 1.x models: the 11-value list, resampled
/// log-linearly to `n` values when `n != 11`, then 0.
pub fn align_your_steps(n: usize) -> Vec<f32> {
    let base = &AYS_SD15;
    let mut s: Vec<f64> = if n != base.len() {
        let xs = np_linspace(0.0, 1.0, base.len());
        let ys: Vec<f64> = base.iter().rev().map(|v| v.ln()).collect();
        let mut v: Vec<f64> = np_linspace(0.0, 1.0, n)
            .into_iter()
            .map(|x| np_interp(x, &xs, &ys).exp())
            .collect();
        v.reverse();
        v
    } else {
        base.to_vec()
    };
    s.push(0.0);
    s.into_iter().map(|v| v as f32).collect()
}

/// A1111's `simple_scheduler`: σ_table[-(1 + int(i · N / n))] for i in 0..n, then 0.
pub fn simple(n: usize, ns: &NoiseSchedule) -> Vec<f32> {
    let table = ns.sigmas();
    let ss = table.len() as f64 / n as f64;
    let mut s: Vec<f32> = (0..n)
        .map(|x| table[table.len() - 1 - (x as f64 * ss) as usize])
        .collect();
    s.push(0.0);
    s
}

/// A1111's `ddim_scheduler`: the table σ at 1, 1 + N/n, 1 + 2N/n, ... (below N), reversed,
/// then 0. Its length is not always n + 1 (A1111's arithmetic, kept).
pub fn ddim(n: usize, ns: &NoiseSchedule) -> Vec<f32> {
    let table = ns.sigmas();
    let ss = (table.len() / n).max(1);
    let mut s: Vec<f32> = (1..table.len()).step_by(ss).map(|x| table[x]).collect();
    s.reverse();
    s.push(0.0);
    s
}

/// A1111's `beta_scheduler`: σ_min + ppf(q) · (σ_max - σ_min) at the Beta(α, β) quantiles of
/// `1 - linspace(0, 1, n)` (float64, as numpy/scipy compute it), then 0.
pub fn beta(n: usize, sigma_min: f32, sigma_max: f32, alpha: f64, beta: f64) -> Vec<f32> {
    let (lo, hi) = (sigma_min as f64, sigma_max as f64);
    let mut s: Vec<f32> = np_linspace(0.0, 1.0, n)
        .into_iter()
        .map(|q| (lo + beta_ppf(1.0 - q, alpha, beta) * (hi - lo)) as f32)
        .collect();
    s.push(0.0);
    s
}

/// The σ list of `schedule` for `n` steps on the model's noise schedule, as A1111's
/// `KDiffusionSampler.get_sigmas` computes it for a schedule (without the sampler's
/// "discard penultimate σ"; see [`crate::SamplerKind::sigmas`] for the whole rule).
/// [`SigmaSchedule::Automatic`] means the model's `get_sigmas`, as [`SigmaSchedule::Uniform`].
pub fn sigmas(
    schedule: SigmaSchedule,
    n: usize,
    ns: &NoiseSchedule,
    opts: &SigmaScheduleOptions,
) -> Result<Vec<f32>> {
    if n == 0 {
        return Err(SchedulerError::ZeroSteps(n));
    }
    let sigma_min = opts
        .sigma_min
        .filter(|s| *s != 0.0)
        .unwrap_or(ns.sigma_min());
    let sigma_max = opts
        .sigma_max
        .filter(|s| *s != 0.0)
        .unwrap_or(ns.sigma_max());
    if !(sigma_min > 0.0 && sigma_max > sigma_min) {
        return Err(SchedulerError::InvalidParameter {
            name: "sigma_min",
            value: sigma_min as f64,
            reason: "need 0 < sigma_min < sigma_max",
        });
    }
    let rho = |default: f64| opts.rho.filter(|r| *r != 0.0).unwrap_or(default);
    Ok(match schedule {
        SigmaSchedule::Automatic | SigmaSchedule::Uniform => ns.get_sigmas(n),
        SigmaSchedule::Karras => karras(n, sigma_min, sigma_max, rho(7.0)),
        SigmaSchedule::Exponential => exponential(n, sigma_min, sigma_max),
        SigmaSchedule::Polyexponential => polyexponential(n, sigma_min, sigma_max, rho(1.0)),
        SigmaSchedule::SgmUniform => sgm_uniform(n, sigma_min, sigma_max, ns),
        SigmaSchedule::KlOptimal => kl_optimal(n, sigma_min, sigma_max),
        SigmaSchedule::AlignYourSteps => align_your_steps(n),
        SigmaSchedule::Simple => simple(n, ns),
        SigmaSchedule::Normal => normal(n, sigma_min, sigma_max, ns),
        SigmaSchedule::Ddim => ddim(n, ns),
        SigmaSchedule::Beta => beta(n, sigma_min, sigma_max, opts.beta_alpha, opts.beta_beta),
    })
}

/// A1111's "discard penultimate sigma": `cat([sigmas[:-2], sigmas[-1:]])`.
pub fn discard_penultimate(mut sigmas: Vec<f32>) -> Vec<f32> {
    if sigmas.len() >= 2 {
        let last = sigmas[sigmas.len() - 1];
        sigmas.truncate(sigmas.len() - 2);
        sigmas.push(last);
    }
    sigmas
}
