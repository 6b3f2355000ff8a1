//! A1111's per-image noise as the samplers' [`NoiseSource`].

use burn::tensor::{Device, Tensor, TensorData};
use sd_schedulers::{NoiseRequest, NoiseSource};

use crate::noise::ImageRng;

/// The image generators of a batch: the first draw is the initial latent noise, every later
/// draw is the per-step noise of ancestral samplers (A1111's `TorchHijack.randn_like` hands
/// them `ImageRNG.next()`).
///
/// The SDE samplers (DPM++ SDE, 2M SDE, 3M SDE) ask for Brownian-tree increments, which A1111
/// draws from torchsde's `BrownianTree`; that tree is not reproduced here, so those requests
/// get the same per-image draws: statistically right, but not A1111's exact pictures.
pub struct ImageNoise {
    rng: ImageRng,
    batch: usize,
    device: Device,
}

impl ImageNoise {
    /// Wraps `rng` (one generator per image of a `batch`) producing tensors on `device`.
    pub fn new(rng: ImageRng, batch: usize, device: &Device) -> Self {
        Self {
            rng,
            batch,
            device: device.clone(),
        }
    }

    /// The next draw for the whole batch: `[batch, c, h, w]`.
    pub fn draw(&mut self) -> Tensor<4> {
        let [c, h, w] = self.rng.shape();
        let values = self.rng.next();
        Tensor::from_data(TensorData::new(values, [self.batch, c, h, w]), &self.device)
    }
}

impl NoiseSource for ImageNoise {
    fn noise(&mut self, _request: &NoiseRequest, like: &Tensor<4>) -> Tensor<4> {
        let draw = self.draw();
        if draw.dims() == like.dims() {
            draw
        } else {
            // A1111 falls back to a fresh `randn_like` when shapes differ; keep the stream
            // moving and hand back what fits.
            Tensor::random(
                like.shape(),
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &like.device(),
            )
        }
    }
}
