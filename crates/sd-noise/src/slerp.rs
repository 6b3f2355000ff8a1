//! A1111's `slerp` for variation seeds (subseeds), on one image's noise.
//!
//! Mirrors `modules/rng.py::slerp` as it is called there, on a `[C, H, W]` tensor:
//! `torch.norm(x, dim=1)` and `.sum(1)` reduce over the *height* axis, so each
//! `(channel, column)` pair is interpolated on its own great circle. Quirks kept on
//! purpose: when the mean cosine exceeds 0.9995 A1111 falls back to
//! `low * val + high * (1 - val)` (weights swapped relative to the slerp branch).
//!
//! Precision: float32 like torch. The norms accumulate in order along the height, which
//! matches `torch.norm` bit for bit; the dot product's `.sum(1)` does too for short
//! columns, but torch's `sum` kernel (`aten/src/ATen/native/cpu/SumKernel.cpp`, a
//! cascade of accumulators whose layout depends on the shape) adds in another order
//! for most latent shapes, and `acos`/`sin` here are Rust's, not torch's SLEEF. Results
//! agree with A1111 to 2.4e-7 (two float ulps near 1) on the fixtures, not bit for bit.

/// Above this mean cosine A1111 interpolates linearly.
const LINEAR_THRESHOLD: f64 = 0.9995;

/// Spherical interpolation of `low` towards `high` by `val`, A1111-style, on tensors of
/// shape `[c, h, w]` (flat, row-major). Returns a new tensor of the same shape.
///
/// # Shapes
/// - `low`, `high`: `[c, h, w]` flattened (`c * h * w` values)
/// - returns: `[c, h, w]` flattened
///
/// # Panics
/// If `low` or `high` does not hold `c * h * w` values (an internal contract: callers
/// in this module always pass matching buffers).
///
/// ```
/// use sd_noise::slerp;
/// let low = vec![1.0, 0.0, 0.0, 1.0];  // [1, 2, 2]: columns (1, 0) and (0, 1)
/// let high = vec![0.0, 1.0, 1.0, 0.0]; // columns (0, 1) and (1, 0)
/// let mid = slerp(0.5, &low, &high, [1, 2, 2]);
/// assert!((mid[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
/// ```
pub fn slerp(val: f64, low: &[f32], high: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = shape;
    let n = c * h * w;
    assert!(
        low.len() == n && high.len() == n,
        "slerp buffers must hold c*h*w values"
    );
    let val32 = val as f32;
    // The Python float `1.0 - val` is computed in double and rounded when it meets the
    // float32 tensor.
    let one_minus_val32 = (1.0 - val) as f32;

    let column_norms = |x: &[f32]| -> Vec<f32> {
        let mut acc = vec![0f32; c * w];
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..w {
                    let v = x[(ci * h + hi) * w + wi];
                    acc[ci * w + wi] += v * v;
                }
            }
        }
        acc.into_iter().map(f32::sqrt).collect()
    };
    let low_norm = column_norms(low);
    let high_norm = column_norms(high);

    let mut dot = vec![0f32; c * w];
    for ci in 0..c {
        for hi in 0..h {
            for wi in 0..w {
                let i = (ci * h + hi) * w + wi;
                let k = ci * w + wi;
                dot[k] += (low[i] / low_norm[k]) * (high[i] / high_norm[k]);
            }
        }
    }
    let mean = dot.iter().map(|&d| f64::from(d)).sum::<f64>() / dot.len().max(1) as f64;
    if mean > LINEAR_THRESHOLD {
        return low
            .iter()
            .zip(high)
            .map(|(&l, &hv)| l * val32 + hv * one_minus_val32)
            .collect();
    }

    let (low_w, high_w): (Vec<f32>, Vec<f32>) = dot
        .iter()
        .map(|&d| {
            let omega = d.acos();
            let so = omega.sin();
            (
                (one_minus_val32 * omega).sin() / so,
                (val32 * omega).sin() / so,
            )
        })
        .unzip();
    let mut out = vec![0f32; n];
    for ci in 0..c {
        for hi in 0..h {
            for wi in 0..w {
                let i = (ci * h + hi) * w + wi;
                let k = ci * w + wi;
                out[i] = low_w[k] * low[i] + high_w[k] * high[i];
            }
        }
    }
    out
}
