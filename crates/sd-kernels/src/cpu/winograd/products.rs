//! The 36 matrix products of a Winograd convolution, `M[p] = V[p] · U[p]` for `p` in
//! 0..36, each `[tiles, in] × [in, out]` with a short inner dimension (SD's 128 to 1280
//! channels): a register-tiled SIMD micro-kernel on packed operands.
//!
//! The transformed kernel `U` is packed once per call in panels of [`nr`] output channels
//! (`[panel][36][in][nr]`), the transformed inputs of a task's tiles in groups of [`MR`]
//! tiles (`[group][36][in][MR]`), so that the micro-kernel reads both as consecutive
//! memory: per input channel, [`MR`] broadcast values and two vectors, into `MR × 2`
//! accumulators (12 of the 16 AVX2 registers).

use pulp::Simd;
use rayon::prelude::*;

use super::KernelOrientation;
use super::POINTS;
use super::transforms::kernel_2d;

/// Tiles per micro-kernel call: the rows of a packed group.
pub(super) const MR: usize = 6;

/// The f32 lanes of `S`.
#[inline(always)]
pub(super) fn lanes<S: Simd>() -> usize {
    size_of::<S::f32s>() / size_of::<f32>()
}

/// Output channels per packed panel of the kernel: two vectors.
#[inline(always)]
pub(super) fn nr<S: Simd>() -> usize {
    2 * lanes::<S>()
}

/// `U = G g Gᵀ` for every channel pair of `weight`, packed `[panel][36][in][nr]` (columns
/// past the last output channel are zero) into `packed`, whose length it sets (a buffer
/// kept between calls: a fresh one would cost a page fault per 4 KiB, tens of
/// milliseconds for the largest kernels). `weight` is `[out][in][3][3]` for
/// [`KernelOrientation::Forward`], `[in][out][3][3]` (each kernel turned by 180°) for
/// [`KernelOrientation::Transposed`].
pub(super) fn pack_kernel<S: Simd>(
    simd: S,
    weight: &[f32],
    inputs: usize,
    outputs: usize,
    orientation: KernelOrientation,
    packed: &mut Vec<f32>,
) {
    let nr = nr::<S>();
    let panels = outputs.div_ceil(nr);
    packed.resize(panels * POINTS * inputs * nr, 0.0);
    packed
        .par_chunks_mut(POINTS * inputs * nr)
        .enumerate()
        .for_each(|(panel, block)| {
            simd.vectorize(|| {
                let first = panel * nr;
                let columns = nr.min(outputs - first);
                if columns < nr {
                    block.fill(0.0);
                }
                // One input channel at a time, the panel's columns side by side: each of the
                // 36 transformed values is a row of `nr` consecutive floats.
                let mut g = vec![[0f32; 9]; columns];
                for input in 0..inputs {
                    for (column, g) in g.iter_mut().enumerate() {
                        let output = first + column;
                        let (pair, flipped) = match orientation {
                            KernelOrientation::Forward => (output * inputs + input, false),
                            KernelOrientation::Transposed => (input * outputs + output, true),
                        };
                        let source = &weight[pair * 9..pair * 9 + 9];
                        for (k, value) in g.iter_mut().enumerate() {
                            *value = if flipped { source[8 - k] } else { source[k] };
                        }
                    }
                    for (column, g) in g.iter().enumerate() {
                        let u = kernel_2d(g, false);
                        for (point, &value) in u.as_flattened().iter().enumerate() {
                            block[(point * inputs + input) * nr + column] = value;
                        }
                    }
                }
            })
        });
}

/// `products[tile][p][out] = Σ_c v[group][p][c][slot] · u[panel][p][c][col]` for the tiles
/// of `v` (`[group][36][in][MR]`, as many groups as `products` has tiles / [`MR`], rounded
/// up), with `kernel` from [`pack_kernel`].
#[inline(always)]
pub(super) fn multiply<S: Simd>(
    simd: S,
    v: &[f32],
    kernel: &[f32],
    inputs: usize,
    outputs: usize,
    products: &mut [f32],
) {
    let nr = nr::<S>();
    let lanes = lanes::<S>();
    let tiles = products.len() / (POINTS * outputs);
    let group_len = POINTS * inputs * MR;
    let panel_len = POINTS * inputs * nr;
    for (panel_index, panel) in kernel.chunks_exact(panel_len).enumerate() {
        let first = panel_index * nr;
        let width = nr.min(outputs - first);
        for point in 0..POINTS {
            let b = &panel[point * inputs * nr..][..inputs * nr];
            let (b, _) = S::as_simd_f32s(b);
            for (group, a) in v.chunks_exact(group_len).enumerate() {
                let a = &a[point * inputs * MR..][..inputs * MR];
                let acc = micro_kernel(simd, a, b);
                for (slot, row) in acc.iter().enumerate() {
                    let tile = group * MR + slot;
                    if tile >= tiles {
                        break;
                    }
                    let dst = &mut products[(tile * POINTS + point) * outputs + first..][..width];
                    if width == nr {
                        let (dst, _) = S::as_mut_simd_f32s(dst);
                        dst[0] = row[0];
                        dst[1] = row[1];
                    } else {
                        let (low, high) = dst.split_at_mut(width.min(lanes));
                        simd.partial_store_f32s(low, row[0]);
                        simd.partial_store_f32s(high, row[1]);
                    }
                }
            }
        }
    }
}

/// One `MR × nr` block: `Σ_c a[c][r] · b[c]` for `a` `[in][MR]` and `b` `[in]` of two
/// vectors each.
#[inline(always)]
fn micro_kernel<S: Simd>(simd: S, a: &[f32], b: &[S::f32s]) -> [[S::f32s; 2]; MR] {
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
