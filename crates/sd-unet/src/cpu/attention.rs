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

use pulp::{Arch, Simd, WithSimd};

use super::math::exp;
use rayon::prelude::*;

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
/// scaled scores, `[slices, queries]`: what the backward pass (`super::attention_backward`)
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

/// How a slice's keys and row widths are padded for the SIMD kernels: keys to whole pairs
/// of vectors (every key block is then a multiple of the score tile, and [`KEY_BLOCK`] a
/// multiple of any pair), row widths to whole vectors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Padding {
    /// The padded number of keys.
    pub keys: usize,
    lanes: usize,
}

impl Padding {
    /// The padding of `keys` keys on this CPU's SIMD.
    pub fn new(keys: usize) -> Self {
        let lanes = Arch::new().dispatch(Lanes);
        Self {
            keys: keys.next_multiple_of(2 * lanes),
            lanes,
        }
    }

    /// `width` rounded up to whole vectors.
    pub fn width(&self, width: usize) -> usize {
        width.next_multiple_of(self.lanes)
    }
}

/// Rows of `width` elements (queries, or output gradients), contiguous.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rows<'a> {
    /// The rows, one after another.
    pub data: &'a [f32],
    /// Elements per row.
    pub width: usize,
}

impl<'a> Rows<'a> {
    /// Rows of `width` elements.
    pub fn new(data: &'a [f32], width: usize) -> Self {
        Self { data, width }
    }

    /// The number of rows.
    pub fn count(&self) -> usize {
        self.data.len() / self.width
    }
}

/// A transposed `[width, stride]` matrix: column `j` of it is key (or value) row `j`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Transposed<'a> {
    /// `[width, stride]`, row-major.
    pub data: &'a [f32],
    /// The padded number of keys.
    pub stride: usize,
}

impl<'a> Transposed<'a> {
    /// A transposed matrix of `stride` (padded) columns.
    pub fn new(data: &'a [f32], stride: usize) -> Self {
        Self { data, stride }
    }
}

/// `rows: [n, width]` → its transpose `[width, padded_n]`, zero padded.
pub(super) fn transposed(rows: &[f32], width: usize, padded_n: usize) -> Vec<f32> {
    let mut out = vec![0f32; width * padded_n];
    for (r, row) in rows.chunks_exact(width).enumerate() {
        for (c, &value) in row.iter().enumerate() {
            out[c * padded_n + r] = value;
        }
    }
    out
}

/// `rows: [n, width]` → `[padded_n, padded_width]`, zero padded.
pub(super) fn padded_rows(
    rows: &[f32],
    width: usize,
    padded_n: usize,
    padded_width: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; padded_n * padded_width];
    for (row, out) in rows
        .chunks_exact(width)
        .zip(out.chunks_exact_mut(padded_width))
    {
        out[..width].copy_from_slice(row);
    }
    out
}

/// The f32 lanes of the SIMD pulp dispatches to on this CPU.
struct Lanes;

impl WithSimd for Lanes {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) -> usize {
        size_of::<S::f32s>() / size_of::<f32>()
    }
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

/// Sets the scores of padding keys (zero columns of kᵀ, from `real` on in a block `width`
/// keys wide) to −∞, so that they take no part in the softmax.
#[inline(always)]
pub(super) fn mask_padding(scores: &mut [f32], width: usize, real: usize) {
    if real < width {
        for row in scores.chunks_exact_mut(width) {
            row[real..].fill(f32::NEG_INFINITY);
        }
    }
}

/// `scores[r, j] = scale · q[r] · kᵀ[:, start + j]` for a block `width` keys wide (a
/// multiple of two vectors).
#[inline(always)]
pub(super) fn scores_block<S: Simd>(
    simd: S,
    q: Rows<'_>,
    k_t: Transposed<'_>,
    start: usize,
    width: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let rows = q.count();
    let mut r = 0;
    while r + 4 <= rows {
        scores_tile::<S, 4>(simd, q, k_t, start, width, scale, r, scores);
        r += 4;
    }
    while r < rows {
        scores_tile::<S, 1>(simd, q, k_t, start, width, scale, r, scores);
        r += 1;
    }
}

