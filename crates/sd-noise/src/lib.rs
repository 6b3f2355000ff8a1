#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod avx_mathfun;
mod brownian;
mod error;
mod image_rng;
mod mt19937;
mod philox;
mod slerp;
mod source;
mod torch_cpu;

pub use avx_mathfun::{avx_log, avx_sincos};
pub use brownian::{BrownianTreeNoise, SeedSequence};
pub use error::NoiseError;
pub use image_rng::{ImageRng, SeedResize};
pub use mt19937::Mt19937;
pub use philox::PhiloxGenerator;
pub use slerp::slerp;
pub use source::{NoiseGenerator, RngSource};
pub use torch_cpu::TorchCpuGenerator;
