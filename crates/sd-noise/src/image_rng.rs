//! A1111's per-image noise for a batch (`modules/rng.py::ImageRNG`).
//!
//! Each image `i` owns a generator seeded with `seeds[i]`. `first()` draws the initial
//! latent noise: optionally blended towards the noise of `subseeds[i]` by
//! [`slerp`](super::slerp::slerp) ("variation seed"), and optionally drawn at another
//! size and pasted centred ("resize seed from"). `next()` draws per-step noise (ancestral
//! and SDE samplers) from the same generators, which A1111 re-seeds with
//! `seed + eta_noise_seed_delta` after `first()` when that setting is non-zero.

use super::error::NoiseError;
use super::slerp::slerp;
use super::source::{NoiseGenerator, RngSource};

/// A1111's "Resize seed from" divides the pixel size by 8 (`rng.py`: `// 8`), the VAE's
/// downscale factor in every SD 1.x/2.x model; it is written there as a literal.
const A1111_LATENT_FACTOR: u32 = 8;

/// "Resize seed from width/height" in pixels: draw the noise as if the picture had this
/// size, then paste it centred into (or crop it to) the real latent.
///
/// ```
/// use sd_noise::SeedResize;
/// let r = SeedResize { width: 512, height: 768 };
/// assert_eq!(r.width, 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedResize {
    /// Width in pixels (A1111's `seed_resize_from_w`).
    pub width: u32,
    /// Height in pixels (A1111's `seed_resize_from_h`).
    pub height: u32,
}

/// Per-image random number generators for one batch, as A1111's `ImageRNG`.
///
/// ```
/// use sd_noise::{ImageRng, RngSource};
/// // Two images of a 4x8x8 latent, seeds 1 and 2, variation seed 10/11 at strength 0.3.
/// let mut rng = ImageRng::new(RngSource::Cpu, [4, 8, 8], &[1, 2])?
///     .with_subseeds(&[10, 11], 0.3);
/// let x0 = rng.next(); // the initial noise (first call = `first()`)
/// let e1 = rng.next(); // noise for the first ancestral step
/// assert_eq!(x0.len(), 2 * 4 * 8 * 8);
/// assert_eq!(e1.len(), x0.len());
/// # Ok::<(), sd_noise::NoiseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageRng {
    source: RngSource,
    shape: [usize; 3],
    seeds: Vec<u64>,
    subseeds: Vec<u64>,
    subseed_strength: f64,
    resize: Option<SeedResize>,
    eta_noise_seed_delta: u64,
    generators: Vec<NoiseGenerator>,
    is_first: bool,
}

impl ImageRng {
    /// Generators for a batch with one seed per image, latent `shape` = `[c, h, w]`.
    ///
    /// # Errors
    /// [`NoiseError::EmptyShape`] if a dimension of `shape` is zero.
    ///
    /// ```
    /// use sd_noise::{ImageRng, RngSource};
    /// assert!(ImageRng::new(RngSource::Nv, [4, 0, 8], &[1]).is_err());
    /// ```
    pub fn new(source: RngSource, shape: [usize; 3], seeds: &[u64]) -> Result<Self, NoiseError> {
        if shape.contains(&0) {
            return Err(NoiseError::EmptyShape(shape));
        }
        Ok(Self {
            source,
            shape,
            seeds: seeds.to_vec(),
            subseeds: Vec::new(),
            subseed_strength: 0.0,
            resize: None,
            eta_noise_seed_delta: 0,
            generators: seeds.iter().map(|&s| source.generator(s)).collect(),
            is_first: true,
        })
    }

    /// Variation seeds: image `i` blends towards the noise of `subseeds[i]` (0 when the
    /// list is shorter, as A1111) by `strength` (0 = off, 1 = only the subseed).
    ///
    /// ```
    /// use sd_noise::{ImageRng, RngSource};
    /// let plain = ImageRng::new(RngSource::Cpu, [4, 4, 4], &[5])?.first();
    /// let off = ImageRng::new(RngSource::Cpu, [4, 4, 4], &[5])?.with_subseeds(&[9], 0.0).first();
    /// assert_eq!(plain, off);
    /// # Ok::<(), sd_noise::NoiseError>(())
    /// ```
    pub fn with_subseeds(mut self, subseeds: &[u64], strength: f64) -> Self {
        self.subseeds = subseeds.to_vec();
        self.subseed_strength = strength;
        self
    }

    /// "Resize seed from": draw the noise at `resize` (pixels) and paste it centred.
    ///
    /// Sides are divided by 8 rounding down, as A1111 does; a side below 8 pixels gives an
    /// empty noise, so nothing is pasted and the noise is the seed's own (A1111 accepts such
    /// sizes the same way, and still writes them into the infotext).
    ///
    /// ```
    /// use sd_noise::{ImageRng, RngSource, SeedResize};
    /// let r = ImageRng::new(RngSource::Cpu, [4, 8, 8], &[5])?
    ///     .with_seed_resize(SeedResize { width: 32, height: 96 });
    /// assert_eq!(r.clone().first().len(), 4 * 8 * 8);
    /// # Ok::<(), sd_noise::NoiseError>(())
    /// ```
    pub fn with_seed_resize(mut self, resize: SeedResize) -> Self {
        self.resize = Some(resize);
        self
    }

    /// A1111's "Eta noise seed delta" (ENSD): after `first()`, the per-step generators are
    /// re-seeded with `seed + delta` (0 = keep drawing from the seed's own stream).
    ///
    /// ```
    /// use sd_noise::{ImageRng, RngSource};
    /// let mut a = ImageRng::new(RngSource::Cpu, [1, 4, 4], &[7])?.with_eta_noise_seed_delta(31337);
    /// a.next();
    /// let mut b = ImageRng::new(RngSource::Cpu, [1, 4, 4], &[7 + 31337])?;
    /// assert_eq!(a.next(), b.next());
    /// # Ok::<(), sd_noise::NoiseError>(())
    /// ```
    pub fn with_eta_noise_seed_delta(mut self, delta: u64) -> Self {
        self.eta_noise_seed_delta = delta;
        self
    }