/// [`scores_block`] for query rows `r..r + R`: `R` rows × two vectors of keys in registers,
/// accumulated over the head dimension.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scores_tile<S: Simd, const R: usize>(
    simd: S,
    q: Rows<'_>,
    k_t: Transposed<'_>,
    start: usize,
    width: usize,
    scale: f32,
    r: usize,
    scores: &mut [f32],
) {
    let lanes = size_of::<S::f32s>() / size_of::<f32>();
    let (d, stride) = (q.width, k_t.stride);
    let scale = simd.splat_f32s(scale);
    let q = &q.data[r * d..(r + R) * d];
    for j in (0..width).step_by(2 * lanes) {
        let mut acc = [[simd.splat_f32s(0.0); 2]; R];
        for c in 0..d {
            let at = c * stride + start + j;
            let (k, _) = S::as_simd_f32s(&k_t.data[at..at + 2 * lanes]);
            let (k0, k1) = (k[0], k[1]);
            for (t, acc) in acc.iter_mut().enumerate() {
                let q = simd.splat_f32s(q[t * d + c]);
                acc[0] = simd.mul_add_e_f32s(q, k0, acc[0]);
                acc[1] = simd.mul_add_e_f32s(q, k1, acc[1]);
            }
        }
        for (t, acc) in acc.iter().enumerate() {
            let at = (r + t) * width + j;
            let (out, _) = S::as_mut_simd_f32s(&mut scores[at..at + 2 * lanes]);
            out[0] = simd.mul_f32s(acc[0], scale);
            out[1] = simd.mul_f32s(acc[1], scale);
        }
    }
}

/// `acc[r] += Σ_j p[r, j] · v[j]` over a block `width` keys wide; `v` and `acc` rows are
/// padded to whole vectors.
#[inline(always)]
pub(super) fn values_block<S: Simd>(simd: S, p: &[f32], width: usize, v: &[f32], acc: &mut [f32]) {
    let lanes = size_of::<S::f32s>() / size_of::<f32>();
    let rows = p.len() / width;
    let vectors = acc.len() / rows / lanes;
    let mut r = 0;
    while r < rows {
        let two = r + 2 <= rows;
        let mut g = 0;
        while g < vectors {
            // Groups of five vectors (SD's 40-wide heads on 8 lanes) keep ten sums in
            // flight, enough to hide the FMA latency; fewer only at the ragged end.
            let group = match vectors - g {
                left if left % 5 == 0 || left > 8 => 5,
                left if left >= 4 => 4,
                left => left,
            };
            match (two, group) {
                (true, 5) => values_tile::<S, 2, 5>(simd, p, width, v, acc, r, g),
                (true, 4) => values_tile::<S, 2, 4>(simd, p, width, v, acc, r, g),
                (true, 3) => values_tile::<S, 2, 3>(simd, p, width, v, acc, r, g),
                (true, 2) => values_tile::<S, 2, 2>(simd, p, width, v, acc, r, g),
                (true, _) => values_tile::<S, 2, 1>(simd, p, width, v, acc, r, g),
                (false, 5) => values_tile::<S, 1, 5>(simd, p, width, v, acc, r, g),
                (false, 4) => values_tile::<S, 1, 4>(simd, p, width, v, acc, r, g),
                (false, _) => values_tile::<S, 1, 1>(simd, p, width, v, acc, r, g),
            }
            g += match (two, group) {
                (false, 2 | 3) => 1,
                _ => group,
            };
        }
        r += if two { 2 } else { 1 };
    }
}

