//! Where the per-step noise of ancestral and SDE samplers comes from.
//!
//! k-diffusion asks for fresh noise in two ways: `torch.randn_like(x)` (Euler a, DPM2 a,
//! DPM++ 2S a, the churn of Euler/Heun/DPM2, DPM fast/adaptive, DDIM with η > 0, Restart) —
//! which A1111 replaces with its own per-image generator — and a `noise_sampler(σ, σ_next)`
//! backed by a Brownian tree for the SDE samplers (DPM++ SDE, 2M SDE, 3M SDE). A
//! [`NoiseSource`] answers both; the pipeline supplies one that reproduces A1111's noise.
//!
//! The Brownian tree itself (torchsde's `BrownianTree`) is not implemented in this crate:
//! sd-core reproduces it (`sd_core::noise::BrownianTreeNoise`, behind the pipeline's
//! per-image noise source). Here a source for SDE samplers either replays recorded values
//! ([`RecordedNoise`]) or draws independent Gaussians ([`GaussianNoise`]), which has the right
//! distribution per call but not the tree's correlations across calls.

use std::collections::VecDeque;

use burn::tensor::{Distribution, Tensor};

/// Which kind of noise a sampler asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoiseKind {
    /// `torch.randn_like(x)`: a fresh standard normal draw.
    Randn,
    /// `BrownianTreeNoiseSampler(σ, σ_next)`: the normalised Brownian increment between two
    /// noise levels.
    Brownian,
}

/// One request for noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseRequest {
    /// Which kind of noise.
    pub kind: NoiseKind,
    /// The sampler's step index when asked.
    pub step: usize,
    /// σ at the start of the interval the noise is for.
    pub sigma: f32,
    /// σ at its end.
    pub sigma_next: f32,
}

/// A supplier of standard-normal noise shaped like the latent.
pub trait NoiseSource {
    /// Noise for `request`, shaped and placed like `like`.
    ///
    /// # Shapes
    /// - `like`: `[batch, channels, height, width]`
    /// - returns: the same shape
    fn noise(&mut self, request: &NoiseRequest, like: &Tensor<4>) -> Tensor<4>;
}

/// Independent standard normal draws from burn's random generator on the tensor's device.
/// Neither A1111-reproducible nor a Brownian tree; for tests and quick use.
#[derive(Debug, Clone, Copy, Default)]
pub struct GaussianNoise;

impl NoiseSource for GaussianNoise {
    fn noise(&mut self, _request: &NoiseRequest, like: &Tensor<4>) -> Tensor<4> {
        Tensor::random(like.shape(), Distribution::Normal(0.0, 1.0), &like.device())
    }
}

/// Replays a recorded sequence of noise tensors in order, e.g. the values k-diffusion's
/// samplers drew (including what its `BrownianTreeNoiseSampler` returned), so a run can be
/// compared with the reference exactly.
///
/// When the recording runs out it answers zeros and counts the shortfall in
/// [`RecordedNoise::missing`]; the requests it saw are kept in [`RecordedNoise::requests`].
#[derive(Debug, Clone, Default)]
pub struct RecordedNoise {
    queue: VecDeque<Tensor<4>>,
    requests: Vec<NoiseRequest>,
    missing: usize,
}

impl RecordedNoise {
    /// A source that will hand out `noise` in order.
    pub fn new(noise: impl IntoIterator<Item = Tensor<4>>) -> Self {
        Self {
            queue: noise.into_iter().collect(),
            requests: Vec::new(),
            missing: 0,
        }
    }

    /// Every request made so far, in order.
    pub fn requests(&self) -> &[NoiseRequest] {
        &self.requests
    }

    /// How many requests found the recording empty.
    pub fn missing(&self) -> usize {
        self.missing
    }

    /// How many recorded tensors are left unused.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl NoiseSource for RecordedNoise {
    fn noise(&mut self, request: &NoiseRequest, like: &Tensor<4>) -> Tensor<4> {
        self.requests.push(*request);
        match self.queue.pop_front() {
            Some(n) => n,
            None => {
                self.missing += 1;
                like.zeros_like()
            }
        }
    }
}
