//! Flash-style attention for the CPU (`flex`) device at inference: `softmax(q kᵀ · scale) v`
//! over blocks of queries and keys, never holding more than one `[64, 256]` block of scores
//! per task.
//!
//! burn-flex's fused attention walks all 4096 queries of a head against 64 keys at a time,
//! so its score tile (1 MiB) and output accumulator fall out of the core's L2 on every key
//! tile, and it exponentiates one element at a time through libm. Here each rayon task owns
//! 64 queries of one head: their scores, running maxima and output rows stay in L1/L2 while
//! the task walks all keys; both block products are register-tiled SIMD kernels and the
//! exponential is a vectorised polynomial, all dispatched at run time to the widest
//! instruction set the CPU has (pulp: AVX2+FMA on x86-64-v3, NEON on aarch64, scalar
//! otherwise).

//!
//! The block products the backward pass shares live in [`blocks`]; the backward pass itself
//! in [`backward`].

mod backward;
mod blocks;
#[cfg(test)]
mod tests;

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

pub(crate) use self::backward::{SavedForward, Wanted, attention_backward};
use self::blocks::{
    Padding, Rows, Transposed, exp_in_place, mask_padding, padded_rows, scores_block, transposed,
    values_block,
};

/// Queries per task.
const QUERY_BLOCK: usize = 64;
/// Keys per score block.
const KEY_BLOCK: usize = 256;

/// The sizes of one attention call; tensors are contiguous, row-major.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionShape {
    /// Independent (batch × head) problems.
    pub slices: usize,
    /// Query rows per slice.
    pub queries: usize,
    /// Key (and value) rows per slice.
    pub keys: usize,
    /// Width of a query and a key row.
    pub head_dim: usize,
    /// Width of a value row (and of the output).
    pub value_dim: usize,
}

impl AttentionShape {
    /// The shape of an attention over `[batch, heads, queries, head_dim]` queries and
    /// `[batch, heads, keys, value_dim]` values (batch and heads fold into slices).
    pub fn of(q_dims: [usize; 4], v_dims: [usize; 4]) -> Self {
        let [batch, heads, queries, head_dim] = q_dims;
        let [_, _, keys, value_dim] = v_dims;
        Self {
            slices: batch * heads,
            queries,
            keys,
            head_dim,
            value_dim,
        }
    }
}

/// `softmax(q kᵀ · scale) v` for `q: [slices, queries, head_dim]`,
/// `k: [slices, keys, head_dim]`, `v: [slices, keys, value_dim]`.
///
/// Returns the output `[slices, queries, value_dim]` and each query row's log-sum-exp of its
/// scaled scores, `[slices, queries]`: what the backward pass ([`attention_backward`])
/// needs to recompute any block of the softmax from `q` and `k` alone.
pub(crate) fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    let AttentionShape {
        slices,
        queries,
        keys,
        head_dim,
        value_dim,
    } = shape;
    debug_assert_eq!(q.len(), slices * queries * head_dim);
    debug_assert_eq!(k.len(), slices * keys * head_dim);
    debug_assert_eq!(v.len(), slices * keys * value_dim);
    let mut out = vec![0f32; slices * queries * value_dim];
    let mut lse = vec![f32::NEG_INFINITY; slices * queries];
    if out.is_empty() || keys == 0 {
        return (out, lse);
    }
    let padding = Padding::new(keys);
    let padded_width = padding.width(value_dim);
    // Per slice: kᵀ `[head_dim, padded_keys]` (a key block's scores are then a sum of
    // broadcast-times-vector products) and v `[padded_keys, padded_width]`, zero padded.
    let (k_t, v_padded): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (0..slices)
        .into_par_iter()
        .map(|s| {
            let k = &k[s * keys * head_dim..(s + 1) * keys * head_dim];
            let v = &v[s * keys * value_dim..(s + 1) * keys * value_dim];
            (
                transposed(k, head_dim, padding.keys),
                padded_rows(v, value_dim, padding.keys, padded_width),
            )
        })
        .unzip();

    out.par_chunks_mut(queries * value_dim)
        .zip(lse.par_chunks_mut(queries))
        .zip(q.par_chunks(queries * head_dim))
        .enumerate()
        .for_each(|(s, ((out, lse), q))| {
            out.par_chunks_mut(QUERY_BLOCK * value_dim)
                .zip(lse.par_chunks_mut(QUERY_BLOCK))
                .zip(q.par_chunks(QUERY_BLOCK * head_dim))
                .for_each(|((out, lse), q)| {
                    Arch::new().dispatch(QueryBlock {
                        q: Rows::new(q, head_dim),
                        k_t: Transposed::new(&k_t[s], padding.keys),
                        v: &v_padded[s],
                        out,
                        lse,
                        keys,
                        value_dim,
                        padded_width,
                        scale,
                    });
                });
        });
    (out, lse)
}

/// Up to [`QUERY_BLOCK`] queries of one slice against all its keys.
struct QueryBlock<'a> {
    q: Rows<'a>,
    k_t: Transposed<'a>,
    v: &'a [f32],
    out: &'a mut [f32],
    lse: &'a mut [f32],
    keys: usize,
    value_dim: usize,
    padded_width: usize,
    scale: f32,
}

impl WithSimd for QueryBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let rows = self.q.count();
        let mut scores = vec![0f32; rows * KEY_BLOCK];
        let mut acc = vec![0f32; rows * self.padded_width];
        let mut row_max = vec![f32::NEG_INFINITY; rows];
        let mut row_sum = vec![0f32; rows];
        let padded_keys = self.k_t.stride;
        for start in (0..padded_keys).step_by(KEY_BLOCK) {
            let width = KEY_BLOCK.min(padded_keys - start);
            let scores = &mut scores[..rows * width];
            scores_block(simd, self.q, self.k_t, start, width, self.scale, scores);
            mask_padding(scores, width, self.keys.saturating_sub(start));
            for (r, row) in scores.chunks_exact_mut(width).enumerate() {
                let block_max = max(simd, row);
                let new_max = row_max[r].max(block_max);
                let correction = (row_max[r] - new_max).exp();
                let block_sum = exp_in_place(simd, row, new_max);
                row_sum[r] = row_sum[r] * correction + block_sum;
                row_max[r] = new_max;
                if correction != 1.0 {
                    let acc_row = &mut acc[r * self.padded_width..(r + 1) * self.padded_width];
                    acc_row.iter_mut().for_each(|a| *a *= correction);
                }
            }
            let v = &self.v[start * self.padded_width..(start + width) * self.padded_width];
            values_block(simd, scores, width, v, &mut acc);
        }
        for (((out, acc), sum), (lse, max)) in self
            .out
            .chunks_exact_mut(self.value_dim)
            .zip(acc.chunks_exact(self.padded_width))
            .zip(&row_sum)
            .zip(self.lse.iter_mut().zip(&row_max))
        {
            let inverse = 1.0 / sum;
            for (o, a) in out.iter_mut().zip(acc) {
                *o = a * inverse;
            }
            *lse = max + sum.ln();
        }
    }
}

/// The largest element of `row` (a whole number of vectors long).
#[inline(always)]
fn max<S: Simd>(simd: S, row: &[f32]) -> f32 {
    let (vectors, _) = S::as_simd_f32s(row);
    let mut best = simd.splat_f32s(f32::NEG_INFINITY);
    for &v in vectors {
        best = simd.max_f32s(best, v);
    }
    simd.reduce_max_f32s(best)
}
