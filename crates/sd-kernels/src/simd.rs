//! Which SIMD instruction set the CPU kernels run on: `pulp` (our kernels) and `gemm` (the
//! matrix products, burn's and ours) choose the widest one the CPU has when they run, so one
//! binary uses AVX-512 where it exists and AVX2 elsewhere.

use std::fmt;

/// The SIMD instruction set the CPU kernels dispatch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// x86-64-v4: AVX-512 (F, BW, CD, DQ, VL), 16 f32 lanes.
    Avx512,
    /// x86-64-v3: AVX2 with FMA, 8 f32 lanes.
    Avx2,
    /// aarch64's NEON, 4 f32 lanes.
    Neon,
    /// None: one value at a time.
    Scalar,
}

impl SimdLevel {
    /// A short lowercase name: `avx512`, `avx2`, `neon` or `scalar`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Neon => "neon",
            Self::Scalar => "scalar",
        }
    }
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The instruction set the CPU kernels run on on this CPU.
///
/// ```
/// let level = sd_kernels::simd_level();
/// assert!(["avx512", "avx2", "neon", "scalar"].contains(&level.name()));
/// ```
#[cfg(feature = "flex")]
pub fn simd_level() -> SimdLevel {
    /// The name of the SIMD type pulp dispatches to (`pulp::x86::V3`, `pulp::aarch64::Neon`…).
    struct TypeName;

    impl pulp::WithSimd for TypeName {
        type Output = &'static str;

        fn with_simd<S: pulp::Simd>(self, _: S) -> &'static str {
            std::any::type_name::<S>()
        }
    }

    let name = pulp::Arch::new().dispatch(TypeName);
    let last = name.rsplit("::").next().unwrap_or(name);
    if last.starts_with("V4") {
        SimdLevel::Avx512
    } else if last.starts_with("V3") {
        SimdLevel::Avx2
    } else if last.starts_with("Neon") {
        SimdLevel::Neon
    } else {
        SimdLevel::Scalar
    }
}
