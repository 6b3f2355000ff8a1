#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod ddpm;
pub mod denoiser;
mod error;
pub mod noise;
pub mod noise_schedule;
mod sampler;
pub mod samplers;
pub mod sigma_schedule;
mod torch_math;

pub use denoiser::{Denoiser, DiscreteDenoiser, Prediction, Scalings, TimestepModel};
pub use error::{Result, SchedulerError};
pub use noise::{GaussianNoise, NoiseKind, NoiseRequest, NoiseSource, RecordedNoise};
pub use noise_schedule::{BetaSchedule, NoiseSchedule, NoiseScheduleConfig};
pub use sampler::{Plan, Sampled, SamplerInfo, SamplerKind, SamplerOptions, SamplerSpec};
pub use samplers::dpm_solver::AdaptiveOptions;
pub use samplers::dpmpp::SolverType;
pub use samplers::{Churn, StepInfo};
pub use sigma_schedule::{SigmaSchedule, SigmaScheduleOptions};
