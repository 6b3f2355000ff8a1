//! A1111's per-image noise as the samplers' [`NoiseSource`].

use burn::tensor::{Device, Tensor, TensorData};
use sd_schedulers::{NoiseKind, NoiseRequest, NoiseSource};

use crate::noise::{BrownianTreeNoise, ImageRng, RngSource};

/// The image generators of a batch: the first draw is the initial latent noise, every later
/// draw is the per-step noise of ancestral samplers (A1111's `TorchHijack.randn_like` hands
/// them `ImageRNG.next()`).
///
/// The SDE samplers (DPM++ SDE, 2M SDE, 3M SDE) ask for Brownian-tree increments instead.
/// A1111 draws them from k-diffusion's `BrownianTreeNoiseSampler`: one torchsde
/// `BrownianTree` per image, seeded with the image's seed, over `[σ_min, σ_max]` of the
/// sampling run. Given the seeds ([`with_brownian_seeds`](Self::with_brownian_seeds)) and the
/// run's σ ([`set_brownian_sigmas`](Self::set_brownian_sigmas)), those requests are answered
/// by [`BrownianTreeNoise`], a reproduction of that tree; without them they fall back to the
/// per-image draws (statistically right, but not A1111's pictures).
pub struct ImageNoise {
    rng: ImageRng,
    batch: usize,
    device: Device,
    /// The seeds and node-noise source of the Brownian trees, when configured.
    brownian_seeds: Option<(Vec<u64>, RngSource)>,
    /// `(sigma_min, sigma_max)` of the run, when known.
    brownian_range: Option<(f32, f32)>,
    /// Built on the first Brownian request.
    brownian: Option<BrownianTreeNoise>,
}

impl ImageNoise {
    /// Wraps `rng` (one generator per image of a `batch`) producing tensors on `device`.
    pub fn new(rng: ImageRng, batch: usize, device: &Device) -> Self {
        Self {
            rng,
            batch,
            device: device.clone(),
            brownian_seeds: None,
            brownian_range: None,
            brownian: None,
        }
    }

    /// Seeds the Brownian trees of the SDE samplers with the batch's seeds (A1111's
    /// `p.all_seeds` of the batch: the main seeds, whatever the variation seed), drawing the
    /// trees' node noise as torch does on the device `source` stands for: the CPU for
    /// [`RngSource::Cpu`], CUDA's Philox for [`RngSource::Gpu`] / [`RngSource::Nv`].
    ///
    /// A1111 draws them on the latent's device whatever its "random number generator
    /// source" setting; the pipeline takes that setting as the best hint of the device.
    pub fn with_brownian_seeds(mut self, seeds: &[u64], source: RngSource) -> Self {
        self.brownian_seeds = Some((seeds.to_vec(), source));
        self.brownian = None;
        self
    }

    /// The σ list of the sampling run: the trees span A1111's
    /// `sigmas[sigmas > 0].min(), sigmas.max()`. For img2img A1111 passes the full list, not
    /// the part the run walks. A list without a positive σ leaves the trees unset.
    pub fn set_brownian_sigmas(&mut self, sigmas: &[f32]) {
        let min = sigmas
            .iter()
            .copied()
            .filter(|&s| s > 0.0)
            .fold(None, |m: Option<f32>, s| Some(m.map_or(s, |m| m.min(s))));
        let max = sigmas.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        self.brownian_range = min.map(|min| (min, max));
        self.brownian = None;
    }

    /// The next draw for the whole batch: `[batch, c, h, w]`.
    pub fn draw(&mut self) -> Tensor<4> {
        let [c, h, w] = self.rng.shape();
        let values = self.rng.next();
        Tensor::from_data(TensorData::new(values, [self.batch, c, h, w]), &self.device)
    }

    /// The tree's noise for `(sigma, sigma_next)`, when the trees are configured and fit.
    fn brownian(&mut self, request: &NoiseRequest) -> Option<Tensor<4>> {
        let [c, h, w] = self.rng.shape();
        if self.brownian.is_none() {
            let (seeds, source) = self.brownian_seeds.as_ref()?;
            let (min, max) = self.brownian_range?;
            if seeds.len() != self.batch {
                return None;
            }
            self.brownian = Some(BrownianTreeNoise::with_source(
                [c, h, w],
                seeds,
                min,
                max,
                *source,
            ));
        }
        let tree = self.brownian.as_mut()?;
        let values = tree.sample(request.sigma, request.sigma_next);
        Some(Tensor::from_data(
            TensorData::new(values, [self.batch, c, h, w]),
            &self.device,
        ))
    }
}

impl NoiseSource for ImageNoise {
    fn noise(&mut self, request: &NoiseRequest, like: &Tensor<4>) -> Tensor<4> {
        if request.kind == NoiseKind::Brownian
            && let Some(n) = self.brownian(request)
            && n.dims() == like.dims()
        {
            return n;
        }
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
