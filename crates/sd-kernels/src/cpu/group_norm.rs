//! GroupNorm, optionally followed by SiLU, in one pass over each group, and its backward pass.
//!
//! burn's `GroupNorm` is a composite (mean, subtract, square, mean, add, sqrt, divide, scale,
//! shift) and its `silu` two more ops: eleven passes over fresh memory at inference, and under
//! autodiff about four input-sized tensors kept per norm for the backward pass. Here each
//! rayon task owns one (batch, group) block — contiguous in NCHW, 160 KiB for SD's first
//! level — and reads it three times while it sits in cache (sum, sum of squared deviations,
//! normalise + affine + SiLU), writing once. The backward pass keeps only the input and two
//! numbers per group, and recomputes the rest.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::math::exp;

/// The sizes of one GroupNorm: `x: [batch, channels, spatial]` (spatial = height × width).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupNormShape {
    /// Batch elements.
    pub batch: usize,
    /// Channels (a multiple of `groups`).
    pub channels: usize,
    /// Groups.
    pub groups: usize,
    /// Elements per channel.
    pub spatial: usize,
}

impl GroupNormShape {
    fn channels_per_group(&self) -> usize {
        self.channels / self.groups
    }

    fn group_len(&self) -> usize {
        self.channels_per_group() * self.spatial
    }
}

/// The affine part and the activation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Affine<'a> {
    /// Per-channel scale `γ`.
    pub gamma: &'a [f32],
    /// Per-channel shift `β`.
    pub beta: &'a [f32],
    /// Whether SiLU follows.
    pub silu: bool,
}

/// `silu?(γ · (x − mean) / √(var + eps) + β)` per group; returns the output and, per
/// (batch, group), `[mean, 1 / √(var + eps)]` for the backward pass.
pub(crate) fn group_norm(
    x: &[f32],
    shape: GroupNormShape,
    affine: Affine<'_>,
    eps: f32,
) -> (Vec<f32>, Vec<[f32; 2]>) {
    debug_assert_eq!(x.len(), shape.batch * shape.channels * shape.spatial);
    let mut out = vec![0f32; x.len()];
    let mut stats = vec![[0f32; 2]; shape.batch * shape.groups];
    let len = shape.group_len();
    if len == 0 {
        return (out, stats);
    }
    out.par_chunks_mut(len)
        .zip(x.par_chunks(len))
        .zip(stats.par_iter_mut())
        .enumerate()
        .for_each(|(index, ((out, x), stats))| {
            let group = index % shape.groups;
            *stats = Arch::new().dispatch(ForwardGroup {
                x,
                out,
                affine,
                first_channel: group * shape.channels_per_group(),
                spatial: shape.spatial,
                eps,
            });
        });
    (out, stats)
}

/// The gradient of [`group_norm`] with respect to `x`, given the output gradient `d_out`
/// and the forward pass's per-group statistics.
pub(crate) fn group_norm_backward(
    x: &[f32],
    d_out: &[f32],
    stats: &[[f32; 2]],
    shape: GroupNormShape,
    affine: Affine<'_>,
) -> Vec<f32> {
    debug_assert_eq!(x.len(), d_out.len());
    let mut d_x = vec![0f32; x.len()];
    let len = shape.group_len();
    if len == 0 {
        return d_x;
    }
    d_x.par_chunks_mut(len)
        .zip(x.par_chunks(len).zip(d_out.par_chunks(len)))
        .zip(stats.par_iter())
        .enumerate()
        .for_each(|(index, ((d_x, (x, d_out)), &stats))| {
            let group = index % shape.groups;
            Arch::new().dispatch(BackwardGroup {
                x,
                d_out,
                d_x,
                stats,
                affine,
                first_channel: group * shape.channels_per_group(),
                spatial: shape.spatial,
            });
        });
    d_x
}

/// One (batch, group) block of [`group_norm`].
struct ForwardGroup<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
    affine: Affine<'a>,
    first_channel: usize,
    spatial: usize,
    eps: f32,
}

