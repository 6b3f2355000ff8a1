//! A1111's `NV` random number source: Philox4x32-10 with Box-Muller, as
//! `modules/rng_philox.py` computes it with numpy.
//!
//! A1111 wrote it to reproduce `torch.randn(..., device="cuda")` on any machine. Each
//! value `i` of a call is one Philox block with counter `[offset, 0, i, 0]` and key
//! `[seed low 32 bits, seed high 32 bits]`; the first two outputs become one normal
//! (the sine half of Box-Muller; the other outputs are discarded). Each call advances
//! `offset` by one. Philox: Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"
//! (SC 2011).

/// Philox4x32 round multipliers.
const PHILOX_M: [u32; 2] = [0xD251_1F53, 0xCD9E_8D57];
/// Philox4x32 key schedule increments (Weyl sequence).
const PHILOX_W: [u32; 2] = [0x9E37_79B9, 0xBB67_AE85];
/// Rounds of Philox4x32-10.
const ROUNDS: usize = 10;

/// A1111's Philox generator (`rng_philox.Generator(seed)`).
///
/// ```
/// use sd_noise::PhiloxGenerator;
/// // A1111's docstring: Generator(0).randn((3, 4))[0] ~ [-0.92466, -0.42534, -2.64385, 0.14518]
/// let x = PhiloxGenerator::new(0).randn(12);
/// assert!((x[0] + 0.92466).abs() < 1e-5 && (x[3] - 0.14518).abs() < 1e-5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhiloxGenerator {
    seed: u64,
    offset: u32,
}

impl PhiloxGenerator {
    /// A generator at offset 0.
    ///
    /// ```
    /// use sd_noise::PhiloxGenerator;
    /// assert_eq!(PhiloxGenerator::new(5).offset(), 0);
    /// ```
    pub fn new(seed: u64) -> Self {
        Self { seed, offset: 0 }
    }

    /// How many `randn` calls this generator has answered (the counter's first word).
    ///
    /// ```
    /// use sd_noise::PhiloxGenerator;
    /// let mut g = PhiloxGenerator::new(5);
    /// g.randn(4);
    /// assert_eq!(g.offset(), 1);
    /// ```
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// Draws `n` standard normals (flat order of any shape with `n` elements) and
    /// advances the offset.
    ///
    /// A1111 keeps the index in one 32-bit counter word, so at most 2^32 values per call
    /// are distinct; beyond that (16 GiB of noise) the index wraps, as numpy's would.
    ///
    /// ```
    /// use sd_noise::PhiloxGenerator;
    /// let mut g = PhiloxGenerator::new(1);
    /// let (a, b) = (g.randn(8), g.randn(8));
    /// assert_ne!(a, b);
    /// ```
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        let key = [self.seed as u32, (self.seed >> 32) as u32];
        let offset = self.offset;
        self.offset = self.offset.wrapping_add(1);
        (0..n)
            .map(|i| {
                // Truncation mirrors `np.arange(n, dtype=np.uint32)`.
                let out = philox4x32_10([offset, 0, i as u32, 0], key);
                box_muller(out[0], out[1])
            })
            .collect()
    }
}

/// Philox4x32 with 10 rounds, `rng_philox.philox4_32`.
fn philox4x32_10(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    for round in 0..ROUNDS {
        let v1 = u64::from(c[0]) * u64::from(PHILOX_M[0]);
        let v2 = u64::from(c[2]) * u64::from(PHILOX_M[1]);
        c = [
            (v2 >> 32) as u32 ^ c[1] ^ k[0],
            v2 as u32,
            (v1 >> 32) as u32 ^ c[3] ^ k[1],
            v1 as u32,
        ];
        if round + 1 < ROUNDS {
            k = [
                k[0].wrapping_add(PHILOX_W[0]),
                k[1].wrapping_add(PHILOX_W[1]),
            ];
        }
    }
    c
}

/// `rng_philox.box_muller`: numpy promotes `uint32 * float32` to float64, so the
/// uniforms, the logarithm and the sine are double precision; only the result is
/// rounded to float32.
fn box_muller(x: u32, y: u32) -> f32 {
    // `np.array([2.3283064e-10], dtype=np.float32)`: the Python float rounded to
    // float (through double, as numpy does), then widened.
    let two_pow32_inv = f64::from(2.328_306_4e-10_f64 as f32);
    // `np.array([2.3283064e-10 * 6.2831855], dtype=np.float32)`: the product is taken
    // in double, then rounded to float.
    let two_pow32_inv_2pi = f64::from((2.328_306_4e-10_f64 * 6.283_185_5_f64) as f32);
    let u = f64::from(x) * two_pow32_inv + two_pow32_inv / 2.0;
    let v = f64::from(y) * two_pow32_inv_2pi + two_pow32_inv_2pi / 2.0;
    let s = (-2.0 * u.ln()).sqrt();
    (s * v.sin()) as f32
}
