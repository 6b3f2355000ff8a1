//! This crate's own kernels for burn's CPU backend (`flex`), used on f32 where burn's ops are
//! slow for SD's shapes: the attention ([`attention`]), its backward pass
//! ([`attention_backward`], joined to burn's autodiff graph by [`tracked`]) and the GEGLU
//! feed-forward's gate ([`geglu`], inference only). Each is dispatched at run time by `pulp` to the widest
//! SIMD the CPU has (AVX2 + FMA on x86-64-v3, NEON on aarch64, scalar otherwise), runs on
//! rayon's threads, and is tested against a textbook formula in f64.

pub(crate) mod attention;
mod attention_backward;
pub(crate) mod geglu;
mod math;
pub(crate) mod tracked;