    /// The latent shape `[c, h, w]` of one image.
    ///
    /// ```
    /// use sd_noise::{ImageRng, RngSource};
    /// assert_eq!(ImageRng::new(RngSource::Cpu, [4, 8, 8], &[1])?.shape(), [4, 8, 8]);
    /// # Ok::<(), sd_noise::NoiseError>(())
    /// ```
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The initial noise of the whole batch (A1111's `ImageRNG.first()`).
    ///
    /// # Shapes
    /// - returns: `[batch, c, h, w]` flattened, batch = number of seeds
    ///
    /// ```
    /// use sd_noise::{ImageRng, RngSource, TorchCpuGenerator};
    /// let x = ImageRng::new(RngSource::Cpu, [4, 8, 8], &[3, 4])?.first();
    /// assert_eq!(&x[256..], &TorchCpuGenerator::new(4).randn(256)[..]);
    /// # Ok::<(), sd_noise::NoiseError>(())
    /// ```
    pub fn first(&mut self) -> Vec<f32> {
        self.is_first = false;
        let [c, h, w] = self.shape;
        let noise_shape = match self.resize {
            Some(r) => [
                c,
                (r.height / A1111_LATENT_FACTOR) as usize,
                (r.width / A1111_LATENT_FACTOR) as usize,
            ],
            None => self.shape,
        };
        let resized = noise_shape != self.shape;
        let noise_len = noise_shape.iter().product::<usize>();
        let mut out = Vec::with_capacity(self.seeds.len() * c * h * w);
        for (i, (&seed, generator)) in self.seeds.iter().zip(&mut self.generators).enumerate() {
            let subnoise = (self.subseed_strength != 0.0).then(|| {
                let subseed = self.subseeds.get(i).copied().unwrap_or(0);
                self.source.generator(subseed).randn(noise_len)
            });
            let mut noise = if resized {
                self.source.generator(seed).randn(noise_len)
            } else {
                generator.randn(noise_len)
            };
            if let Some(sub) = subnoise {
                noise = slerp(self.subseed_strength, &noise, &sub, noise_shape);
            }
            if resized {
                let mut x = generator.randn(c * h * w);
                paste_centred(&noise, noise_shape, &mut x, self.shape);
                noise = x;
            }
            out.extend_from_slice(&noise);
        }
        if self.eta_noise_seed_delta != 0 {
            let delta = self.eta_noise_seed_delta;
            self.generators = self
                .seeds
                .iter()
                .map(|&s| self.source.generator(s.wrapping_add(delta)))
                .collect();
        }
        out
    }

    /// The next noise of the whole batch: the initial noise on the first call
    /// ([`first`](Self::first)), then one fresh draw per image from its generator
    /// (A1111's `ImageRNG.next()`, used by ancestral samplers at every step).
    ///
    /// # Shapes
    /// - returns: `[batch, c, h, w]` flattened
    ///
    /// ```
    /// use sd_noise::{ImageRng, RngSource, TorchCpuGenerator};
    /// let mut rng = ImageRng::new(RngSource::Cpu, [4, 8, 8], &[3])?;
    /// let mut g = TorchCpuGenerator::new(3);
    /// assert_eq!(rng.next(), g.randn(256));
    /// assert_eq!(rng.next(), g.randn(256));
    /// # Ok::<(), sd_noise::NoiseError>(())
    /// ```
    #[allow(clippy::should_implement_trait)] // A1111's name; not an Iterator (never ends).
    pub fn next(&mut self) -> Vec<f32> {
        if self.is_first {
            return self.first();
        }
        let n = self.shape.iter().product::<usize>();
        self.generators
            .iter_mut()
            .flat_map(|g| g.randn(n))
            .collect()
    }
}

/// Pastes `noise` ([c, nh, nw]) centred into `x` ([c, h, w]), cropping whichever is
/// larger, with A1111's integer arithmetic (`(h - nh) // 2`, floor division).
fn paste_centred(noise: &[f32], noise_shape: [usize; 3], x: &mut [f32], shape: [usize; 3]) {
    let [c, h, w] = shape;
    let [_, nh, nw] = noise_shape;
    // Python's `//` floors; differences may be negative.
    let dx = (w as i64 - nw as i64).div_euclid(2);
    let dy = (h as i64 - nh as i64).div_euclid(2);
    let cw = if dx >= 0 {
        nw as i64
    } else {
        nw as i64 + 2 * dx
    };
    let ch = if dy >= 0 {
        nh as i64
    } else {
        nh as i64 + 2 * dy
    };
    let (tx, ty) = (dx.max(0), dy.max(0));
    let (sx, sy) = ((-dx).max(0), (-dy).max(0));
    // Python slices clamp at the end of the axis; so do these bounds.
    let rows = ch.min(h as i64 - ty).min(nh as i64 - sy).max(0) as usize;
    let cols = cw.min(w as i64 - tx).min(nw as i64 - sx).max(0) as usize;
    let (tx, ty, sx, sy) = (tx as usize, ty as usize, sx as usize, sy as usize);
    for ci in 0..c {
        for r in 0..rows {
            let dst = (ci * h + ty + r) * w + tx;
            let src = (ci * nh + sy + r) * nw + sx;
            x[dst..dst + cols].copy_from_slice(&noise[src..src + cols]);
        }
    }
}
