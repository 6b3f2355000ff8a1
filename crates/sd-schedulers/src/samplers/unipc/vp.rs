//! The variance-preserving view of the discrete schedule UniPC works in (`NoiseScheduleVP`
//! with `schedule='discrete'` in A1111's `uni_pc.py`), and UniPC's time grid
//! (`UniPC.get_time_steps`).
//!
//! Continuous time t ∈ (0, 1] stands for the training timestep `t·N − 1`; log α_t (half the
//! log ᾱ) is interpolated linearly in t between the table entries. Everything is float32,
//! operation for operation as the reference computes it on float32 tensors.

use super::SkipType;
use crate::noise_schedule::NoiseSchedule;
use crate::torch_math::linspace_f32;

/// `NoiseScheduleVP('discrete', alphas_cumprod=...)`.
pub(crate) struct VpNoiseSchedule {
    /// `t_array`: (i + 1) / N for every training timestep i, as `torch.linspace(0, 1, N+1)[1:]`.
    t_array: Vec<f32>,
    /// `log_alpha_array`: ½ ln ᾱ_i.
    log_alpha: Vec<f32>,
    /// `total_N`.
    total_n: usize,
}

impl VpNoiseSchedule {
    pub(crate) fn new(ns: &NoiseSchedule) -> Self {
        let ac = ns.alphas_cumprod();
        let total_n = ac.len();
        let t_array = linspace_f32(0.0, 1.0, total_n + 1)[1..].to_vec();
        let log_alpha = ac.iter().map(|a| 0.5 * a.ln()).collect();
        Self {
            t_array,
            log_alpha,
            total_n,
        }
    }

    /// `1 / total_N`: where sampling ends (`t_0`), and the offset of the model's timestep.
    pub(crate) fn t_end(&self) -> f64 {
        1.0 / self.total_n as f64
    }

    /// `marginal_log_mean_coeff`: log α_t.
    pub(crate) fn log_alpha(&self, t: f32) -> f32 {
        interpolate(t, &self.t_array, &self.log_alpha)
    }

    /// `marginal_alpha`: α_t = √ᾱ.
    pub(crate) fn alpha(&self, t: f32) -> f32 {
        self.log_alpha(t).exp()
    }

    /// `marginal_std`: σ_t = √(1 − α_t²).
    pub(crate) fn std(&self, t: f32) -> f32 {
        (1.0 - (2.0 * self.log_alpha(t)).exp()).sqrt()
    }

    /// `marginal_lambda`: the half log-SNR λ_t = log α_t − log σ_t.
    pub(crate) fn lambda(&self, t: f32) -> f32 {
        let lm = self.log_alpha(t);
        lm - 0.5 * (1.0 - (2.0 * lm).exp()).ln()
    }

    /// `inverse_lambda`: the t of a half log-SNR, interpolated in log α.
    fn inverse_lambda(&self, lambda: f32) -> f32 {
        let log_alpha = -0.5 * logaddexp(0.0, -2.0 * lambda);
        // The table reversed so that log α increases, as `torch.flip` does.
        let xp: Vec<f32> = self.log_alpha.iter().rev().copied().collect();
        let yp: Vec<f32> = self.t_array.iter().rev().copied().collect();
        interpolate(log_alpha, &xp, &yp)
    }

    /// The model's timestep of a continuous time (`UniPCCFG.get_model_input_time`):
    /// `(t − 1/N) · 1000`, so t = 1 is timestep 999 and t = 1/N is 0.
    pub(crate) fn model_input_time(&self, t: f32) -> f32 {
        (t - self.t_end() as f32) * 1000.0
    }

    /// `get_time_steps(skip_type, t_T, t_0 = 1/N, N = steps)`: `steps + 1` times from `t_start`
    /// down to 1/N.
    pub(crate) fn time_steps(&self, skip: SkipType, t_start: f32, steps: usize) -> Vec<f32> {
        let t_0 = self.t_end();
        match skip {
            SkipType::TimeUniform => linspace_f32(t_start, t_0 as f32, steps + 1),
            SkipType::TimeQuadratic => {
                // `t_T ** 0.5` is float32 `sqrt` of a tensor for img2img and Python's for the
                // float 1.0 of txt2img (exact either way); `t_0 ** 0.5` is a Python float.
                linspace_f32(t_start.sqrt(), t_0.sqrt() as f32, steps + 1)
                    .into_iter()
                    .map(|v| v * v)
                    .collect()
            }
            SkipType::LogSnr => {
                let lambda_t = self.lambda(t_start);
                let lambda_0 = self.lambda(t_0 as f32);
                linspace_f32(lambda_t, lambda_0, steps + 1)
                    .into_iter()
                    .map(|l| self.inverse_lambda(l))
                    .collect()
            }
        }
    }
}

/// `torch.logaddexp(a, b)`: max + log1p(exp(−|a − b|)).
fn logaddexp(a: f32, b: f32) -> f32 {
    a.max(b) + (-(a - b).abs()).exp().ln_1p()
}

/// `interpolate_fn`: the piecewise-linear function through (xp, yp) (xp increasing),
/// extended beyond both ends by its outermost segments.
///
/// uni_pc.py locates `x` by sorting it among the keypoints with an unstable sort, so when `x`
/// equals a keypoint it may take either neighbouring segment; the two results differ by at
/// most a rounding of the last bit. We take the segment that starts at the keypoint.
fn interpolate(x: f32, xp: &[f32], yp: &[f32]) -> f32 {
    let k = xp.len();
    let below_or_equal = xp.partition_point(|&v| v <= x);
    let s = below_or_equal.saturating_sub(1).min(k - 2);
    let (xs, xe, ys, ye) = (xp[s], xp[s + 1], yp[s], yp[s + 1]);
    ys + (x - xs) * (ye - ys) / (xe - xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_extends_the_end_segments() {
        let xp = [0.0, 1.0, 3.0];
        let yp = [0.0, 2.0, 3.0];
        assert_eq!(interpolate(0.5, &xp, &yp), 1.0);
        assert_eq!(interpolate(2.0, &xp, &yp), 2.5);
        assert_eq!(interpolate(-1.0, &xp, &yp), -2.0);
        assert_eq!(interpolate(5.0, &xp, &yp), 4.0);
        assert_eq!(interpolate(1.0, &xp, &yp), 2.0);
    }

    #[test]
    fn lambda_inverts() {
        let vp = VpNoiseSchedule::new(&NoiseSchedule::sd());
        for t in [0.001f32, 0.25, 0.5, 0.9, 1.0] {
            let back = vp.inverse_lambda(vp.lambda(t));
            assert!((back - t).abs() < 1e-4, "{t} -> {back}");
        }
    }
}
