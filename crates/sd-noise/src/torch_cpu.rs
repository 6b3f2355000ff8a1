//! `torch.randn` on the CPU (A1111's `CPU` random number source), bit for bit.
//!
//! Mirrors `aten/src/ATen/native/cpu/DistributionTemplates.h` (`normal_kernel`,
//! `normal_fill`, `NormalFill16<float, true>`), `aten/src/ATen/core/DistributionsHelper.h`
//! (`normal_distribution<double>`, `uniform_real_distribution`) and
//! `aten/src/ATen/CPUGeneratorImpl.cpp` (`random64`, the cached normal sample).
//!
//! - 16 values or more: every value first gets a float uniform `(u32 & 0xFFFFFF) * 2^-24`;
//!   then each block of 16 becomes normals by Box-Muller, pairing value `i` with `i + 8`
//!   (`u1 = 1 - data[i]`, `u2 = data[i + 8]`). When the count is not a multiple of 16,
//!   16 fresh uniforms overwrite the last 16 values and that block is transformed again.
//!   On x86-64 with AVX2 (the machines A1111 users run), torch evaluates log/sin/cos with
//!   its AVX2 polynomials ([`super::avx_mathfun`]); this module reproduces them.
//! - fewer than 16 values: one double-precision Box-Muller per value, drawing 53-bit
//!   uniforms from `random64()`, returning `r cos(theta)` and caching `r sin(theta)` in
//!   the generator for the next scalar draw (the cache survives block draws in between).

use super::avx_mathfun::{avx_log, avx_sincos};
use super::mt19937::Mt19937;

/// Below this many values torch uses the scalar, double-precision path.
const BLOCK: usize = 16;
/// `2^-24`: the float uniform keeps the low 24 bits of one 32-bit draw.
const FLOAT_DIVISOR: f32 = 1.0 / (1u32 << 24) as f32;
/// `2^-53`: the double uniform keeps the low 53 bits of one 64-bit draw.
const DOUBLE_DIVISOR: f64 = 1.0 / (1u64 << 53) as f64;

/// A PyTorch CPU generator (`torch.Generator("cpu").manual_seed(seed)`) that draws
/// standard normals exactly as `torch.randn(..., generator=g)` does on an AVX2 CPU.
///
/// Successive calls continue the same stream, as successive `torch.randn` calls on one
/// generator do.
///
/// ```
/// use sd_noise::TorchCpuGenerator;
/// // torch.manual_seed(0); torch.randn(3) -> [1.5410, -0.2934, -2.1788]
/// let x = TorchCpuGenerator::new(0).randn(3);
/// assert!((x[0] - 1.5410).abs() < 1e-4 && (x[2] + 2.1788).abs() < 1e-4);
/// ```
#[derive(Debug, Clone)]
pub struct TorchCpuGenerator {
    engine: Mt19937,
    /// `CPUGeneratorImpl::next_double_normal_sample_`: the sine half of the last
    /// scalar Box-Muller pair, handed out by the next scalar draw.
    next_double_normal: Option<f64>,
}

impl TorchCpuGenerator {
    /// A generator seeded as `torch.manual_seed(seed)` seeds it (low 32 bits count).
    ///
    /// ```
    /// use sd_noise::TorchCpuGenerator;
    /// let mut g = TorchCpuGenerator::new(42);
    /// assert_eq!(g.randn(20).len(), 20);
    /// ```
    pub fn new(seed: u64) -> Self {
        Self {
            engine: Mt19937::new(seed),
            next_double_normal: None,
        }
    }

    /// Draws `n` standard normals (`torch.randn(n, generator=self)`, float32, in the
    /// flat order of any shape with `n` elements).
    ///
    /// ```
    /// use sd_noise::TorchCpuGenerator;
    /// // torch.manual_seed(0); torch.randn(17)[16] -> 0.9318
    /// let x = TorchCpuGenerator::new(0).randn(17);
    /// assert!((x[16] - 0.9318).abs() < 1e-4);
    /// ```
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        if n >= BLOCK {
            self.randn_blocks(n)
        } else {
            (0..n).map(|_| self.normal_f64() as f32).collect()
        }
    }

    /// A float uniform in [0, 1) (`uniform_real_distribution<float>(0, 1)`).
    fn uniform_f32(&mut self) -> f32 {
        // The masked value is below 2^24, so the conversion is exact; `x * 1 + 0`
        // from the distribution's range is the identity and is left out.
        (self.engine.next_u32() & 0x00ff_ffff) as f32 * FLOAT_DIVISOR
    }

    /// `normal_fill` for `n >= 16`.
    fn randn_blocks(&mut self, n: usize) -> Vec<f32> {
        let mut data: Vec<f32> = (0..n).map(|_| self.uniform_f32()).collect();
        for block in data.chunks_exact_mut(BLOCK) {
            normal_fill_16(block);
        }
        if !n.is_multiple_of(BLOCK) {
            let tail = &mut data[n - BLOCK..];
            for v in tail.iter_mut() {
                *v = self.uniform_f32();
            }
            normal_fill_16(tail);
        }
        data
    }

    /// One draw of `normal_distribution<double>(0, 1)`, with the generator's cache.
    fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached;
        }
        let u1 = (self.engine.next_u64() & ((1u64 << 53) - 1)) as f64 * DOUBLE_DIVISOR;
        let u2 = (self.engine.next_u64() & ((1u64 << 53) - 1)) as f64 * DOUBLE_DIVISOR;
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// `NormalFill16<float, true>` (AVX2): Box-Muller on one block of 16 uniforms, in place,
/// with mean 0 and standard deviation 1.
fn normal_fill_16(data: &mut [f32]) {
    debug_assert_eq!(data.len(), BLOCK);
    // torch broadcasts `2.0f * c10::pi<double>` rounded to float.
    let two_pi = std::f32::consts::TAU;
    for j in 0..BLOCK / 2 {
        let u1 = 1.0 - data[j];
        let u2 = data[j + 8];
        let radius = (-2.0 * avx_log(u1)).sqrt();
        let (sin, cos) = avx_sincos(two_pi * u2);
        // `_mm256_fmadd_ps(n, std, mean)` with std = 1, mean = 0.
        data[j] = (radius * cos).mul_add(1.0, 0.0);
        data[j + 8] = (radius * sin).mul_add(1.0, 0.0);
    }
}
