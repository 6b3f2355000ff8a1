//! The 36 matrix products of a Winograd convolution, `M[p] = V[p] · U[p]` for `p` in
//! 0..36, each `[tiles, in] × [in, out]` with a short inner dimension (SD's 128 to 1280
//! channels): a register-tiled SIMD micro-kernel on packed operands.
//!
//! The transformed kernel `U` is packed once per call in panels of [`nr`] output channels
//! (`[panel][36][in][nr]`), the transformed inputs of a task's tiles in groups of [`MR`]
//! tiles (`[group][36][in][MR]`), so that the crate's micro-kernel reads both as
//! consecutive memory.

use pulp::Simd;
use rayon::prelude::*;

use crate::cpu::lengthen;
pub(super) use crate::cpu::micro_kernel::MR;
use crate::cpu::micro_kernel::{micro_kernel, nr, store_row};

use super::KernelOrientation;
use super::POINTS;
use super::transforms::kernel_2d;

/// `U = G g Gᵀ` for every channel pair of `weight`, packed `[panel][36][in][nr]` (columns
/// past the last output channel are zero) into the start of `packed`, which it lengthens
/// if needed (a buffer kept between calls: a fresh one would cost a page fault per 4 KiB,
/// tens of milliseconds for the largest kernels); returns the packed length. `weight` is `[out][in][3][3]` for
/// [`KernelOrientation::Forward`], `[in][out][3][3]` (each kernel turned by 180°) for
/// [`KernelOrientation::Transposed`].
pub(super) fn pack_kernel<S: Simd>(
    simd: S,
    weight: &[f32],
    inputs: usize,
    outputs: usize,
    orientation: KernelOrientation,
    packed: &mut Vec<f32>,
) -> usize {
    let nr = nr::<S>();
    let len = outputs.div_ceil(nr) * POINTS * inputs * nr;
    lengthen(packed, len);
    packed[..len]
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
                let mut rows = vec![0f32; POINTS * nr];
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
                    // The 36 rows of this input channel, side by side, then each row written
                    // whole: written one value at a time, the 36 rows (`inputs · nr` floats
                    // apart, a multiple of 4 KiB for SD's channel counts) would fall into
                    // the same few cache sets and evict each other.
                    for (column, g) in g.iter().enumerate() {
                        let u = kernel_2d(g);
                        for (point, &value) in u.as_flattened().iter().enumerate() {
                            rows[point * nr + column] = value;
                        }
                    }
                    for (point, row) in rows.chunks_exact(nr).enumerate() {
                        block[(point * inputs + input) * nr..][..nr].copy_from_slice(row);
                    }
                }
            })
        });
    len
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
                    store_row(simd, *row, dst);
                }
            }
        }
    }
}
