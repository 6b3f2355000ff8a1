//! The backward pass of [`super::attention`]: the gradients of `softmax(q kᵀ · scale) v` with
//! respect to `q`, `k` and `v`, flash-attention style. No `[queries, keys]` matrix is ever
//! kept: each block of the softmax is recomputed from `q`, `k` and the forward pass's row
//! log-sum-exp, used, and dropped.
//!
//! With `P = softmax(S)`, `S = scale · q kᵀ`, `o = P v` and the output gradient `dO`:
//! - `dv = Pᵀ dO`;
//! - `dP = dO vᵀ`, and `dS = P ⊙ (dP − Δ)` with `Δ` the row sums of `dO ⊙ o`
//!   (equal to those of `P ⊙ dP`, without needing all of `P`);
//! - `dq = scale · dS k`, `dk = scale · dSᵀ q`.
//!
//! Each rayon task owns one slice (batch × head) — or, when there are fewer slices than
//! threads to keep busy, one group of its key blocks, with its own partial `dq` summed at
//! the end. It walks its keys [`KEY_BLOCK`] at a time, and for each block every query
//! block: the block's `dk` and `dv` rows stay in cache until it is done, and `dq` rows are
//! owned by the task, so no two tasks write the same memory. The block products reuse the
//! forward pass's register-tiled SIMD kernels ([`super::blocks`]).

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::AttentionShape;
use super::blocks::{
    Padding, Rows, Transposed, exp_in_place, mask_padding, padded_rows, scores_block, transposed,
    values_block,
};

/// Query rows per block.
const QUERY_BLOCK: usize = 64;
/// Keys per block: with 64 queries, the block's scores, their gradient, both transposes and
/// the block's `dk`/`dv` rows take about 200 KiB at SD's 40-wide heads, within a core's L2.
const KEY_BLOCK: usize = 128;

/// What the forward pass saw and produced, contiguous and row-major: `q: [slices, queries,
/// head_dim]`, `k: [slices, keys, head_dim]`, `v: [slices, keys, value_dim]`, `out: [slices,
/// queries, value_dim]` and `lse: [slices, queries]`, the log-sum-exp of each query row's
/// scaled scores (see [`super::attention`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SavedForward<'a> {
    /// The queries.
    pub q: &'a [f32],
    /// The keys.
    pub k: &'a [f32],
    /// The values.
    pub v: &'a [f32],
    /// The attention's output.
    pub out: &'a [f32],
    /// Each query row's log-sum-exp.
    pub lse: &'a [f32],
}

/// The gradients that the caller asked for, shaped like their inputs.
#[derive(Debug, Default)]
pub(crate) struct AttentionGradients {
    /// With respect to `q`.
    pub q: Option<Vec<f32>>,
    /// With respect to `k`.
    pub k: Option<Vec<f32>>,
    /// With respect to `v`.
    pub v: Option<Vec<f32>>,
}

/// Which gradients to compute: the queries' needs `dS k`; the keys' and values' need the
/// transposed products (one pass computes both, since both need `P` and `dS`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    /// The gradient with respect to `q`.
    pub q: bool,
    /// The gradients with respect to `k` and `v`.
    pub kv: bool,
}

