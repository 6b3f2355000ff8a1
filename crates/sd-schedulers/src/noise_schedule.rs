//! The discrete DDPM noise schedule of Stable Diffusion and its σ view.
//!
//! LDM (`ldm/models/diffusion/ddpm.py`, `register_schedule`) builds
//! `betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)²` in float64, takes the cumulative
//! product of `1 - betas` in float64 and stores it as a float32 buffer `alphas_cumprod`.
//! k-diffusion (`k_diffusion/external.py`, `DiscreteSchedule` and the `CompVis*Denoiser`
//! wrappers A1111 uses) turns that buffer into the noise levels
//! `sigmas = sqrt((1 - ᾱ) / ᾱ)` (float32) and maps between a continuous σ and a fractional
//! timestep by interpolating *log σ* linearly between neighbouring timesteps.
//! [`NoiseSchedule`] is that object; every number here follows the same dtype path so the
//! sigmas are the same float32 values k-diffusion computes.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SchedulerError};
use crate::torch_math::{linspace_f32, linspace_f64};

/// How the betas of the training schedule are laid out (diffusers' `beta_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BetaSchedule {
    /// `linspace(sqrt(start), sqrt(end), n)²`: LDM's `"linear"`, diffusers' `"scaled_linear"`;
    /// every SD 1.x / 2.x checkpoint.
    ScaledLinear,
    /// `linspace(start, end, n)`.
    Linear,
}

/// The parameters of a training noise schedule, named as diffusers' scheduler `config.json`
/// names them (`beta_start`, `beta_end`, `beta_schedule`, `num_train_timesteps`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseScheduleConfig {
    /// First beta (0.00085 for SD).
    pub beta_start: f64,
    /// Last beta (0.012 for SD).
    pub beta_end: f64,
    /// Layout of the betas.
    pub beta_schedule: BetaSchedule,
    /// Number of training timesteps (1000 for SD).
    pub num_train_timesteps: usize,
}

impl NoiseScheduleConfig {
    /// The schedule of every SD 1.x and 2.x model (`linear_start: 0.00085`,
    /// `linear_end: 0.012`, `timesteps: 1000` in CompVis' `v1-inference.yaml` and
    /// `v2-inference(-v).yaml`; diffusers' `scheduler_config.json` of
    /// `stable-diffusion-v1-5` says the same as `scaled_linear`).
    pub fn sd() -> Self {
        Self {
            beta_start: 0.000_85,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            num_train_timesteps: 1000,
        }
    }

    /// Builds the schedule.
    pub fn init(&self) -> Result<NoiseSchedule> {
        NoiseSchedule::new(self)
    }
}

impl Default for NoiseScheduleConfig {
    fn default() -> Self {
        Self::sd()
    }
}

/// A discrete noise schedule: betas, ᾱ, and k-diffusion's σ table with its σ ↔ t maps.
#[derive(Debug, Clone)]
pub struct NoiseSchedule {
    config: NoiseScheduleConfig,
    betas: Vec<f64>,
    alphas_cumprod_f64: Vec<f64>,
    alphas_cumprod: Vec<f32>,
    sigmas: Vec<f32>,
    log_sigmas: Vec<f32>,
}

impl NoiseSchedule {
    /// Builds the schedule from its config (float64 betas and cumulative product, stored
    /// float32 as LDM does).
    pub fn new(config: &NoiseScheduleConfig) -> Result<Self> {
        let n = config.num_train_timesteps;
        if n < 2 {
            return Err(SchedulerError::InvalidNoiseSchedule(format!(
                "num_train_timesteps must be at least 2, got {n}"
            )));
        }
        let betas: Vec<f64> = match config.beta_schedule {
            BetaSchedule::ScaledLinear => {
                linspace_f64(config.beta_start.sqrt(), config.beta_end.sqrt(), n)
                    .into_iter()
                    .map(|b| b * b)
                    .collect()
            }
            BetaSchedule::Linear => linspace_f64(config.beta_start, config.beta_end, n),
        };
        if let Some(b) = betas.iter().find(|b| !(**b > 0.0 && **b < 1.0)) {
            return Err(SchedulerError::InvalidNoiseSchedule(format!(
                "every beta must lie in (0, 1), found {b}"
            )));
        }
        let mut acc = 1.0_f64;
        let alphas_cumprod_f64: Vec<f64> = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        let alphas_cumprod: Vec<f32> = alphas_cumprod_f64.iter().map(|&a| a as f32).collect();
        // k-diffusion: ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 on the float32 buffer.
        let sigmas: Vec<f32> = alphas_cumprod
            .iter()
            .map(|&a| ((1.0 - a) / a).sqrt())
            .collect();
        let log_sigmas = sigmas.iter().map(|s| s.ln()).collect();
        Ok(Self {
            config: config.clone(),
            betas,
            alphas_cumprod_f64,
            alphas_cumprod,
            sigmas,
            log_sigmas,
        })
    }

