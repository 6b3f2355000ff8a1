//! Latent sampling modes, A1111's batch sampler and its epoch/step arithmetic.

use super::DatasetError;
use super::rng::{RandomSource, choices, shuffle, weighted_index};

/// How the VAE's latent distribution of each training image becomes the latent the UNet
/// learns from (A1111's `latent_sampling_method`). The trainer implements the sampling.
///
/// ```
/// use sd_textual_inversion::dataset::batching::LatentSampling;
/// assert_eq!("deterministic".parse::<LatentSampling>(), Ok(LatentSampling::Deterministic));
/// assert_eq!(LatentSampling::default(), LatentSampling::Once);
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LatentSampling {
    /// One sample `mean + std * noise` per image, drawn when the dataset is loaded and reused
    /// for the whole run (A1111's default).
    #[default]
    Once,
    /// The distribution's mean (A1111 sets `std = 0` before sampling), computed once. A1111
    /// falls back to `Once` for a first stage that is not a Gaussian; every SD VAE is one.
    Deterministic,
    /// A fresh sample from the cached distribution at every fetch of the image.
    Random,
}

impl std::str::FromStr for LatentSampling {
    type Err = String;

    /// `once`, `deterministic` or `random`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "once" => Ok(Self::Once),
            "deterministic" => Ok(Self::Deterministic),
            "random" => Ok(Self::Random),
            _ => Err(format!(
                "unknown latent sampling {s:?}: expected once, deterministic or random"
            )),
        }
    }
}

/// A1111's `GroupedBatchSampler`: batches never mix image sizes. Images are grouped by size
/// (with a fixed training size, one group); each epoch shuffles every group, cuts it into full
/// batches, adds `n_rand_batches` batches drawn with replacement from a group chosen with
/// probability proportional to its leftover, and shuffles the batches.
///
/// A1111's quirk kept: the number of batches an epoch yields can exceed [`len`](Self::len)
/// (the base batches are counted per group, the random ones from the total); A1111's loop
/// stops an epoch after `max_batches_per_epoch` batches ([`EpochPlan`]) anyway.
///
/// ```
/// use sd_textual_inversion::dataset::{batching::GroupedBatchSampler, rng::SplitMix64};
/// let mut sampler = GroupedBatchSampler::new(vec![(0..7).collect()], 2)?;
/// assert_eq!(sampler.len(), 3);
/// let batches = sampler.epoch(&mut SplitMix64::new(1));
/// assert_eq!(batches.len(), 3);
/// assert!(batches.iter().all(|b| b.len() == 2));
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedBatchSampler {
    groups: Vec<Vec<usize>>,
    batch_size: usize,
    len: usize,
    n_rand_batches: usize,
    probs: Vec<f64>,
}