/// [`values_block`] for rows `r..r + R` and output vectors `g..g + G`, kept in registers
/// across the block's keys.
#[inline(always)]
fn values_tile<S: Simd, const R: usize, const G: usize>(
    simd: S,
    p: &[f32],
    width: usize,
    v: &[f32],
    acc: &mut [f32],
    r: usize,
    g: usize,
) {
    let rows = p.len() / width;
    let padded_width = acc.len() / rows;
    let mut sums = [[simd.splat_f32s(0.0); G]; R];
    for (t, sums) in sums.iter_mut().enumerate() {
        let (row, _) = S::as_simd_f32s(&acc[(r + t) * padded_width..(r + t + 1) * padded_width]);
        sums.copy_from_slice(&row[g..g + G]);
    }
    for j in 0..width {
        let (v_row, _) = S::as_simd_f32s(&v[j * padded_width..(j + 1) * padded_width]);
        let v_row = &v_row[g..g + G];
        for (t, sums) in sums.iter_mut().enumerate() {
            let weight = simd.splat_f32s(p[(r + t) * width + j]);
            for (sum, &value) in sums.iter_mut().zip(v_row) {
                *sum = simd.mul_add_e_f32s(weight, value, *sum);
            }
        }
    }
    for (t, sums) in sums.iter().enumerate() {
        let at = (r + t) * padded_width;
        let (row, _) = S::as_mut_simd_f32s(&mut acc[at..at + padded_width]);
        row[g..g + G].copy_from_slice(sums);
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

/// Replaces each `x` of `row` by `exp(x − shift)` and returns their sum.
#[inline(always)]
pub(super) fn exp_in_place<S: Simd>(simd: S, row: &mut [f32], shift: f32) -> f32 {
    let shift = simd.splat_f32s(shift);
    let mut sum = simd.splat_f32s(0.0);
    let (vectors, _) = S::as_mut_simd_f32s(row);
    for v in vectors {
        *v = exp(simd, simd.sub_f32s(*v, shift));
        sum = simd.add_f32s(sum, *v);
    }
    simd.reduce_sum_f32s(sum)
}

#[cfg(test)]
mod tests {
    use super::super::pseudo_random;
    use super::*;

    /// The textbook formula in f64.
    fn reference(q: &[f32], k: &[f32], v: &[f32], shape: AttentionShape, scale: f32) -> Vec<f32> {
        let AttentionShape {
            slices,
            queries,
            keys,
            head_dim: d,
            value_dim: dv,
        } = shape;
        let mut out = vec![0f32; slices * queries * dv];
        for s in 0..slices {
            for i in 0..queries {
                let q = &q[(s * queries + i) * d..][..d];
                let scores: Vec<f64> = (0..keys)
                    .map(|j| {
                        let k = &k[(s * keys + j) * d..][..d];
                        q.iter().zip(k).map(|(a, b)| f64::from(a * b)).sum::<f64>()
                            * f64::from(scale)
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for c in 0..dv {
                    let value: f64 = (0..keys)
                        .map(|j| weights[j] * f64::from(v[(s * keys + j) * dv + c]))
                        .sum();
                    out[(s * queries + i) * dv + c] = (value / total) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_textbook_formula_on_ragged_shapes() {
        // Queries and keys that are not multiples of the blocks or vectors; SD's head widths.
        for (slices, queries, keys, d, dv) in [
            (2, 70, 300, 40, 40),
            (1, 5, 77, 80, 80),
            (3, 64, 257, 8, 24),
            (1, 1, 1, 1, 1),
            (1, 130, 520, 160, 160),
        ] {
            let shape = AttentionShape {
                slices,
                queries,
                keys,
                head_dim: d,
                value_dim: dv,
            };
            let q = pseudo_random(slices * queries * d, 1, -2.0, 2.0);
            let k = pseudo_random(slices * keys * d, 2, -2.0, 2.0);
            let v = pseudo_random(slices * keys * dv, 3, -2.0, 2.0);
            let scale = 1.0 / (d as f32).sqrt();
            let (ours, _) = attention(&q, &k, &v, shape, scale);
            let wanted = reference(&q, &k, &v, shape, scale);
            let worst = ours
                .iter()
                .zip(&wanted)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 2e-5, "{shape:?}: worst error {worst}");
        }
    }

    #[test]
    fn the_exponential_is_accurate_to_a_few_ulp() {
        let xs: Vec<f32> = (0..4096).map(|i| -(i as f32) * 0.0212).collect();
        let mut row = xs.clone();
        let sum = Arch::new().dispatch(ExpRow(&mut row));
        for (x, e) in xs.iter().zip(&row) {
            let wanted = f64::from(*x).exp();
            let error = (f64::from(*e) - wanted).abs() / wanted;
            assert!(error < 3e-7, "exp({x}) = {e}, wanted {wanted}");
        }
        let wanted_sum: f64 = xs.iter().map(|x| f64::from(*x).exp()).sum();
        assert!((f64::from(sum) - wanted_sum).abs() / wanted_sum < 1e-6);
    }

    struct ExpRow<'a>(&'a mut [f32]);

    impl WithSimd for ExpRow<'_> {
        type Output = f32;

        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> f32 {
            exp_in_place(simd, self.0, 0.0)
        }
    }
}
