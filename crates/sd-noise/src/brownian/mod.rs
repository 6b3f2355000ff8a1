//! k-diffusion's `BrownianTreeNoiseSampler` over torchsde's `BrownianTree`, reproduced: the
//! per-step noise of A1111's SDE samplers (DPM++ SDE, DPM++ 2M SDE (Heun), DPM++ 3M SDE).
//!
//! A1111 (`Sampler.create_noise_sampler`, `modules/sd_samplers_common.py`) builds
//! `BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=current_iter_seeds)` with the
//! batch's main seeds (`p.all_seeds`, never the variation seeds) and
//! `sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()` of the *full* σ list
//! (img2img too). k-diffusion's `BatchedBrownianTree` then holds one
//! `torchsde.BrownianTree(t0, w0[0], t1, entropy=seed)` per image on `[σ_min, σ_max]`, and a
//! call `(σ, σ_next)` returns `tree(min, max) · sign / sqrt(|σ_next − σ|)`, with the sign
//! negative when σ_next < σ (always, for a descending schedule).
//!
//! The tree's node noise is `torch.randn` with a fresh generator on the latent's device:
//! torch's CPU generator for [`RngSource::Cpu`], CUDA's Philox (what A1111's "NV" source
//! reproduces) for [`RngSource::Gpu`] / [`RngSource::Nv`].
//!
//! Exactness: the tree's increments match torchsde bit for bit (CPU). The final division
//! by `sqrt(|σ_next − σ|)` uses a correctly rounded square root, where torch's CPU kernel
//! (MKL) is off by one ulp for about one divisor in five, so an output can differ from
//! k-diffusion's by one or two float32 ulps.

mod seed_sequence;
mod tree;

pub use seed_sequence::SeedSequence;

use tree::BrownianTree;

use crate::RngSource;

/// k-diffusion's `BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seeds)` for a batch
/// of latents shaped `[seeds.len(), channels, height, width]`.
///
/// ```
/// use sd_noise::BrownianTreeNoise;
/// let mut tree = BrownianTreeNoise::new([4, 8, 8], &[1, 2], 0.03, 14.6);
/// let n = tree.sample(14.6, 7.0); // [2, 4, 8, 8]: one standard normal per value
/// assert_eq!(n.len(), 2 * 4 * 8 * 8);
/// // The tree is a fixed function of the seeds: asking again gives the same values.
/// assert_eq!(tree.sample(14.6, 7.0), n);
/// ```
#[derive(Debug, Clone)]
pub struct BrownianTreeNoise {
    trees: Vec<BrownianTree>,
    /// `BatchedBrownianTree.sign`: −1 when the interval was given as (max, min).
    sign: f32,
    numel: usize,
}

impl BrownianTreeNoise {
    /// One tree per seed over `[sigma_min, sigma_max]` (either order), each shaped
    /// `shape = [channels, height, width]`, drawing node noise as torch does on the CPU.
    pub fn new(shape: [usize; 3], seeds: &[u64], sigma_min: f32, sigma_max: f32) -> Self {
        Self::with_source(shape, seeds, sigma_min, sigma_max, RngSource::Cpu)
    }

    /// As [`new`](Self::new), with the node noise of the device `source` stands for:
    /// [`RngSource::Cpu`] for torch's CPU generator, [`RngSource::Gpu`] or
    /// [`RngSource::Nv`] for CUDA's Philox.
    pub fn with_source(
        shape: [usize; 3],
        seeds: &[u64],
        sigma_min: f32,
        sigma_max: f32,
        source: RngSource,
    ) -> Self {
        let numel = shape.iter().product();
        // `BatchedBrownianTree.sort`: (a, b, 1) if a < b else (b, a, -1).
        let (t0, t1, sign) = if sigma_min < sigma_max {
            (sigma_min, sigma_max, 1.0)
        } else {
            (sigma_max, sigma_min, -1.0)
        };
        let trees = seeds
            .iter()
            .map(|&s| BrownianTree::new(f64::from(t0), f64::from(t1), numel, u128::from(s), source))
            .collect();
        Self { trees, sign, numel }
    }

    /// How many images (trees) the batch has.
    pub fn batch(&self) -> usize {
        self.trees.len()
    }

    /// `noise_sampler(sigma, sigma_next)`: the Brownian increment between the two noise
    /// levels divided by `sqrt(|sigma_next − sigma|)`, so standard normal per value.
    /// Levels outside `[sigma_min, sigma_max]` are clamped to it (torchsde warns and clamps);
    /// `sigma == sigma_next` gives `0 / 0` (NaN), as in k-diffusion.
    ///
    /// # Shapes
    /// - returns: `[batch, channels, height, width]`, row-major
    pub fn sample(&mut self, sigma: f32, sigma_next: f32) -> Vec<f32> {
        // float32 tensor arithmetic: `(t1 - t0).abs().sqrt()`.
        let scale = (sigma_next - sigma).abs().sqrt();
        let mut w = self.increment(sigma, sigma_next);
        w.iter_mut().for_each(|v| *v /= scale);
        w
    }

    /// `BatchedBrownianTree(sigma, sigma_next)`: the Brownian increment from `sigma` to
    /// `sigma_next`, unnormalised (its variance is `|sigma_next − sigma|`); bit for bit
    /// torchsde's on the CPU.
    ///
    /// # Shapes
    /// - returns: `[batch, channels, height, width]`, row-major
    pub fn increment(&mut self, sigma: f32, sigma_next: f32) -> Vec<f32> {
        let (ta, tb, sign) = if sigma < sigma_next {
            (sigma, sigma_next, 1.0)
        } else {
            (sigma_next, sigma, -1.0)
        };
        let sign = self.sign * sign;
        let (ta, tb) = (f64::from(ta), f64::from(tb));
        // The trees are independent and each query costs dozens of latent-sized `randn`
        // draws per tree: one thread per image.
        let parts: Vec<Vec<f32>> = if self.trees.len() > 1 {
            std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .trees
                    .iter_mut()
                    .map(|tree| scope.spawn(move || tree.increment(ta, tb)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        } else {
            self.trees
                .iter_mut()
                .map(|tree| tree.increment(ta, tb))
                .collect()
        };
        let mut out = Vec::with_capacity(self.numel * self.trees.len());
        for w in parts {
            out.extend(w.into_iter().map(|v| v * sign));
        }
        out
    }
}
