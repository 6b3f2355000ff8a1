//! The GEGLU gate in one pass: `value · gelu(gate)` from the projection's `[value | gate]`
//! rows, with the exact (erf) GELU diffusers uses.
//!
//! burn's path (two `narrow`s, `gelu`, a product) evaluates `erf` one element at a time and
//! makes a second pass over fresh memory for the product. This reads each row once and
//! writes the result once: on a CFG step's first-level feed-forward (`[2, 4096, 2560]` in)
//! the whole GEGLU (projection included) went from 205–290 ms to 175–200 ms in alternating
//! runs, about 1.5 % of the step.
//!
//! Under autodiff burn's path keeps every intermediate of its `erf` for the backward pass
//! (several `[tokens, inner]` tensors per layer); [`geglu_backward`] needs only the
//! projection, and recomputes the gate's GELU and its derivative from it.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::math::{erf, exp};

/// Rows per rayon task (each row is `2 × inner` values in and `inner` out).
const ROWS_PER_TASK: usize = 16;

/// `value · gelu(gate)` for `projected: [rows, 2 · inner]` whose rows are `[value | gate]`;
/// returns `[rows, inner]`.
pub(crate) fn geglu(projected: &[f32], inner: usize) -> Vec<f32> {
    let mut out = vec![0f32; projected.len() / 2];
    if inner == 0 {
        return out;
    }
    out.par_chunks_mut(ROWS_PER_TASK * inner)
        .zip(projected.par_chunks(ROWS_PER_TASK * 2 * inner))
        .for_each(|(out, projected)| {
            Arch::new().dispatch(Rows {
                projected,
                out,
                inner,
            });
        });
    out
}

/// The gradient of [`geglu`] with respect to `projected: [rows, 2 · inner]`, given the
/// output gradient `d_out: [rows, inner]`: `[d_out · gelu(gate) | d_out · value · gelu′(gate)]`
/// row by row, with `gelu′(x) = Φ(x) + x φ(x)` (Φ and φ the standard normal CDF and density).
pub(crate) fn geglu_backward(projected: &[f32], d_out: &[f32], inner: usize) -> Vec<f32> {
    debug_assert_eq!(projected.len(), 2 * d_out.len());
    let mut d_projected = vec![0f32; projected.len()];
    if inner == 0 {
        return d_projected;
    }
    d_projected
        .par_chunks_mut(ROWS_PER_TASK * 2 * inner)
        .zip(projected.par_chunks(ROWS_PER_TASK * 2 * inner))
        .zip(d_out.par_chunks(ROWS_PER_TASK * inner))
        .for_each(|((d_projected, projected), d_out)| {
            Arch::new().dispatch(BackwardRows {
                projected,
                d_out,
                d_projected,
                inner,
            });
        });
    d_projected
}

/// A few rows of [`geglu_backward`].
struct BackwardRows<'a> {
    projected: &'a [f32],
    d_out: &'a [f32],
    d_projected: &'a mut [f32],
    inner: usize,
}

impl WithSimd for BackwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let inner = self.inner;
        for ((d_row, row), d_out) in self
            .d_projected
            .chunks_exact_mut(2 * inner)
            .zip(self.projected.chunks_exact(2 * inner))
            .zip(self.d_out.chunks_exact(inner))
        {
            let (value, gate) = row.split_at(inner);
            let (d_value, d_gate) = d_row.split_at_mut(inner);
            let lanes = size_of::<S::f32s>() / size_of::<f32>();
            for start in (0..inner).step_by(lanes) {
                let end = (start + lanes).min(inner);
                let v = simd.partial_load_f32s(&value[start..end]);
                let g = simd.partial_load_f32s(&gate[start..end]);
                let d = simd.partial_load_f32s(&d_out[start..end]);
                let (gelu, slope) = gelu_and_slope(simd, g);
                simd.partial_store_f32s(&mut d_value[start..end], simd.mul_f32s(d, gelu));
                let d_g = simd.mul_f32s(simd.mul_f32s(d, v), slope);
                simd.partial_store_f32s(&mut d_gate[start..end], d_g);
            }
        }
    }
}

/// `gelu(x)` and its derivative `Φ(x) + x φ(x)`.
#[inline(always)]
fn gelu_and_slope<S: Simd>(simd: S, x: S::f32s) -> (S::f32s, S::f32s) {
    // 1 / √(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let erf = erf(
        simd,
        simd.mul_f32s(x, simd.splat_f32s(std::f32::consts::FRAC_1_SQRT_2)),
    );
    let cdf = simd.mul_f32s(
        simd.splat_f32s(0.5),
        simd.add_f32s(simd.splat_f32s(1.0), erf),
    );
    let half_square = simd.mul_f32s(simd.splat_f32s(-0.5), simd.mul_f32s(x, x));
    let density = simd.mul_f32s(simd.splat_f32s(INV_SQRT_2PI), exp(simd, half_square));
    (simd.mul_f32s(x, cdf), simd.mul_add_e_f32s(x, density, cdf))
}

