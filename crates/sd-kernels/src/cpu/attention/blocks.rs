//! The block products of the attention's forward and backward passes: register-tiled SIMD
//! kernels for `scores = scale · q kᵀ` ([`scores_block`]) and `acc += p v`
//! ([`values_block`]) over one block of keys, the vectorised softmax exponential
//! ([`exp_in_place`]), and the padded layouts they read.

use pulp::{Arch, Simd, WithSimd};

use crate::cpu::math::exp;

/// How a slice's keys and row widths are padded for the SIMD kernels: keys to whole pairs
/// of vectors (every key block is then a multiple of the score tile, and the passes' key
/// blocks, 256 and 128, multiples of any pair), row widths to whole vectors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Padding {
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
pub(crate) struct Rows<'a> {
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
pub(crate) struct Transposed<'a> {
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
pub(crate) fn transposed(rows: &[f32], width: usize, padded_n: usize) -> Vec<f32> {
    let mut out = vec![0f32; width * padded_n];
    for (r, row) in rows.chunks_exact(width).enumerate() {
        for (c, &value) in row.iter().enumerate() {
            out[c * padded_n + r] = value;
        }
    }
    out
}

/// `rows: [n, width]` → `[padded_n, padded_width]`, zero padded.
pub(crate) fn padded_rows(
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

/// Sets the scores of padding keys (zero columns of kᵀ, from `real` on in a block `width`
/// keys wide) to −∞, so that they take no part in the softmax.
#[inline(always)]
pub(crate) fn mask_padding(scores: &mut [f32], width: usize, real: usize) {
    if real < width {
        for row in scores.chunks_exact_mut(width) {
            row[real..].fill(f32::NEG_INFINITY);
        }
    }
}

/// `scores[r, j] = scale · q[r] · kᵀ[:, start + j]` for a block `width` keys wide (a
/// multiple of two vectors).
#[inline(always)]
pub(crate) fn scores_block<S: Simd>(
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
pub(crate) fn values_block<S: Simd>(simd: S, p: &[f32], width: usize, v: &[f32], acc: &mut [f32]) {
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

/// Replaces each `x` of `row` by `exp(x − shift)` and returns their sum.
#[inline(always)]
pub(crate) fn exp_in_place<S: Simd>(simd: S, row: &mut [f32], shift: f32) -> f32 {
    let shift = simd.splat_f32s(shift);
    let mut sum = simd.splat_f32s(0.0);
    let (vectors, _) = S::as_mut_simd_f32s(row);
    for v in vectors {
        *v = exp(simd, simd.sub_f32s(*v, shift));
        sum = simd.add_f32s(sum, *v);
    }
    simd.reduce_sum_f32s(sum)
}
