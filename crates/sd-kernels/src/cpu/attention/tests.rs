//! The attention kernels against the textbook formulas in f64: the forward pass, its
//! backward pass, and the vectorised exponential they share.

use pulp::{Arch, Simd, WithSimd};

use super::blocks::exp_in_place;
use super::{AttentionShape, SavedForward, Wanted, attention, attention_backward};
use crate::cpu::pseudo_random;

/// The softmax row of query `i` of slice `s`, `softmax(scale · q[i] · kᵀ)`, in f64.
fn probabilities(
    q: &[f32],
    k: &[f32],
    shape: AttentionShape,
    scale: f32,
    s: usize,
    i: usize,
) -> Vec<f64> {
    let AttentionShape {
        queries,
        keys,
        head_dim: d,
        ..
    } = shape;
    let q = &q[(s * queries + i) * d..][..d];
    let scores: Vec<f64> = (0..keys)
        .map(|j| {
            let k = &k[(s * keys + j) * d..][..d];
            q.iter()
                .zip(k)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                * f64::from(scale)
        })
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// The attention's output by the textbook formula, in f64.
fn reference(q: &[f32], k: &[f32], v: &[f32], shape: AttentionShape, scale: f32) -> Vec<f32> {
    let AttentionShape {
        slices,
        queries,
        keys,
        value_dim: dv,
        ..
    } = shape;
    let mut out = vec![0f32; slices * queries * dv];
    for s in 0..slices {
        for i in 0..queries {
            let p = probabilities(q, k, shape, scale, s, i);
            for c in 0..dv {
                let value: f64 = (0..keys)
                    .map(|j| p[j] * f64::from(v[(s * keys + j) * dv + c]))
                    .sum();
                out[(s * queries + i) * dv + c] = value as f32;
            }
        }
    }
    out
}

/// The gradients by the textbook formulas, in f64.
fn reference_gradients(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_out: &[f32],
    shape: AttentionShape,
    scale: f32,
) -> [Vec<f64>; 3] {
    let AttentionShape {
        slices,
        queries,
        keys,
        head_dim: d,
        value_dim: dv,
    } = shape;
    let mut dq = vec![0f64; slices * queries * d];
    let mut dk = vec![0f64; slices * keys * d];
    let mut dvs = vec![0f64; slices * keys * dv];
    for s in 0..slices {
        let q_at = |i: usize, c: usize| f64::from(q[(s * queries + i) * d + c]);
        let k_at = |j: usize, c: usize| f64::from(k[(s * keys + j) * d + c]);
        let v_at = |j: usize, c: usize| f64::from(v[(s * keys + j) * dv + c]);
        let g = |i: usize, c: usize| f64::from(d_out[(s * queries + i) * dv + c]);
        for i in 0..queries {
            let p = probabilities(q, k, shape, scale, s, i);
            let dp: Vec<f64> = (0..keys)
                .map(|j| (0..dv).map(|c| g(i, c) * v_at(j, c)).sum())
                .collect();
            let row_dot: f64 = p.iter().zip(&dp).map(|(p, dp)| p * dp).sum();
            for j in 0..keys {
                let ds = p[j] * (dp[j] - row_dot) * f64::from(scale);
                for c in 0..d {
                    dq[(s * queries + i) * d + c] += ds * k_at(j, c);
                    dk[(s * keys + j) * d + c] += ds * q_at(i, c);
                }
                for c in 0..dv {
                    dvs[(s * keys + j) * dv + c] += p[j] * g(i, c);
                }
            }
        }
    }
    [dq, dk, dvs]
}

/// The largest error relative to the largest reference magnitude.
fn relative_error(ours: &[f32], wanted: &[f64]) -> f64 {
    let scale = wanted
        .iter()
        .map(|x| x.abs())
        .fold(0f64, f64::max)
        .max(1e-30);
    ours.iter()
        .zip(wanted)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0f64, f64::max)
        / scale
}

/// The shape of `(slices, queries, keys, head_dim, value_dim)` and its pseudo-random
/// `q`, `k` and `v` in `[-2, 2)`.
fn problem(sizes: (usize, usize, usize, usize, usize)) -> (AttentionShape, [Vec<f32>; 3]) {
    let (slices, queries, keys, d, dv) = sizes;
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
    (shape, [q, k, v])
}

#[test]
fn matches_the_textbook_formula_on_ragged_shapes() {
    // Queries and keys that are not multiples of the blocks or vectors; SD's head widths.
    for sizes in [
        (2, 70, 300, 40, 40),
        (1, 5, 77, 80, 80),
        (3, 64, 257, 8, 24),
        (1, 1, 1, 1, 1),
        (1, 130, 520, 160, 160),
    ] {
        let (shape, [q, k, v]) = problem(sizes);
        let scale = 1.0 / (shape.head_dim as f32).sqrt();
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
fn matches_the_textbook_gradients_on_ragged_shapes() {
    // Sizes off every block and vector multiple, several key groups per slice (one slice
    // of 600 keys), cross-attention's 77 keys, SD's head widths.
    for sizes in [
        (2, 70, 300, 40, 40),
        (1, 130, 600, 40, 40),
        (1, 5, 77, 80, 80),
        (3, 64, 257, 8, 24),
        (1, 1, 1, 1, 1),
    ] {
        let (shape, [q, k, v]) = problem(sizes);
        let d_out = pseudo_random(shape.slices * shape.queries * shape.value_dim, 4, -2.0, 2.0);
        let scale = 1.0 / (shape.head_dim as f32).sqrt();
        let (out, lse) = attention(&q, &k, &v, shape, scale);
        let saved = SavedForward {
            q: &q,
            k: &k,
            v: &v,
            out: &out,
            lse: &lse,
        };
        let all = Wanted { q: true, kv: true };
        let grads = attention_backward(saved, &d_out, shape, scale, all);
        let [dq, dk, dv_wanted] = reference_gradients(&q, &k, &v, &d_out, shape, scale);
        for (name, ours, wanted) in [
            ("q", grads.q.as_deref(), &dq),
            ("k", grads.k.as_deref(), &dk),
            ("v", grads.v.as_deref(), &dv_wanted),
        ] {
            let ours = ours.expect("every gradient was asked for");
            let error = relative_error(ours, wanted);
            assert!(error < 1e-5, "{shape:?} d{name}: relative error {error}");
        }
        // Asking for fewer gradients gives the same ones.
        let only_q = Wanted { q: true, kv: false };
        let grads_q = attention_backward(saved, &d_out, shape, scale, only_q);
        assert_eq!(grads_q.q, grads.q);
        assert!(grads_q.k.is_none() && grads_q.v.is_none());
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

/// [`exp_in_place`] on one row, at whatever SIMD this CPU has.
struct ExpRow<'a>(&'a mut [f32]);

impl WithSimd for ExpRow<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        exp_in_place(simd, self.0, 0.0)
    }
}