/// A few rows of [`geglu`].
struct Rows<'a> {
    projected: &'a [f32],
    out: &'a mut [f32],
    inner: usize,
}

impl WithSimd for Rows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        for (out, row) in self
            .out
            .chunks_exact_mut(self.inner)
            .zip(self.projected.chunks_exact(2 * self.inner))
        {
            let (value, gate) = row.split_at(self.inner);
            let (out_vectors, out_tail) = S::as_mut_simd_f32s(out);
            let (value_vectors, value_tail) = S::as_simd_f32s(value);
            let (gate_vectors, gate_tail) = S::as_simd_f32s(gate);
            for ((o, &v), &g) in out_vectors.iter_mut().zip(value_vectors).zip(gate_vectors) {
                *o = simd.mul_f32s(v, gelu(simd, g));
            }
            if !out_tail.is_empty() {
                let v = simd.partial_load_f32s(value_tail);
                let g = simd.partial_load_f32s(gate_tail);
                simd.partial_store_f32s(out_tail, simd.mul_f32s(v, gelu(simd, g)));
            }
        }
    }
}

/// The exact GELU, `x · (1 + erf(x / √2)) / 2` (a function, not a closure, so that it is
/// inlined into the dispatched code and compiled for its instruction set).
#[inline(always)]
fn gelu<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let erf = erf(
        simd,
        simd.mul_f32s(x, simd.splat_f32s(std::f32::consts::FRAC_1_SQRT_2)),
    );
    let half_x = simd.mul_f32s(simd.splat_f32s(0.5), x);
    simd.mul_f32s(half_x, simd.add_f32s(simd.splat_f32s(1.0), erf))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Maclaurin series in f64 (below |x| = 6, where cancellation still leaves
    /// about 8 digits), ±1 beyond (erfc(6) ≈ 2 × 10⁻¹⁷).
    fn erf64(x: f64) -> f64 {
        if x.abs() < 6.0 {
            let mut term = x;
            let mut sum = x;
            for n in 1..400 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            x.signum()
        }
    }

    #[test]
    fn matches_exact_gelu_on_ragged_rows() {
        // Widths that are and are not whole vectors; gates from −6 to 6, zero included.
        for inner in [1, 7, 40, 1280] {
            let rows = 37;
            let projected: Vec<f32> = (0..rows * 2 * inner)
                .map(|i| ((i * 7919) % 1201) as f32 / 100.0 - 6.0)
                .collect();
            let ours = geglu(&projected, inner);
            for (r, row) in projected.chunks_exact(2 * inner).enumerate() {
                for c in 0..inner {
                    let (v, g) = (f64::from(row[c]), f64::from(row[inner + c]));
                    let wanted = v * 0.5 * g * (1.0 + erf64(g / std::f64::consts::SQRT_2));
                    let got = f64::from(ours[r * inner + c]);
                    // erf is good to 1.5e-7 absolute, which `v · g / 2` scales.
                    let bound = 1e-6 * (1.0 + wanted.abs()) + 1e-7 * (v * g).abs();
                    assert!(
                        (got - wanted).abs() <= bound,
                        "inner {inner}, row {r}, col {c}: {got} against {wanted}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_gradient_matches_exact_gelu_derivatives() {
        for inner in [1, 7, 40, 1280] {
            let rows = 37;
            let projected: Vec<f32> = (0..rows * 2 * inner)
                .map(|i| ((i * 7919) % 1201) as f32 / 100.0 - 6.0)
                .collect();
            let d_out: Vec<f32> = (0..rows * inner)
                .map(|i| ((i * 104_729) % 997) as f32 / 250.0 - 2.0)
                .collect();
            let ours = geglu_backward(&projected, &d_out, inner);
            for (r, row) in projected.chunks_exact(2 * inner).enumerate() {
                for c in 0..inner {
                    let (v, g) = (f64::from(row[c]), f64::from(row[inner + c]));
                    let d = f64::from(d_out[r * inner + c]);
                    let cdf = 0.5 * (1.0 + erf64(g / std::f64::consts::SQRT_2));
                    let density = (-0.5 * g * g).exp() / (2.0 * std::f64::consts::PI).sqrt();
                    let wanted_value = d * g * cdf;
                    let wanted_gate = d * v * (cdf + g * density);
                    let got_value = f64::from(ours[r * 2 * inner + c]);
                    let got_gate = f64::from(ours[r * 2 * inner + inner + c]);
                    // erf to 1.5e-7 and exp to a few ulp, scaled by the factors around them.
                    let bound =
                        |wanted: f64, scale: f64| 1e-6 * (1.0 + wanted.abs()) + 2e-7 * scale;
                    assert!(
                        (got_value - wanted_value).abs() <= bound(wanted_value, (d * g).abs()),
                        "inner {inner}, row {r}, col {c}: d value {got_value} against {wanted_value}"
                    );
                    assert!(
                        (got_gate - wanted_gate).abs()
                            <= bound(wanted_gate, (d * v * (1.0 + g.abs())).abs()),
                        "inner {inner}, row {r}, col {c}: d gate {got_gate} against {wanted_gate}"
                    );
                }
            }
        }
    }
}
