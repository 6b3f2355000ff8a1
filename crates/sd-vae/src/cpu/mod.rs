//! This crate's own kernel for burn's CPU backend (`flex`): GroupNorm + SiLU in one pass
//! ([`group_norm`]), dispatched at run time by `pulp` to the widest SIMD the CPU has, on
//! rayon's threads, and tested against the f64 formula.

pub(crate) mod group_norm;
mod math;
