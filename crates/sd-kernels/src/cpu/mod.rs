//! The kernels for burn's CPU backend (`flex`), used on f32 where burn's ops are slow for
//! SD's shapes: the attention ([`attention`]) and its backward pass, the GEGLU feed-forward's
//! gate ([`geglu`]) and GroupNorm with its SiLU ([`group_norm`]), each with its backward
//! pass, joined to burn's autodiff graph by [`tracked`]; the 3×3 convolutions by Winograd
//! ([`winograd`]) and the linear layers' products ([`matmul`]), both on one register-tiled
//! micro-kernel. Each is dispatched at run time by `pulp` to the widest SIMD the CPU has
//! (AVX-512 on x86-64-v4, AVX2 + FMA on x86-64-v3, NEON on aarch64, scalar otherwise), runs
//! on rayon's threads, and is tested against a textbook formula in f64.
//!
//! They work on slices; the crate's top-level modules decide when they apply and turn
//! tensors into slices and back.

pub(crate) mod attention;
pub(crate) mod geglu;
pub(crate) mod group_norm;
mod math;
pub(crate) mod matmul;
mod micro_kernel;
pub(crate) mod tracked;
pub(crate) mod winograd;

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Device};

/// Whether the inference kernels take tensors of `dtype` on `device`: f32 on burn's CPU
/// backend (`flex`), outside autodiff (which goes through [`tracked`] instead).
pub(crate) fn kernels_take(device: &Device, dtype: DType) -> bool {
    !device.is_autodiff() && *device == Device::flex() && dtype == DType::F32
}

/// `tensor` as a contiguous f32 tensor (a cheap clone when it already is one).
pub(crate) fn contiguous_f32(tensor: &FlexTensor) -> FlexTensor {
    if tensor.dtype() == DType::F32 {
        tensor.to_contiguous()
    } else {
        FlexTensor::from_data(tensor.clone().into_data().convert::<f32>())
    }
}

/// The elements of a tensor made by [`contiguous_f32`].
pub(crate) fn values(tensor: &FlexTensor) -> &[f32] {
    tensor
        .as_slice::<f32>()
        .expect("contiguous_f32 makes contiguous f32 tensors")
}

/// Lengthens `buffer` to at least `len` values (zeros), never shortening it: the kernels
/// keep their large buffers between calls and use their starts.
pub(crate) fn lengthen(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

/// `n` deterministic pseudo-random values in `[low, high)` (xorshift32), for the kernels'
/// tests.
#[cfg(test)]
pub(crate) fn pseudo_random(n: usize, seed: u32, low: f32, high: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            low + (state as f32 / u32::MAX as f32) * (high - low)
        })
        .collect()
}
