//! The samplers by A1111 name, their options, and the entry point that runs one.
//!
//! The table mirrors A1111 1.10's `samplers_k_diffusion` (`modules/sd_samplers_kdiffusion.py`),
//! `samplers_timesteps` (`modules/sd_samplers_timesteps.py`) and the name resolution of
//! `get_sampler_and_scheduler` (`modules/sd_samplers.py`).

mod names;
mod plan;
mod run;
mod table;

pub use names::SamplerSpec;
pub use plan::Plan;
pub use run::{Sampled, SamplerOptions};
pub use table::{SamplerInfo, SamplerKind};
