//! The register-tiled SIMD micro-kernel of the crate's matrix products (the Winograd
//! convolution's 36 products and the linear layers): an `MR × nr` block of the product
//! from packed operands, `MR` rows of the left side interleaved (`[inner][MR]`) and `nr`
//! columns of the right side as two vectors per inner index (`[inner][nr]`). Per inner
//! index it broadcasts `MR` values and loads two vectors into `MR × 2` accumulators: 12 of
//! the 16 AVX2 registers, one fused multiply-add per accumulator.

use pulp::Simd;

/// Rows of the left side per micro-kernel call.
pub(crate) const MR: usize = 6;

/// The f32 lanes of `S`.
#[inline(always)]
pub(crate) fn lanes<S: Simd>() -> usize {
    size_of::<S::f32s>() / size_of::<f32>()
}

/// Columns of the right side per micro-kernel call (and per packed panel): two vectors.
#[inline(always)]
pub(crate) fn nr<S: Simd>() -> usize {
    2 * lanes::<S>()
}

/// One `MR × nr` block: `Σ_k a[k][r] · b[k]` for `a` `[inner][MR]` and `b` `[inner]` of
/// two vectors each.
#[inline(always)]
pub(crate) fn micro_kernel<S: Simd>(simd: S, a: &[f32], b: &[S::f32s]) -> [[S::f32s; 2]; MR] {
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; MR];
    for (a, b) in a.chunks_exact(MR).zip(b.chunks_exact(2)) {
        let (b0, b1) = (b[0], b[1]);
        for (row, &value) in acc.iter_mut().zip(a) {
            let value = simd.splat_f32s(value);
            row[0] = simd.mul_add_e_f32s(value, b0, row[0]);
            row[1] = simd.mul_add_e_f32s(value, b1, row[1]);
        }
    }
    acc
}

/// Stores one row of a block (`row`, two vectors) into `dst`, its first `dst.len()`
/// (at most `nr`) values.
#[inline(always)]
pub(crate) fn store_row<S: Simd>(simd: S, row: [S::f32s; 2], dst: &mut [f32]) {
    if dst.len() == nr::<S>() {
        let (dst, _) = S::as_mut_simd_f32s(dst);
        dst[0] = row[0];
        dst[1] = row[1];
    } else {
        let (low, high) = dst.split_at_mut(dst.len().min(lanes::<S>()));
        simd.partial_store_f32s(low, row[0]);
        simd.partial_store_f32s(high, row[1]);
    }
}
