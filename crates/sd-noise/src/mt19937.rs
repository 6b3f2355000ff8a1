//! The 32-bit Mersenne Twister exactly as PyTorch's CPU generator runs it.
//!
//! Mirrors `aten/src/ATen/core/MT19937RNGEngine.h`: the textbook MT19937
//! (Matsumoto & Nishimura 1998) seeded with the low 32 bits of the seed.

/// Number of 32-bit words of state.
const N: usize = 624;
/// The middle word offset of the recurrence.
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A 32-bit Mersenne Twister, bit-identical to `at::mt19937`.
///
/// ```
/// use sd_noise::Mt19937;
/// // The reference value every MT19937 produces first for seed 5489.
/// assert_eq!(Mt19937::new(5489).next_u32(), 3_499_211_612);
/// ```
#[derive(Clone)]
pub struct Mt19937 {
    state: Box<[u32; N]>,
    index: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mt19937")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Mt19937 {
    /// Seeds the engine as `at::mt19937(seed)` does: only the low 32 bits count
    /// (so `torch.manual_seed(2**32 + 5)` equals `torch.manual_seed(5)`).
    ///
    /// ```
    /// use sd_noise::Mt19937;
    /// assert_eq!(Mt19937::new(7).next_u32(), Mt19937::new((1 << 32) + 7).next_u32());
    /// ```
    pub fn new(seed: u64) -> Self {
        let mut state = Box::new([0u32; N]);
        // Truncation is the point: torch keeps `seed & 0xffffffff`.
        state[0] = seed as u32;
        for j in 1..N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        Self { state, index: N }
    }

    /// Draws the next 32-bit output (`CPUGeneratorImpl::random()`).
    ///
    /// ```
    /// use sd_noise::Mt19937;
    /// let mut mt = Mt19937::new(5489);
    /// mt.next_u32();
    /// assert_eq!(mt.next_u32(), 581_869_302);
    /// ```
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// Draws 64 bits as `CPUGeneratorImpl::random64()` does: the first output is the
    /// high word, the second the low word.
    ///
    /// ```
    /// use sd_noise::Mt19937;
    /// let (mut a, mut b) = (Mt19937::new(1), Mt19937::new(1));
    /// let hi = u64::from(b.next_u32());
    /// let lo = u64::from(b.next_u32());
    /// assert_eq!(a.next_u64(), (hi << 32) | lo);
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        let lo = u64::from(self.next_u32());
        (hi << 32) | lo
    }

    /// Regenerates the 624 words of state (the "twist").
    fn twist(&mut self) {
        let s = &mut self.state;
        for i in 0..N {
            let y = (s[i] & UPPER_MASK) | (s[(i + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 0 { 0 } else { MATRIX_A };
            s[i] = s[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }
}