/// The gradients of the attention with respect to its inputs, given the output gradient
/// `d_out: [slices, queries, value_dim]`.
pub(crate) fn attention_backward(
    saved: SavedForward<'_>,
    d_out: &[f32],
    shape: AttentionShape,
    scale: f32,
    wanted: Wanted,
) -> AttentionGradients {
    let AttentionShape {
        slices,
        queries,
        keys,
        head_dim,
        value_dim,
    } = shape;
    debug_assert_eq!(saved.q.len(), slices * queries * head_dim);
    debug_assert_eq!(saved.k.len(), slices * keys * head_dim);
    debug_assert_eq!(saved.v.len(), slices * keys * value_dim);
    debug_assert_eq!(saved.out.len(), slices * queries * value_dim);
    debug_assert_eq!(saved.lse.len(), slices * queries);
    debug_assert_eq!(d_out.len(), slices * queries * value_dim);
    let mut grads = AttentionGradients {
        q: wanted.q.then(|| vec![0f32; slices * queries * head_dim]),
        k: wanted.kv.then(|| vec![0f32; slices * keys * head_dim]),
        v: wanted.kv.then(|| vec![0f32; slices * keys * value_dim]),
    };
    if slices * queries * keys == 0 || !(wanted.q || wanted.kv) {
        return grads;
    }
    let padding = Padding::new(keys);
    let layouts: Vec<SliceLayout> = (0..slices)
        .into_par_iter()
        .map(|s| SliceLayout::new(saved, d_out, shape, padding, s, wanted))
        .collect();

    // Split each slice's key blocks into groups until there are two tasks per thread.
    let key_blocks = padding.keys.div_ceil(KEY_BLOCK);
    let groups = (2 * rayon::current_num_threads())
        .div_ceil(slices)
        .clamp(1, key_blocks);
    let per_group = key_blocks.div_ceil(groups);
    let tasks: Vec<(usize, usize)> = (0..slices)
        .flat_map(|s| (0..key_blocks).step_by(per_group).map(move |b| (s, b)))
        .collect();
    let results: Vec<TaskGradients> = tasks
        .par_iter()
        .map(|&(s, first_block)| {
            let blocks = first_block..(first_block + per_group).min(key_blocks);
            Arch::new().dispatch(KeyGroup {
                layout: &layouts[s],
                q: Rows::new(
                    &saved.q[s * queries * head_dim..][..queries * head_dim],
                    head_dim,
                ),
                d_out: Rows::new(
                    &d_out[s * queries * value_dim..][..queries * value_dim],
                    value_dim,
                ),
                lse: &saved.lse[s * queries..][..queries],
                keys,
                padding,
                blocks,
                scale,
                wanted,
            })
        })
        .collect();

    for (&(s, first_block), result) in tasks.iter().zip(results) {
        let padded_d = padding.width(head_dim);
        let padded_dv = padding.width(value_dim);
        if let (Some(dq), Some(partial)) = (grads.q.as_mut(), result.q) {
            let dq = &mut dq[s * queries * head_dim..][..queries * head_dim];
            for (row, partial) in dq
                .chunks_exact_mut(head_dim)
                .zip(partial.chunks_exact(padded_d))
            {
                row.iter_mut().zip(partial).for_each(|(g, p)| *g += p);
            }
        }
        let first_key = first_block * KEY_BLOCK;
        let real_keys = keys.saturating_sub(first_key);
        for (grad, rows, width, padded) in [
            (grads.k.as_mut(), result.k, head_dim, padded_d),
            (grads.v.as_mut(), result.v, value_dim, padded_dv),
        ] {
            let (Some(grad), Some(rows)) = (grad, rows) else {
                continue;
            };
            let grad = &mut grad[(s * keys + first_key) * width..(s + 1) * keys * width];
            for (out, row) in grad
                .chunks_exact_mut(width)
                .zip(rows.chunks_exact(padded))
                .take(real_keys)
            {
                out.copy_from_slice(&row[..width]);
            }
        }
    }
    grads
}

/// One slice's operands in the layouts the block kernels read, and `Δ`.
struct SliceLayout {
    /// `kᵀ: [head_dim, padded keys]`, for the scores.
    k_t: Vec<f32>,
    /// `vᵀ: [value_dim, padded keys]`, for `dP = dO vᵀ`.
    v_t: Vec<f32>,
    /// `k: [padded keys, padded head_dim]`, for `dq += dS k` (empty when `dq` is not wanted).
    k_rows: Vec<f32>,
    /// `q: [queries, padded head_dim]`, for `dk += dSᵀ q` (empty when `dk` is not wanted).
    q_rows: Vec<f32>,
    /// `dO: [queries, padded value_dim]`, for `dv += Pᵀ dO` (empty when `dv` is not wanted).
    d_out_rows: Vec<f32>,
    /// `Δ: [queries]`, the row sums of `dO ⊙ o`.
    delta: Vec<f32>,
}

impl SliceLayout {
    fn new(
        saved: SavedForward<'_>,
        d_out: &[f32],
        shape: AttentionShape,
        padding: Padding,
        s: usize,
        wanted: Wanted,
    ) -> Self {
        let AttentionShape {
            queries,
            keys,
            head_dim: d,
            value_dim: dv,
            ..
        } = shape;
        let q = &saved.q[s * queries * d..][..queries * d];
        let k = &saved.k[s * keys * d..][..keys * d];
        let v = &saved.v[s * keys * dv..][..keys * dv];
        let out = &saved.out[s * queries * dv..][..queries * dv];
        let d_out = &d_out[s * queries * dv..][..queries * dv];
        let delta = out
            .chunks_exact(dv)
            .zip(d_out.chunks_exact(dv))
            .map(|(o, g)| o.iter().zip(g).map(|(o, g)| o * g).sum())
            .collect();
        let (padded_d, padded_dv) = (padding.width(d), padding.width(dv));
        Self {
            k_t: transposed(k, d, padding.keys),
            v_t: transposed(v, dv, padding.keys),
            k_rows: if wanted.q {
                padded_rows(k, d, padding.keys, padded_d)
            } else {
                Vec::new()
            },
            q_rows: if wanted.kv {
                padded_rows(q, d, queries, padded_d)
            } else {
                Vec::new()
            },
            d_out_rows: if wanted.kv {
                padded_rows(d_out, dv, queries, padded_dv)
            } else {
                Vec::new()
            },
            delta,
        }
    }
}

/// A task's share of the gradients: its partial `dq: [queries, padded head_dim]`, and the
/// `dk`/`dv` rows of its keys (padded keys and widths included).
struct TaskGradients {
    q: Option<Vec<f32>>,
    k: Option<Vec<f32>>,
    v: Option<Vec<f32>>,
}

/// One slice's key blocks `blocks` against all its queries.
struct KeyGroup<'a> {
    layout: &'a SliceLayout,
    q: Rows<'a>,
    d_out: Rows<'a>,
    lse: &'a [f32],
    keys: usize,
    padding: Padding,
    blocks: std::ops::Range<usize>,
    scale: f32,
    wanted: Wanted,
}

