//! The random source of data preparation, and Python's `random` algorithms over it.
//!
//! A1111 draws template lines, tag drop-outs, shuffles and batches from Python's global
//! `random` module (MT19937, unseeded). We keep Python's *algorithms* (`choice`, `shuffle`,
//! `choices`, written over two primitives, [`RandomSource::below`] and
//! [`RandomSource::next_f64`]) and feed them a small seeded generator, [`SplitMix64`], so that
//! a training run is reproducible from its seed. Replaying the primitive draws Python recorded
//! reproduces A1111's results exactly (the tests do this).

/// The two primitive draws Python's `random` algorithms are built on.
pub trait RandomSource {
    /// A uniform float in `[0, 1)` (Python's `random.random()`).
    fn next_f64(&mut self) -> f64;
    /// A uniform integer in `0..n`, `n > 0` (Python's `Random._randbelow(n)`).
    fn below(&mut self, n: usize) -> usize;
}

/// Sebastiano Vigna's SplitMix64: tiny, fast, statistically sound for data shuffling.
///
/// ```
/// use sd_textual_inversion::dataset::rng::{RandomSource, SplitMix64};
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.next_f64();
/// assert!((0.0..1.0).contains(&x));
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose stream depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl RandomSource for SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        // 53 random bits, as Python's random() (which uses 53 bits of MT output).
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        // Rejection sampling on the top bits, like Python's _randbelow: unbiased.
        let n = n as u64;
        let bits = 64 - (n - 1).leading_zeros();
        loop {
            let r = if bits == 0 {
                0
            } else {
                self.next_u64() >> (64 - bits)
            };
            if r < n {
                return r as usize;
            }
        }
    }
}

/// Python's `random.choice(seq)`: `seq[_randbelow(len(seq))]`. `None` for an empty slice
/// (Python raises `IndexError`).
///
/// ```
/// use sd_textual_inversion::dataset::rng::{choice, SplitMix64};
/// let mut rng = SplitMix64::new(1);
/// assert!(["a", "b"].contains(choice(&["a", "b"], &mut rng).unwrap()));
/// assert!(choice::<u8>(&[], &mut rng).is_none());
/// ```
pub fn choice<'a, T>(seq: &'a [T], rng: &mut impl RandomSource) -> Option<&'a T> {
    if seq.is_empty() {
        return None;
    }
    seq.get(rng.below(seq.len()))
}

/// Python's `random.shuffle(x)` (Fisher–Yates from the end:
/// `for i in reversed(range(1, len(x))): j = _randbelow(i + 1); x[i], x[j] = x[j], x[i]`).
///
/// ```
/// use sd_textual_inversion::dataset::rng::{shuffle, SplitMix64};
/// let mut v = vec![1, 2, 3, 4];
/// shuffle(&mut v, &mut SplitMix64::new(3));
/// v.sort();
/// assert_eq!(v, [1, 2, 3, 4]);
/// ```
pub fn shuffle<T>(x: &mut [T], rng: &mut impl RandomSource) {
    for i in (1..x.len()).rev() {
        let j = rng.below(i + 1);
        x.swap(i, j);
    }
}

/// Python 3.11's `random.choices(population, weights)[0]`: one index drawn with the given
/// (not necessarily normalised) weights: `bisect(cum_weights, random() * total, 0, n - 1)`.
/// `None` when `weights` is empty.
///
/// ```
/// use sd_textual_inversion::dataset::rng::{weighted_index, SplitMix64};
/// assert_eq!(weighted_index(&[0.0, 1.0, 0.0], &mut SplitMix64::new(9)), Some(1));
/// ```
pub fn weighted_index(weights: &[f64], rng: &mut impl RandomSource) -> Option<usize> {
    if weights.is_empty() {
        return None;
    }
    let mut cum = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in weights {
        acc += w;
        cum.push(acc);
    }
    let x = rng.next_f64() * acc;
    let hi = weights.len() - 1;
    // bisect_right over cum[0..hi]: the first index whose cumulative weight exceeds x.
    Some(cum[..hi].partition_point(|&c| c <= x))
}

/// Python 3.11's `random.choices(population, k=k)` without weights:
/// `population[floor(random() * n)]` for each of the `k` picks. Empty when `population` is.
///
/// ```
/// use sd_textual_inversion::dataset::rng::{choices, SplitMix64};
/// let picks = choices(&[5, 6, 7], 4, &mut SplitMix64::new(2));
/// assert_eq!(picks.len(), 4);
/// ```
pub fn choices<T: Clone>(population: &[T], k: usize, rng: &mut impl RandomSource) -> Vec<T> {
    if population.is_empty() {
        return Vec::new();
    }
    let n = population.len() as f64;
    (0..k)
        .map(|_| {
            let i = ((rng.next_f64() * n).floor() as usize).min(population.len() - 1);
            population[i].clone()
        })
        .collect()
}
