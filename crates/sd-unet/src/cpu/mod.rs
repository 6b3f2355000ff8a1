//! This crate's own kernels for burn's CPU backend (`flex`), used at inference on f32 where
//! burn's ops are slow for SD's shapes: the attention ([`attention`]) and the GEGLU
//! feed-forward's gate ([`geglu`]). Each is dispatched at run time by `pulp` to the widest
//! SIMD the CPU has (AVX2 + FMA on x86-64-v3, NEON on aarch64, scalar otherwise), runs on
//! rayon's threads, and is tested against a textbook formula in f64.

pub(crate) mod attention;
pub(crate) mod geglu;
mod math;