impl WithSimd for KeyGroup<'_> {
    type Output = TaskGradients;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> TaskGradients {
        let layout = self.layout;
        let queries = self.q.count();
        let padded_keys = self.padding.keys;
        let padded_d = self.padding.width(self.q.width);
        let padded_dv = self.padding.width(self.d_out.width);
        let first_key = self.blocks.start * KEY_BLOCK;
        let end_key = (self.blocks.end * KEY_BLOCK).min(padded_keys);
        let mut dq = self.wanted.q.then(|| vec![0f32; queries * padded_d]);
        let mut dk = self
            .wanted
            .kv
            .then(|| vec![0f32; (end_key - first_key) * padded_d]);
        let mut dv = self
            .wanted
            .kv
            .then(|| vec![0f32; (end_key - first_key) * padded_dv]);
        let mut p = vec![0f32; QUERY_BLOCK * KEY_BLOCK];
        let mut ds = vec![0f32; QUERY_BLOCK * KEY_BLOCK];
        let mut transposed_block = vec![0f32; QUERY_BLOCK * KEY_BLOCK];
        for start in (first_key..end_key).step_by(KEY_BLOCK) {
            let width = KEY_BLOCK.min(end_key - start);
            let real = self.keys.saturating_sub(start).min(width);
            let local = start - first_key;
            for first_row in (0..queries).step_by(QUERY_BLOCK) {
                let rows = QUERY_BLOCK.min(queries - first_row);
                let q = Rows::new(
                    &self.q.data[first_row * self.q.width..][..rows * self.q.width],
                    self.q.width,
                );
                let d_out = Rows::new(
                    &self.d_out.data[first_row * self.d_out.width..][..rows * self.d_out.width],
                    self.d_out.width,
                );
                // P, recomputed: exp(S − lse) row by row.
                let p = &mut p[..rows * width];
                let k_t = Transposed::new(&layout.k_t, padded_keys);
                scores_block(simd, q, k_t, start, width, self.scale, p);
                mask_padding(p, width, real);
                for (row, &lse) in p
                    .chunks_exact_mut(width)
                    .zip(&self.lse[first_row..first_row + rows])
                {
                    exp_in_place(simd, row, lse);
                }
                // dS = scale · P ⊙ (dO vᵀ − Δ).
                let ds = &mut ds[..rows * width];
                let v_t = Transposed::new(&layout.v_t, padded_keys);
                scores_block(simd, d_out, v_t, start, width, 1.0, ds);
                let delta = &layout.delta[first_row..first_row + rows];
                score_gradient(simd, p, ds, width, delta, self.scale);

                if let Some(dq) = dq.as_mut() {
                    let k = &layout.k_rows[start * padded_d..(start + width) * padded_d];
                    let dq = &mut dq[first_row * padded_d..(first_row + rows) * padded_d];
                    values_block(simd, ds, width, k, dq);
                }
                if let (Some(dk), Some(dv)) = (dk.as_mut(), dv.as_mut()) {
                    let transposed_block = &mut transposed_block[..rows * width];
                    let d_out =
                        &layout.d_out_rows[first_row * padded_dv..(first_row + rows) * padded_dv];
                    transpose_block(p, width, transposed_block);
                    let dv = &mut dv[local * padded_dv..(local + width) * padded_dv];
                    values_block(simd, transposed_block, rows, d_out, dv);
                    let q = &layout.q_rows[first_row * padded_d..(first_row + rows) * padded_d];
                    transpose_block(ds, width, transposed_block);
                    let dk = &mut dk[local * padded_d..(local + width) * padded_d];
                    values_block(simd, transposed_block, rows, q, dk);
                }
            }
        }
        TaskGradients {
            q: dq,
            k: dk,
            v: dv,
        }
    }
}

/// `ds ← scale · p ⊙ (ds − Δ)`, row by row (`ds` holds `dP` on entry).
#[inline(always)]
fn score_gradient<S: Simd>(
    simd: S,
    p: &[f32],
    ds: &mut [f32],
    width: usize,
    delta: &[f32],
    scale: f32,
) {
    let scale_v = simd.splat_f32s(scale);
    for ((p, ds), &delta) in p
        .chunks_exact(width)
        .zip(ds.chunks_exact_mut(width))
        .zip(delta)
    {
        let delta = simd.splat_f32s(delta);
        let (p, _) = S::as_simd_f32s(p);
        let (ds, _) = S::as_mut_simd_f32s(ds);
        for (ds, &p) in ds.iter_mut().zip(p) {
            *ds = simd.mul_f32s(simd.mul_f32s(p, simd.sub_f32s(*ds, delta)), scale_v);
        }
    }
}

/// `block: [rows, width]` → `out: [width, rows]`.
#[inline(always)]
fn transpose_block(block: &[f32], width: usize, out: &mut [f32]) {
    let rows = block.len() / width;
    for (r, row) in block.chunks_exact(width).enumerate() {
        for (j, &value) in row.iter().enumerate() {
            out[j * rows + r] = value;
        }
    }
}