impl WithSimd for ForwardGroup<'_> {
    type Output = [f32; 2];

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> [f32; 2] {
        // No closures here: a closure is not compiled for the instruction set that pulp
        // dispatched to, and its SIMD calls would not inline.
        let n = self.x.len() as f64;
        let mean = (sum(simd, self.x) / n) as f32;
        let mean_v = simd.splat_f32s(mean);
        let squares = sum_of_squared_deviations(simd, self.x, mean);
        let rstd = 1.0 / ((squares / n) as f32 + self.eps).sqrt();
        for (c, (out, x)) in self
            .out
            .chunks_exact_mut(self.spatial)
            .zip(self.x.chunks_exact(self.spatial))
            .enumerate()
        {
            let channel = self.first_channel + c;
            // y = (x − mean) · γ·rstd + β: subtracting first keeps a large mean from
            // cancelling against the shift.
            let scale = simd.splat_f32s(self.affine.gamma[channel] * rstd);
            let shift = simd.splat_f32s(self.affine.beta[channel]);
            let silu = self.affine.silu;
            let (out_vectors, out_tail) = S::as_mut_simd_f32s(out);
            let (x_vectors, x_tail) = S::as_simd_f32s(x);
            for (o, &v) in out_vectors.iter_mut().zip(x_vectors) {
                *o = normalized(simd, v, mean_v, scale, shift, silu);
            }
            if !out_tail.is_empty() {
                let v = simd.partial_load_f32s(x_tail);
                let y = normalized(simd, v, mean_v, scale, shift, silu);
                simd.partial_store_f32s(out_tail, y);
            }
        }
        [mean, rstd]
    }
}

/// `silu?((v − mean) · scale + shift)`.
#[inline(always)]
fn normalized<S: Simd>(
    simd: S,
    v: S::f32s,
    mean: S::f32s,
    scale: S::f32s,
    shift: S::f32s,
    silu: bool,
) -> S::f32s {
    let z = simd.mul_add_e_f32s(simd.sub_f32s(v, mean), scale, shift);
    if silu {
        simd.mul_f32s(z, sigmoid(simd, z))
    } else {
        z
    }
}

/// One (batch, group) block of [`group_norm_backward`]:
/// `dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))` with `dx̂ = γ · dz` and `dz` the
/// gradient through SiLU, `dy · σ(z) · (1 + z · (1 − σ(z)))`.
struct BackwardGroup<'a> {
    x: &'a [f32],
    d_out: &'a [f32],
    d_x: &'a mut [f32],
    stats: [f32; 2],
    affine: Affine<'a>,
    first_channel: usize,
    spatial: usize,
}

impl WithSimd for BackwardGroup<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let [mean, rstd] = self.stats;
        let n = self.x.len() as f64;
        let (mean_v, rstd_v) = (simd.splat_f32s(mean), simd.splat_f32s(rstd));
        // Pass 1: dx̂ into d_x, and the group sums of dx̂ and dx̂ · x̂.
        let (mut total, mut total_weighted) = (0f64, 0f64);
        for (c, ((d_x, x), d_out)) in self
            .d_x
            .chunks_exact_mut(self.spatial)
            .zip(self.x.chunks_exact(self.spatial))
            .zip(self.d_out.chunks_exact(self.spatial))
            .enumerate()
        {
            let channel = self.first_channel + c;
            let gamma = self.affine.gamma[channel];
            let channel_v = ChannelConstants {
                mean: mean_v,
                rstd: rstd_v,
                scale: simd.splat_f32s(gamma * rstd),
                shift: simd.splat_f32s(self.affine.beta[channel]),
                gamma: simd.splat_f32s(gamma),
                silu: self.affine.silu,
            };
            let (d_vectors, d_tail) = S::as_mut_simd_f32s(d_x);
            let (x_vectors, x_tail) = S::as_simd_f32s(x);
            let (g_vectors, g_tail) = S::as_simd_f32s(d_out);
            for ((d, x), g) in d_vectors
                .chunks_mut(256)
                .zip(x_vectors.chunks(256))
                .zip(g_vectors.chunks(256))
            {
                let mut sum_d = simd.splat_f32s(0.0);
                let mut sum_dx = simd.splat_f32s(0.0);
                for ((d, &v), &g) in d.iter_mut().zip(x).zip(g) {
                    let (d_hat, x_hat) = normalized_gradient(simd, v, g, &channel_v);
                    *d = d_hat;
                    sum_d = simd.add_f32s(sum_d, d_hat);
                    sum_dx = simd.mul_add_e_f32s(d_hat, x_hat, sum_dx);
                }
                total += f64::from(simd.reduce_sum_f32s(sum_d));
                total_weighted += f64::from(simd.reduce_sum_f32s(sum_dx));
            }
            if !d_tail.is_empty() {
                let v = simd.partial_load_f32s(x_tail);
                let g = simd.partial_load_f32s(g_tail);
                let (d_hat, x_hat) = normalized_gradient(simd, v, g, &channel_v);
                simd.partial_store_f32s(d_tail, d_hat);
                let mut lanes = [0f32; 16];
                let width = size_of::<S::f32s>() / size_of::<f32>();
                simd.partial_store_f32s(&mut lanes[..width], simd.mul_f32s(d_hat, x_hat));
                for (&d, &dx) in d_tail.iter().zip(&lanes[..d_tail.len()]) {
                    total += f64::from(d);
                    total_weighted += f64::from(dx);
                }
            }
        }
        let a = simd.splat_f32s((total / n) as f32);
        let b = simd.splat_f32s((total_weighted / n) as f32);
        // Pass 2: dx from dx̂ in place.
        let (d_vectors, d_tail) = S::as_mut_simd_f32s(self.d_x);
        let (x_vectors, x_tail) = S::as_simd_f32s(self.x);
        for (d, &v) in d_vectors.iter_mut().zip(x_vectors) {
            *d = input_gradient(simd, *d, v, mean_v, rstd_v, a, b);
        }
        if !d_tail.is_empty() {
            let d = simd.partial_load_f32s(d_tail);
            let v = simd.partial_load_f32s(x_tail);
            let dx = input_gradient(simd, d, v, mean_v, rstd_v, a, b);
            simd.partial_store_f32s(d_tail, dx);
        }
    }
}