    /// The SD 1.x / 2.x schedule ([`NoiseScheduleConfig::sd`]).
    pub fn sd() -> Self {
        // The preset's constants are valid, so this cannot fail; build it by hand to avoid
        // an unwrap.
        match Self::new(&NoiseScheduleConfig::sd()) {
            Ok(s) => s,
            Err(e) => unreachable!("the SD preset is a valid schedule: {e}"),
        }
    }

    /// The config it was built from.
    pub fn config(&self) -> &NoiseScheduleConfig {
        &self.config
    }

    /// Number of training timesteps.
    pub fn num_train_timesteps(&self) -> usize {
        self.sigmas.len()
    }

    /// The betas (float64, as LDM computes them).
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// ᾱ_t as the float32 buffer LDM and A1111 hold (`model.alphas_cumprod`).
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// ᾱ_t in float64, from which LDM derives its `sqrt_alphas_cumprod` and
    /// `sqrt_one_minus_alphas_cumprod` buffers (used by [`crate::ddpm`]).
    pub fn alphas_cumprod_f64(&self) -> &[f64] {
        &self.alphas_cumprod_f64
    }

    /// σ_t = sqrt((1 - ᾱ_t) / ᾱ_t) for every training timestep, increasing (k-diffusion's
    /// `model_wrap.sigmas`).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The smallest σ of the table (timestep 0): 0.0292 for SD.
    pub fn sigma_min(&self) -> f32 {
        self.sigmas[0]
    }

    /// The largest σ of the table (the last timestep): 14.6146 for SD.
    pub fn sigma_max(&self) -> f32 {
        self.sigmas[self.sigmas.len() - 1]
    }

    /// The fractional timestep of a noise level (`DiscreteSchedule.sigma_to_t`, not
    /// quantized): log σ interpolated linearly between the two table entries around it,
    /// clamped to [0, N-1].
    pub fn sigma_to_t(&self, sigma: f32) -> f32 {
        let log_sigma = sigma.ln();
        let n = self.log_sigmas.len();
        // The last index whose log σ is <= log_sigma (argmax of the cumulative count), 0 when
        // there is none, at most N-2 so that a neighbour above exists.
        let count = self
            .log_sigmas
            .iter()
            .filter(|&&l| log_sigma - l >= 0.0)
            .count();
        let low_idx = count.saturating_sub(1).min(n - 2);
        let high_idx = low_idx + 1;
        let (low, high) = (self.log_sigmas[low_idx], self.log_sigmas[high_idx]);
        let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
        (1.0 - w) * low_idx as f32 + w * high_idx as f32
    }

    /// The noise level of a fractional timestep (`DiscreteSchedule.t_to_sigma`): log σ
    /// interpolated between `floor(t)` and `ceil(t)`. `t` is clamped to [0, N-1].
    pub fn t_to_sigma(&self, t: f32) -> f32 {
        let t = t.clamp(0.0, (self.log_sigmas.len() - 1) as f32);
        let (low, high) = (t.floor() as usize, t.ceil() as usize);
        let w = t - t.floor();
        ((1.0 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()
    }

    /// k-diffusion's `get_sigmas(n)`: `n` timesteps evenly spaced from N-1 down to 0, their
    /// σ, then a final 0 (A1111's "Uniform" schedule, and "Automatic" for most samplers).
    pub fn get_sigmas(&self, n: usize) -> Vec<f32> {
        let t_max = (self.sigmas.len() - 1) as f32;
        let mut s: Vec<f32> = linspace_f32(t_max, 0.0, n)
            .into_iter()
            .map(|t| self.t_to_sigma(t))
            .collect();
        s.push(0.0);
        s
    }
}
