//! Which random number generator makes the noise (A1111's `randn_source` option).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::NoiseError;
use super::philox::PhiloxGenerator;
use super::torch_cpu::TorchCpuGenerator;

/// A1111's "Random number generator source" setting (`opts.randn_source`, infotext key
/// `RNG`), written as A1111 writes it: `"CPU"`, `"GPU"` or `"NV"`.
///
/// Parsing ignores case, so `"cpu"`, `"gpu"` and `"nv"` work too; serde accepts the
/// same spellings and writes A1111's.
///
/// ```
/// use sd_noise::RngSource;
/// let s: RngSource = "cpu".parse()?;
/// assert_eq!(s, RngSource::Cpu);
/// assert_eq!(RngSource::Nv.to_string(), "NV");
/// assert_eq!(serde_json::to_string(&RngSource::Gpu)?, "\"GPU\"");
/// assert_eq!(serde_json::from_str::<RngSource>("\"nv\"")?, RngSource::Nv);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RngSource {
    /// `torch.randn` on the CPU: MT19937 + torch's Box-Muller (bit-exact, see
    /// [`TorchCpuGenerator`]). The same on every machine, hence A1111's advice for
    /// reproducible pictures.
    #[serde(rename = "CPU", alias = "cpu", alias = "Cpu")]
    Cpu,
    /// `torch.randn` on the GPU (A1111's default). A CUDA device draws with Philox, which
    /// A1111's `NV` source reproduces on any machine; this crate therefore gives `GPU` the
    /// [`Nv`](Self::Nv) numbers (what an NVIDIA card gives, up to float rounding; AMD or
    /// Apple cards give other numbers, which no CPU code can reproduce).
    #[default]
    #[serde(rename = "GPU", alias = "gpu", alias = "Gpu")]
    Gpu,
    /// A1111's `NV`: Philox4x32-10 computed on the CPU (see [`PhiloxGenerator`]).
    #[serde(rename = "NV", alias = "nv", alias = "Nv")]
    Nv,
}

impl RngSource {
    /// A1111's spelling (`"CPU"`, `"GPU"`, `"NV"`), as written in settings and infotext.
    ///
    /// ```
    /// use sd_noise::RngSource;
    /// assert_eq!(RngSource::Cpu.as_str(), "CPU");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "CPU",
            Self::Gpu => "GPU",
            Self::Nv => "NV",
        }
    }

    /// A fresh generator of this source seeded with `seed` (A1111's `create_generator`).
    ///
    /// ```
    /// use sd_noise::{NoiseGenerator, RngSource};
    /// let mut g: NoiseGenerator = RngSource::Cpu.generator(7);
    /// assert_eq!(g.randn(4).len(), 4);
    /// ```
    pub fn generator(self, seed: u64) -> NoiseGenerator {
        match self {
            Self::Cpu => NoiseGenerator::Cpu(TorchCpuGenerator::new(seed)),
            Self::Gpu | Self::Nv => NoiseGenerator::Philox(PhiloxGenerator::new(seed)),
        }
    }
}

impl fmt::Display for RngSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RngSource {
    type Err = NoiseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CPU" => Ok(Self::Cpu),
            "GPU" => Ok(Self::Gpu),
            "NV" => Ok(Self::Nv),
            _ => Err(NoiseError::UnknownSource(s.to_owned())),
        }
    }
}

/// One seeded stream of standard normals, of either kind.
///
/// ```
/// use sd_noise::{NoiseGenerator, PhiloxGenerator};
/// let mut g = NoiseGenerator::Philox(PhiloxGenerator::new(0));
/// assert!((g.randn(1)[0] + 0.92466).abs() < 1e-5);
/// ```
#[derive(Debug, Clone)]
pub enum NoiseGenerator {
    /// torch's CPU generator.
    Cpu(TorchCpuGenerator),
    /// A1111's Philox generator.
    Philox(PhiloxGenerator),
}

impl NoiseGenerator {
    /// Draws `n` standard normals, continuing this generator's stream.
    ///
    /// ```
    /// use sd_noise::RngSource;
    /// let mut g = RngSource::Nv.generator(3);
    /// assert_ne!(g.randn(5), g.randn(5));
    /// ```
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        match self {
            Self::Cpu(g) => g.randn(n),
            Self::Philox(g) => g.randn(n),
        }
    }
}
