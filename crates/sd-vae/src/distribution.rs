//! The encoder's output: a diagonal Gaussian over latents.
//!
//! Upstream: `diffusers/models/autoencoders/vae.py`, `DiagonalGaussianDistribution`.

use burn::tensor::{Distribution, Tensor};

/// Lower bound diffusers (and LDM) clamp the log-variance to.
pub const LOGVAR_MIN: f64 = -30.0;
/// Upper bound diffusers (and LDM) clamp the log-variance to.
pub const LOGVAR_MAX: f64 = 20.0;

/// A Gaussian with independent components: a mean and a (clamped) log-variance per latent
/// element.
#[derive(Debug, Clone)]
pub struct DiagonalGaussianDistribution {
    /// The mean, which is also the mode.
    pub mean: Tensor<4>,
    /// The log-variance, clamped to [[`LOGVAR_MIN`], [`LOGVAR_MAX`]].
    pub logvar: Tensor<4>,
}

impl DiagonalGaussianDistribution {
    /// Splits the encoder's moments: the first half of the channels is the mean, the second
    /// the log-variance (`torch.chunk(parameters, 2, dim=1)`).
    ///
    /// # Shapes
    /// - moments: `[batch, 2 * latent_channels, height, width]`
    /// - [`mean`](Self::mean), [`logvar`](Self::logvar): `[batch, latent_channels, height, width]`
    pub fn from_moments(moments: Tensor<4>) -> Self {
        let [batch, channels, height, width] = moments.dims();
        let half = channels / 2;
        let mean = moments
            .clone()
            .slice([0..batch, 0..half, 0..height, 0..width]);
        let logvar = moments
            .slice([0..batch, half..channels, 0..height, 0..width])
            .clamp(LOGVAR_MIN, LOGVAR_MAX);
        Self { mean, logvar }
    }

    /// The most likely latent: the mean (diffusers' `mode()`, A1111's deterministic
    /// sampling).
    ///
    /// # Shapes
    /// - output: `[batch, latent_channels, height, width]`
    pub fn mode(&self) -> Tensor<4> {
        self.mean.clone()
    }

    /// The standard deviation, `exp(logvar / 2)`.
    ///
    /// # Shapes
    /// - output: `[batch, latent_channels, height, width]`
    pub fn std(&self) -> Tensor<4> {
        self.logvar.clone().mul_scalar(0.5).exp()
    }

    /// A sample `mean + std * noise` with caller-supplied standard-normal `noise` (for
    /// reproducibility across implementations: pass the noise torch would draw).
    ///
    /// # Shapes
    /// - noise, output: `[batch, latent_channels, height, width]`
    pub fn sample_with_noise(&self, noise: Tensor<4>) -> Tensor<4> {
        self.mean.clone() + self.std() * noise
    }

    /// A sample drawn with the device's random generator (seed it with
    /// [`Device::seed`](burn::tensor::Device::seed) for repeatable draws).
    ///
    /// # Shapes
    /// - output: `[batch, latent_channels, height, width]`
    pub fn sample(&self) -> Tensor<4> {
        let noise = Tensor::random(
            self.mean.shape(),
            Distribution::Normal(0.0, 1.0),
            &self.mean.device(),
        );
        self.sample_with_noise(noise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn moments_split_on_channels_and_logvar_is_clamped_as_in_diffusers() {
        let device = Device::default();
        // Channels: mean 1, mean 2, logvar 100 (clamped to 20), logvar -100 (to -30).
        let moments = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 100.0, -100.0], [1, 4, 1, 1]),
            &device,
        );
        let dist = DiagonalGaussianDistribution::from_moments(moments);
        let mean = dist.mode().into_data().try_to_vec::<f32>().expect("f32");
        let logvar = dist.logvar.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(mean, [1.0, 2.0]);
        assert_eq!(logvar, [20.0, -30.0]);
    }
}
