//! numpy's `SeedSequence` (`numpy/random/bit_generator.pyx`, numpy ≥ 1.19): the integer
//! hashing that turns torchsde's entropy and a tree node's spawn key into that node's seeds.

/// `DEFAULT_POOL_SIZE` of numpy; torchsde's `BrownianTree` asks for 24.
const DEFAULT_POOL_SIZE: usize = 4;
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
/// `XSHIFT = 4 * 8 // 2`: half the bits of a 32-bit word.
const XSHIFT: u32 = 16;

/// numpy's `SeedSequence(entropy, spawn_key=..., pool_size=...)`, reduced to what torchsde
/// uses: the mixed entropy pool and [`generate_state`](Self::generate_state) as `uint32`.
///
/// ```
/// use sd_noise::SeedSequence;
/// // numpy: np.random.SeedSequence(0).generate_state(2) -> [2968811710, 3677149159]
/// assert_eq!(SeedSequence::new(0, &[]).generate_state(2), [2_968_811_710, 3_677_149_159]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSequence {
    pool: Vec<u32>,
}

impl SeedSequence {
    /// `SeedSequence(entropy, spawn_key=spawn_key)` with numpy's default pool of 4 words.
    pub fn new(entropy: u128, spawn_key: &[u128]) -> Self {
        Self::with_pool_size(entropy, spawn_key, DEFAULT_POOL_SIZE)
    }

    /// `SeedSequence(entropy, spawn_key=spawn_key, pool_size=pool_size)`.
    ///
    /// Integers become little-endian 32-bit words (`0` is one zero word); when there is a
    /// spawn key and the entropy has fewer words than the pool, the entropy is padded with
    /// zeros to the pool size first (numpy ≥ 1.19, gh-16539).
    pub fn with_pool_size(entropy: u128, spawn_key: &[u128], pool_size: usize) -> Self {
        let mut words = int_to_words(entropy);
        if !spawn_key.is_empty() && words.len() < pool_size {
            words.resize(pool_size, 0);
        }
        for &k in spawn_key {
            words.extend(int_to_words(k));
        }
        Self {
            pool: mix_entropy(pool_size, &words),
        }
    }

    /// `generate_state(n_words)` with `dtype=np.uint32`.
    pub fn generate_state(&self, n_words: usize) -> Vec<u32> {
        let mut hash_const = INIT_B;
        self.pool
            .iter()
            .cycle()
            .take(n_words)
            .map(|&word| {
                let mut v = word ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect()
    }
}

/// `_int_to_uint32_array`: little-endian 32-bit words, `[0]` for zero.
fn int_to_words(mut n: u128) -> Vec<u32> {
    if n == 0 {
        return vec![0];
    }
    let mut words = Vec::new();
    while n > 0 {
        words.push(n as u32);
        n >>= 32;
    }
    words
}

/// `hashmix`, with the multiplier it carries from call to call.
fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut v = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash_const);
    v ^ (v >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// `SeedSequence.mix_entropy` into a fresh pool of `pool_size` words.
fn mix_entropy(pool_size: usize, entropy: &[u32]) -> Vec<u32> {
    let mut hash_const = INIT_A;
    let mut mixer: Vec<u32> = (0..pool_size)
        .map(|i| hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash_const))
        .collect();
    for i_src in 0..pool_size {
        for i_dst in 0..pool_size {
            if i_src != i_dst {
                let h = hashmix(mixer[i_src], &mut hash_const);
                mixer[i_dst] = mix(mixer[i_dst], h);
            }
        }
    }
    for &word in entropy.iter().skip(pool_size) {
        for slot in mixer.iter_mut() {
            let h = hashmix(word, &mut hash_const);
            *slot = mix(*slot, h);
        }
    }
    mixer
}