/// One channel's constants in the backward pass.
struct ChannelConstants<S: Simd> {
    mean: S::f32s,
    rstd: S::f32s,
    scale: S::f32s,
    shift: S::f32s,
    gamma: S::f32s,
    silu: bool,
}

/// `(dx̂, x̂)` for input `v` and output gradient `g`.
#[inline(always)]
fn normalized_gradient<S: Simd>(
    simd: S,
    v: S::f32s,
    g: S::f32s,
    channel: &ChannelConstants<S>,
) -> (S::f32s, S::f32s) {
    let centred = simd.sub_f32s(v, channel.mean);
    let x_hat = simd.mul_f32s(centred, channel.rstd);
    let dz = if channel.silu {
        let z = simd.mul_add_e_f32s(centred, channel.scale, channel.shift);
        let s = sigmoid(simd, z);
        let one = simd.splat_f32s(1.0);
        let slope = simd.mul_f32s(s, simd.mul_add_e_f32s(z, simd.sub_f32s(one, s), one));
        simd.mul_f32s(g, slope)
    } else {
        g
    };
    (simd.mul_f32s(dz, channel.gamma), x_hat)
}

/// `rstd · (dx̂ − a − x̂ · b)`.
#[inline(always)]
fn input_gradient<S: Simd>(
    simd: S,
    d_hat: S::f32s,
    v: S::f32s,
    mean: S::f32s,
    rstd: S::f32s,
    a: S::f32s,
    b: S::f32s,
) -> S::f32s {
    let x_hat = simd.mul_f32s(simd.sub_f32s(v, mean), rstd);
    let centred = simd.sub_f32s(simd.sub_f32s(d_hat, a), simd.mul_f32s(x_hat, b));
    simd.mul_f32s(centred, rstd)
}

/// The logistic function `1 / (1 + e⁻ᶻ)`, from `e^(−|z|)` (which cannot overflow) and the
/// symmetry `σ(−z) = 1 − σ(z)`.
#[inline(always)]
fn sigmoid<S: Simd>(simd: S, z: S::f32s) -> S::f32s {
    let one = simd.splat_f32s(1.0);
    let half = simd.splat_f32s(0.5);
    let e = exp(simd, simd.sub_f32s(simd.splat_f32s(0.0), simd.abs_f32s(z)));
    // σ(|z|) − 1/2 ≥ 0, then the sign of z.
    let positive = simd.sub_f32s(simd.div_f32s(one, simd.add_f32s(one, e)), half);
    let sign = simd.and_u32s(simd.transmute_u32s_f32s(z), simd.splat_u32s(0x8000_0000));
    let signed = simd.or_u32s(simd.transmute_u32s_f32s(positive), sign);
    simd.add_f32s(half, simd.transmute_f32s_u32s(signed))
}

/// `Σ x`, accumulated in SIMD lanes over blocks and then in f64.
#[inline(always)]
fn sum<S: Simd>(simd: S, x: &[f32]) -> f64 {
    let (vectors, tail) = S::as_simd_f32s(x);
    let mut total = 0f64;
    for block in vectors.chunks(256) {
        let mut acc = simd.splat_f32s(0.0);
        for &v in block {
            acc = simd.add_f32s(acc, v);
        }
        total += f64::from(simd.reduce_sum_f32s(acc));
    }
    total + tail.iter().map(|&v| f64::from(v)).sum::<f64>()
}

