//! `x · w + bias` for a linear layer at inference: `x` `[rows, inner]` (the tokens), `w`
//! `[inner, cols]`, with the crate's micro-kernel on packed operands.
//!
//! burn-flex's matrix product (the `gemm` crate) reaches about half of the machine's peak at
//! SD's shapes, whose inner dimension is short (320 to 1280 channels). Here the weight is
//! packed once per call in panels of [`nr`] columns (`[panel][inner][nr]`, one panel is 20
//! to 80 KiB and stays in the first caches), and each rayon task packs [`TASK_ROWS`] rows of
//! `x` in groups of [`MR`] (`[group][inner][MR]`) and runs the micro-kernel over every
//! (panel, group) pair, writing its own rows of the output.

use std::cell::Cell;

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::lengthen;
use super::micro_kernel::{MR, micro_kernel, nr, store_row};

/// Rows of `x` per task: eight micro-kernel groups.
const TASK_ROWS: usize = 8 * MR;

thread_local! {
    /// The packed weight's buffer, kept between calls (a fresh one costs a page fault per
    /// 4 KiB).
    static PACKED_WEIGHT: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `x · w + bias`, row-major `[rows, cols]`.
pub(crate) fn matmul(
    x: &[f32],
    rows: usize,
    inner: usize,
    w: &[f32],
    cols: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    debug_assert_eq!(x.len(), rows * inner);
    debug_assert_eq!(w.len(), inner * cols);
    debug_assert!(bias.is_none_or(|b| b.len() == cols));
    Arch::new().dispatch(Matmul {
        x,
        rows,
        inner,
        w,
        cols,
        bias,
    })
}

/// [`matmul`]'s arguments, run on the CPU's widest SIMD.
struct Matmul<'a> {
    x: &'a [f32],
    rows: usize,
    inner: usize,
    w: &'a [f32],
    cols: usize,
    bias: Option<&'a [f32]>,
}

impl WithSimd for Matmul<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
        let Self {
            x,
            rows,
            inner,
            w,
            cols,
            bias,
        } = self;
        let mut out = vec![0f32; rows * cols];
        if rows == 0 || cols == 0 {
            return out;
        }
        let nr = nr::<S>();
        let mut packed = PACKED_WEIGHT.take();
        let len = cols.div_ceil(nr) * inner * nr;
        lengthen(&mut packed, len);
        packed[..len]
            .par_chunks_mut(inner * nr)
            .enumerate()
            .for_each(|(panel, block)| {
                let first = panel * nr;
                let width = nr.min(cols - first);
                for (k, dst) in block.chunks_exact_mut(nr).enumerate() {
                    dst[..width].copy_from_slice(&w[k * cols + first..][..width]);
                    dst[width..].fill(0.0);
                }
            });
        let weight = &packed[..len];
        out.par_chunks_mut(TASK_ROWS * cols)
            .enumerate()
            .for_each_init(
                || vec![0f32; TASK_ROWS * inner],
                |a, (task, out)| {
                    let x = &x[task * TASK_ROWS * inner..][..out.len() / cols * inner];
                    simd.vectorize(Rows {
                        x,
                        inner,
                        weight,
                        cols,
                        bias,
                        a,
                        out,
                    })
                },
            );
        PACKED_WEIGHT.set(packed);
        out
    }
}

/// One task's rows: `x` `[rows, inner]` into `out` `[rows, cols]`, with `a` as the packed
/// rows' buffer. (A struct rather than a closure, so that the body is compiled for the SIMD
/// `pulp` chose.)
struct Rows<'a> {
    x: &'a [f32],
    inner: usize,
    weight: &'a [f32],
    cols: usize,
    bias: Option<&'a [f32]>,
    a: &'a mut [f32],
    out: &'a mut [f32],
}

impl WithSimd for Rows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            x,
            inner,
            weight,
            cols,
            bias,
            a,
            out,
        } = self;
        let nr = nr::<S>();
        let rows = out.len() / cols;
        let groups = rows.div_ceil(MR);
        // `a[group][k][slot]` = x[group · MR + slot][k] (zero past the last row).
        for (group, packed) in a.chunks_exact_mut(inner * MR).take(groups).enumerate() {
            for slot in 0..MR {
                let row = group * MR + slot;
                if row < rows {
                    let source = &x[row * inner..][..inner];
                    for (dst, &value) in packed.chunks_exact_mut(MR).zip(source) {
                        dst[slot] = value;
                    }
                } else {
                    for dst in packed.chunks_exact_mut(MR) {
                        dst[slot] = 0.0;
                    }
                }
            }
        }
        for (panel, b) in weight.chunks_exact(inner * nr).enumerate() {
            let first = panel * nr;
            let width = nr.min(cols - first);
            let (b, _) = S::as_simd_f32s(b);
            for (group, packed) in a.chunks_exact(inner * MR).take(groups).enumerate() {
                let acc = micro_kernel(simd, packed, b);
                for (slot, row) in acc.into_iter().enumerate() {
                    let index = group * MR + slot;
                    if index >= rows {
                        break;
                    }
                    store_row(simd, row, &mut out[index * cols + first..][..width]);
                }
            }
        }
        if let Some(bias) = bias {
            for row in out.chunks_exact_mut(cols) {
                for (value, &b) in row.iter_mut().zip(bias) {
                    *value += b;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::pseudo_random;

    /// Against the f64 product, for shapes with partial row groups, partial column panels
    /// and several tasks; the error is an f32 sum's.
    #[test]
    fn matches_the_f64_product() {
        for (rows, inner, cols) in [(1, 3, 5), (7, 64, 33), (100, 320, 320), (154, 768, 40)] {
            let x = pseudo_random(rows * inner, 3, -1.0, 1.0);
            let w = pseudo_random(inner * cols, 4, -0.1, 0.1);
            let bias = pseudo_random(cols, 5, -0.5, 0.5);
            let out = matmul(&x, rows, inner, &w, cols, Some(&bias));
            for r in 0..rows {
                for c in 0..cols {
                    let expected: f64 = f64::from(bias[c])
                        + (0..inner)
                            .map(|k| f64::from(x[r * inner + k]) * f64::from(w[k * cols + c]))
                            .sum::<f64>();
                    let err = (f64::from(out[r * cols + c]) - expected).abs();
                    assert!(
                        err < 1e-5,
                        "{rows}×{inner}×{cols} at ({r}, {c}): error {err:e}"
                    );
                }
            }
        }
    }
}