impl GroupedBatchSampler {
    /// A sampler over `groups` (dataset indices grouped by image size, in order of first
    /// appearance, as A1111's `groups`) with batches of `batch_size` (already clamped to the
    /// dataset length, see [`EpochPlan::new`]).
    ///
    /// # Errors
    /// [`DatasetError::Zero`] for a zero batch size or no images.
    pub fn new(groups: Vec<Vec<usize>>, batch_size: usize) -> Result<Self, DatasetError> {
        if batch_size == 0 {
            return Err(DatasetError::Zero("batch size"));
        }
        let n: usize = groups.iter().map(Vec::len).sum();
        if n == 0 {
            return Err(DatasetError::Zero("number of images"));
        }
        let n_batch = n / batch_size;
        let b = batch_size as f64;
        // expected = len(g) / n * n_batch * batch_size, in Python's float arithmetic.
        let expected: Vec<f64> = groups
            .iter()
            .map(|g| g.len() as f64 / n as f64 * n_batch as f64 * b)
            .collect();
        let base: usize = expected.iter().map(|&e| (e as usize) / batch_size).sum();
        let nrb = n_batch.saturating_sub(base);
        let probs = expected
            .iter()
            .map(|&e| {
                if nrb > 0 {
                    e.rem_euclid(b) / nrb as f64 / b
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Self {
            groups,
            batch_size,
            len: n_batch,
            n_rand_batches: nrb,
            probs,
        })
    }

    /// `len(sampler)`: `n // batch_size`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether [`len`](Self::len) is 0 (never: the batch size is at most the dataset size).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many batches per epoch are drawn with replacement.
    pub fn n_rand_batches(&self) -> usize {
        self.n_rand_batches
    }

    /// The probability weights of the groups for those random batches.
    pub fn probs(&self) -> &[f64] {
        &self.probs
    }

    /// One epoch of batches (`__iter__`). The groups stay shuffled between epochs, as in
    /// A1111 (it shuffles them in place).
    pub fn epoch(&mut self, rng: &mut impl RandomSource) -> Vec<Vec<usize>> {
        let b = self.batch_size;
        for g in &mut self.groups {
            shuffle(g, rng);
        }
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for g in &self.groups {
            batches.extend(g.chunks_exact(b).map(<[usize]>::to_vec));
        }
        for _ in 0..self.n_rand_batches {
            // `choices(self.groups, self.probs)[0]`, then `choices(group, k=b)`.
            let gi = weighted_index(&self.probs, rng).unwrap_or(0);
            batches.push(choices(&self.groups[gi], b, rng));
        }
        shuffle(&mut batches, rng);
        batches
    }
}

/// A1111's step arithmetic for a dataset of `len` images (`train_embedding`).
///
/// ```
/// use sd_textual_inversion::dataset::batching::EpochPlan;
/// // 10 images, batch 3, gradient accumulation 2.
/// let p = EpochPlan::new(10, 3, 2)?;
/// assert_eq!((p.batch_size(), p.gradient_step()), (3, 2));
/// assert_eq!(p.steps_per_epoch(), 1);        // 10 // 3 // 2
/// assert_eq!(p.max_batches_per_epoch(), 2);  // 3 - 3 % 2
/// assert!(!p.is_optimizer_step(0) && p.is_optimizer_step(1));
/// assert_eq!(p.progress(5), (5, 1));         // "[Epoch 5: 1/1]"
/// assert_eq!(p.csv_epoch(5), (4, 0));        // the loss CSV's epoch, epoch_step
/// // Clamping: batch 8 of 5 images → 5; accumulation 4 → 5 // 5 = 1.
/// let p = EpochPlan::new(5, 8, 4)?;
/// assert_eq!((p.batch_size(), p.gradient_step()), (5, 1));
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochPlan {
    len: usize,
    batch_size: usize,
    gradient_step: usize,
}

impl EpochPlan {
    /// A1111's clamping: `batch_size = min(batch_size, len)`,
    /// `gradient_step = min(gradient_step, len // batch_size)`.
    ///
    /// # Errors
    /// [`DatasetError::Zero`] if any argument is 0 (A1111: "Batch size must be positive",
    /// "Gradient accumulation step must be positive", "No images have been found").
    pub fn new(len: usize, batch_size: usize, gradient_step: usize) -> Result<Self, DatasetError> {
        if len == 0 {
            return Err(DatasetError::Zero("number of images"));
        }
        if batch_size == 0 {
            return Err(DatasetError::Zero("batch size"));
        }
        if gradient_step == 0 {
            return Err(DatasetError::Zero("gradient accumulation"));
        }
        let batch_size = batch_size.min(len);
        let gradient_step = gradient_step.min(len / batch_size);
        Ok(Self {
            len,
            batch_size,
            gradient_step,
        })
    }

    /// The effective batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The effective gradient accumulation (micro-batches per optimizer step).
    pub fn gradient_step(&self) -> usize {
        self.gradient_step
    }

    /// Optimizer steps per epoch: `len // batch_size // gradient_step`.
    pub fn steps_per_epoch(&self) -> usize {
        self.len / self.batch_size / self.gradient_step
    }

    /// Batches used per epoch: `len // batch_size - (len // batch_size) % gradient_step`
    /// (A1111 breaks the epoch's loop at this batch index: drop-last for accumulation).
    pub fn max_batches_per_epoch(&self) -> usize {
        let n = self.len / self.batch_size;
        n - n % self.gradient_step
    }

    /// Whether micro-batch `j` of an epoch (0-based) ends an accumulation:
    /// `(j + 1) % gradient_step == 0`; the loss of each micro-batch is divided by
    /// `gradient_step` and the losses summed for the logged step loss.
    pub fn is_optimizer_step(&self, j: usize) -> bool {
        (j + 1).is_multiple_of(self.gradient_step)
    }

    /// The progress bar's `[Epoch {epoch}: {n}/{steps_per_epoch}]` after the optimizer step
    /// that made the embedding's step `step`: `(step // spe, step % spe + 1)`.
    pub fn progress(&self, step: u64) -> (u64, u64) {
        let spe = self.steps_per_epoch() as u64;
        (step / spe, step % spe + 1)
    }

    /// The loss CSV's `epoch` and `epoch_step` columns for step `step` (A1111's `write_loss`:
    /// `(step - 1) // spe`, `(step - 1) % spe`, Python floor division).
    pub fn csv_epoch(&self, step: u64) -> (i64, i64) {
        let spe = self.steps_per_epoch() as i64;
        let s = step as i64 - 1;
        (s.div_euclid(spe), s.rem_euclid(spe))
    }
}
