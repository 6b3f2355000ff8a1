//! The timestep embedding: sinusoids of the (possibly fractional) timestep, then an MLP.
//!
//! Mirrors diffusers' `get_timestep_embedding`, `Timesteps` and `TimestepEmbedding`
//! (`diffusers/models/embeddings.py`), after "Denoising Diffusion Probabilistic Models"
//! (Ho et al., 2020) and the transformer's positional encoding.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};

/// diffusers' `max_period`: the longest sinusoid period, in timesteps.
const MAX_PERIOD: f64 = 10_000.0;

/// The sinusoidal projection of timesteps (diffusers' `Timesteps`; no weights).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timesteps {
    /// Width of the embedding.
    pub num_channels: usize,
    /// `cos, sin` order when true, `sin, cos` when false.
    pub flip_sin_to_cos: bool,
    /// diffusers' `downscale_freq_shift` (the config's `freq_shift`).
    pub freq_shift: f64,
}

impl Timesteps {
    /// The frequencies, computed in f32 exactly as diffusers does (`exp(-ln(max_period) * i /
    /// (half - shift))`, each step rounded to f32), so the embedding of a large timestep
    /// such as 999 matches to the last bits that f32 `sin`/`cos` allow.
    fn frequencies(&self) -> Vec<f32> {
        let half = self.num_channels / 2;
        let denominator = (half as f64 - self.freq_shift) as f32;
        // torch rounds the Python float `-math.log(max_period)` to f32 before multiplying.
        let log_period = -MAX_PERIOD.ln() as f32;
        (0..half)
            .map(|i| ((log_period * i as f32) / denominator).exp())
            .collect()
    }

    /// Embeds one timestep per batch element.
    ///
    /// # Shapes
    /// - `timesteps`: `[batch]`, f32; fractional values are fine (k-diffusion samplers pass
    ///   interpolated timesteps).
    /// - output: `[batch, num_channels]`
    pub fn forward(&self, timesteps: Tensor<1>) -> Tensor<2> {
        let device = timesteps.device();
        let [batch] = timesteps.dims();
        let frequencies = self.frequencies();
        let half = frequencies.len();
        let frequencies = Tensor::<1>::from_data(TensorData::new(frequencies, [half]), &device);
        let args = timesteps.reshape([batch, 1]) * frequencies.reshape([1, half]);
        let (sin, cos) = (args.clone().sin(), args.cos());
        let embedding = if self.flip_sin_to_cos {
            Tensor::cat(vec![cos, sin], 1)
        } else {
            Tensor::cat(vec![sin, cos], 1)
        };
        if self.num_channels % 2 == 1 {
            // diffusers zero-pads an odd width on the right.
            let zeros = Tensor::zeros([batch, 1], &device);
            Tensor::cat(vec![embedding, zeros], 1)
        } else {
            embedding
        }
    }
}

/// The timestep MLP (diffusers' `TimestepEmbedding`): `linear_2(silu(linear_1(x)))`.
#[derive(Module, Debug)]
pub struct TimestepEmbedding {
    /// `time_embedding.linear_1` (LDM: `time_embed.0`).
    pub linear_1: Linear,
    /// `time_embedding.linear_2` (LDM: `time_embed.2`).
    pub linear_2: Linear,
}

impl TimestepEmbedding {
    /// An uninitialised MLP from `in_channels` to `time_embed_dim`.
    pub fn new(in_channels: usize, time_embed_dim: usize, device: &Device) -> Self {
        Self {
            linear_1: LinearConfig::new(in_channels, time_embed_dim).init(device),
            linear_2: LinearConfig::new(time_embed_dim, time_embed_dim).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, in_channels]`
    /// - output: `[batch, time_embed_dim]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let hidden = sd_kernels::precision::in_f32(self.linear_1.forward(x), silu);
        self.linear_2.forward(hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_follow_diffusers() {
        // torch: math.exp(-math.log(10000) * i / (half - shift)) for half = 4.
        let shift0 = Timesteps {
            num_channels: 8,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
        };
        let shift1 = Timesteps {
            freq_shift: 1.0,
            ..shift0
        };
        let expected0 = [1.0, 0.1, 0.01, 0.001];
        let expected1 = [1.0, 0.046_415_89, 0.002_154_435, 0.0001];
        for (got, want) in shift0.frequencies().iter().zip(expected0) {
            assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
        }
        for (got, want) in shift1.frequencies().iter().zip(expected1) {
            assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
        }
    }
}
