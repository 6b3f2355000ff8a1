//! A1111's seeds and noise, reproduced bit for bit (`CPU`) or to float rounding (`NV`).
//!
//! AUTOMATIC1111's web UI turns a seed into latent noise in one of three ways (its
//! "Random number generator source" setting, `modules/rng.py`):
//!
//! - `CPU`: `torch.randn` on the CPU. [`TorchCpuGenerator`] reproduces PyTorch's MT19937
//!   and its AVX2 Box-Muller ([`avx_log`], [`avx_sincos`]) exactly, including the
//!   scalar double-precision path for fewer than 16 values and its cached sample.
//! - `NV` (and `GPU` on NVIDIA cards): Philox4x32-10, [`PhiloxGenerator`], after A1111's
//!   `modules/rng_philox.py`.
//! - per-image generators for a batch, variation seeds and "resize seed from":
//!   [`ImageRng`], after A1111's `ImageRNG`, with its [`slerp`].
//! - the SDE samplers' Brownian-tree noise: [`BrownianTreeNoise`], k-diffusion's
//!   `BrownianTreeNoiseSampler` over torchsde's `BrownianTree`, seeded through numpy's
//!   [`SeedSequence`].
//!
//! Everything here is plain Rust on `Vec<f32>` in row-major order; callers turn the
//! buffers into tensors.
//!
//! ```
//! use sd_core::noise::{ImageRng, RngSource};
//! let source: RngSource = "CPU".parse()?;
//! let mut rng = ImageRng::new(source, [4, 64, 64], &[3_711_471_449])?;
//! let latent_noise = rng.next(); // [1, 4, 64, 64]
//! assert_eq!(latent_noise.len(), 4 * 64 * 64);
//! # Ok::<(), sd_core::noise::NoiseError>(())
//! ```

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
