//! AdamW on the embedding vectors, computed exactly as `torch.optim.AdamW` (single-tensor
//! path, `amsgrad=False`), with A1111's settings: β = (0.9, 0.999), ε = 1e-8, weight decay 0.
//!
//! The vectors are a few thousand numbers, so the update runs on the CPU in f32 (PyTorch's
//! order of operations, so the result agrees to the last bit or two), and the state is plain
//! data that a checkpoint can hold.

use serde::{Deserialize, Serialize};

/// AdamW's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// β₁, the decay of the first moment (a Python float in PyTorch, hence f64 here: the
    /// coefficients `1 − β` must round as PyTorch rounds them).
    pub beta1: f64,
    /// β₂, the decay of the second moment.
    pub beta2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (A1111 uses 0).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// A1111's `torch.optim.AdamW([embedding.vec], lr=..., weight_decay=0.0)`.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The optimizer's state for one tensor: `step`, `exp_avg`, `exp_avg_sq`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AdamWState {
    /// Updates taken.
    pub step: u64,
    /// First moment (`exp_avg`).
    pub exp_avg: Vec<f32>,
    /// Second moment (`exp_avg_sq`).
    pub exp_avg_sq: Vec<f32>,
}

/// AdamW over one flat parameter.
///
/// ```
/// use sd_textual_inversion::train::{AdamW, AdamWConfig};
/// let mut opt = AdamW::new(AdamWConfig::default(), 2);
/// let mut params = vec![1.0f32, -1.0];
/// opt.step(&mut params, &[0.5, -0.5], 0.1);
/// // The first Adam step moves each parameter by about lr against its gradient's sign.
/// assert!((params[0] - 0.9).abs() < 1e-6 && (params[1] + 0.9).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Moments and step count.
    pub state: AdamWState,
}

impl AdamW {
    /// A fresh optimizer for `len` parameters.
    pub fn new(config: AdamWConfig, len: usize) -> Self {
        Self {
            config,
            state: AdamWState {
                step: 0,
                exp_avg: vec![0.0; len],
                exp_avg_sq: vec![0.0; len],
            },
        }
    }

    /// One update of `params` with gradient `grad` at learning rate `lr`.
    ///
    /// # Panics
    /// Never for matching lengths; mismatched lengths update only the common prefix.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f64) {
        let c = self.config;
        let s = &mut self.state;
        s.step += 1;
        // PyTorch computes the bias corrections in Python floats (f64).
        let step = s.step as f64;
        let bias_correction1 = 1.0 - c.beta1.powf(step);
        let bias_correction2 = 1.0 - c.beta2.powf(step);
        let step_size = (lr / bias_correction1) as f32;
        let bias_correction2_sqrt = bias_correction2.sqrt() as f32;
        let decay = (1.0 - lr * c.weight_decay) as f32;
        // Scalars enter the f32 kernels rounded from Python floats.
        let one_minus_beta1 = (1.0 - c.beta1) as f32;
        let beta2 = c.beta2 as f32;
        let one_minus_beta2 = (1.0 - c.beta2) as f32;
        let eps = c.eps as f32;
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(s.exp_avg.iter_mut())
            .zip(s.exp_avg_sq.iter_mut())
        {
            *p *= decay;
            // `exp_avg.lerp_(grad, 1 - beta1)`: m + (1 − β₁)(g − m).
            *m += one_minus_beta1 * (g - *m);
            // `exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)`.
            *v = *v * beta2 + one_minus_beta2 * g * g;
            let denom = v.sqrt() / bias_correction2_sqrt + eps;
            *p += -step_size * (*m / denom);
        }
    }
}