/// `Σ (x − mean)²`, as [`sum`].
#[inline(always)]
fn sum_of_squared_deviations<S: Simd>(simd: S, x: &[f32], mean: f32) -> f64 {
    let (vectors, tail) = S::as_simd_f32s(x);
    let mean_v = simd.splat_f32s(mean);
    let mut total = 0f64;
    for block in vectors.chunks(256) {
        let mut acc = simd.splat_f32s(0.0);
        for &v in block {
            let d = simd.sub_f32s(v, mean_v);
            acc = simd.mul_add_e_f32s(d, d, acc);
        }
        total += f64::from(simd.reduce_sum_f32s(acc));
    }
    total
        + tail
            .iter()
            .map(|&v| (f64::from(v) - f64::from(mean)).powi(2))
            .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::super::pseudo_random;
    use super::*;

    /// The forward pass in f64: per group, normalise, scale, shift, SiLU.
    fn reference(x: &[f32], shape: GroupNormShape, affine: Affine<'_>, eps: f64) -> Vec<f64> {
        let len = shape.channels / shape.groups * shape.spatial;
        let mut out = vec![0f64; x.len()];
        for (g, (x, out)) in x.chunks(len).zip(out.chunks_mut(len)).enumerate() {
            let n = len as f64;
            let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = x
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
                let c = (g % shape.groups) * (shape.channels / shape.groups) + i / shape.spatial;
                let z = (f64::from(v) - mean) / (var + eps).sqrt() * f64::from(affine.gamma[c])
                    + f64::from(affine.beta[c]);
                *o = if affine.silu {
                    z / (1.0 + (-z).exp())
                } else {
                    z
                };
            }
        }
        out
    }

    fn worst(ours: &[f32], wanted: &[f64]) -> f64 {
        ours.iter()
            .zip(wanted)
            .map(|(a, b)| (f64::from(*a) - b).abs() / (1.0 + b.abs()))
            .fold(0f64, f64::max)
    }

    fn shapes() -> [GroupNormShape; 4] {
        let shape = |batch, channels, groups, spatial| GroupNormShape {
            batch,
            channels,
            groups,
            spatial,
        };
        // SD's 32 groups of 10 channels; ragged spatial sizes; one group; 1×1.
        [
            shape(2, 320, 32, 64),
            shape(1, 12, 3, 37),
            shape(3, 4, 1, 5),
            shape(1, 2, 2, 1),
        ]
    }

    #[test]
    fn matches_the_f64_formula() {
        for shape in shapes() {
            for silu in [false, true] {
                let x = pseudo_random(shape.batch * shape.channels * shape.spatial, 1, -3.0, 5.0);
                let gamma = pseudo_random(shape.channels, 2, -3.0, 5.0);
                let beta = pseudo_random(shape.channels, 3, -3.0, 5.0);
                let affine = Affine {
                    gamma: &gamma,
                    beta: &beta,
                    silu,
                };
                let (ours, _) = group_norm(&x, shape, affine, 1e-5);
                let error = worst(&ours, &reference(&x, shape, affine, 1e-5));
                assert!(error < 2e-6, "{shape:?}, silu {silu}: error {error}");
            }
        }
    }

    /// The backward pass against central differences of the f64 forward pass, through a
    /// random linear functional of the output.
    #[test]
    fn the_gradient_matches_finite_differences() {
        for shape in shapes() {
            for silu in [false, true] {
                let x = pseudo_random(shape.batch * shape.channels * shape.spatial, 4, -3.0, 5.0);
                let gamma = pseudo_random(shape.channels, 5, -3.0, 5.0);
                let beta = pseudo_random(shape.channels, 6, -3.0, 5.0);
                let d_out = pseudo_random(x.len(), 7, -3.0, 5.0);
                let affine = Affine {
                    gamma: &gamma,
                    beta: &beta,
                    silu,
                };
                // A larger eps keeps the one-channel, one-pixel groups differentiable.
                let eps = 1e-2;
                let (_, stats) = group_norm(&x, shape, affine, eps as f32);
                let ours = group_norm_backward(&x, &d_out, &stats, shape, affine);
                let loss = |x: &[f32]| -> f64 {
                    reference(x, shape, affine, eps)
                        .iter()
                        .zip(&d_out)
                        .map(|(y, d)| y * f64::from(*d))
                        .sum()
                };
                let step = 1e-2f32;
                for i in (0..x.len()).step_by((x.len() / 50).max(1)) {
                    let mut plus = x.clone();
                    let mut minus = x.clone();
                    plus[i] += step;
                    minus[i] -= step;
                    let numeric = (loss(&plus) - loss(&minus)) / (2.0 * f64::from(step));
                    let error = (f64::from(ours[i]) - numeric).abs() / (1.0 + numeric.abs());
                    assert!(
                        error < 2e-3,
                        "{shape:?}, silu {silu}, x[{i}]: {} against {numeric}",
                        ours[i]
                    );
                }
            }
        }
    }
}
