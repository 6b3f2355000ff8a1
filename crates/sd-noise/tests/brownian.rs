//! Golden tests of the Brownian tree (`BrownianTreeNoise`) against k-diffusion's
//! `BrownianTreeNoiseSampler` over torchsde's `BrownianTree`, and of numpy's `SeedSequence`
//! (fixtures/noise/brownian.*, made by tools/brownian_reference.py). The SDE samplers run
//! through sd-core's pipeline noise source are tested in sd-core (`tests/sde_samplers.rs`).

use safetensors::SafeTensors;
use sd_noise::{BrownianTreeNoise, SeedSequence};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/noise");

struct Fixture {
    index: serde_json::Value,
    bytes: Vec<u8>,
}

impl Fixture {
    fn open() -> Self {
        let index = std::fs::read_to_string(format!("{DIR}/brownian.json"))
            .expect("brownian.json: run tools/brownian_reference.py");
        Self {
            index: serde_json::from_str(&index).expect("json"),
            bytes: std::fs::read(format!("{DIR}/brownian.safetensors")).expect("safetensors"),
        }
    }

    fn get(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).expect("valid safetensors");
        let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        let v = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (t.shape().to_vec(), v)
    }
}

fn u64s(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|x| x.as_u64().expect("integer"))
        .collect()
}

fn f32_of(v: &serde_json::Value) -> f32 {
    v.as_f64().expect("number") as f32
}

#[test]
fn seed_sequence_matches_numpy() {
    let f = Fixture::open();
    for c in f.index["seed_sequence"].as_array().expect("list") {
        let key: Vec<u128> = u64s(&c["spawn_key"]).into_iter().map(u128::from).collect();
        let ss = SeedSequence::with_pool_size(
            u128::from(c["entropy"].as_u64().expect("entropy")),
            &key,
            c["pool_size"].as_u64().expect("pool") as usize,
        );
        let want: Vec<u32> = u64s(&c["state"]).into_iter().map(|v| v as u32).collect();
        assert_eq!(ss.generate_state(want.len()), want, "{c}");
    }
}

/// Every query of every case, in the order k-diffusion's samplers ask (2M SDE, DPM++ SDE),
/// then repeated, reversed, spanning and clamped ones. The tree's increments are bit-exact:
/// divided by the divisor torch used they equal the reference exactly. With our own
/// (correctly rounded) `sqrt(|σ_next − σ|)` the values differ by at most 2 float32 ulps
/// (torch's CPU sqrt is off by one ulp for about one divisor in five): reached max
/// relative error 2.1e-7 against the 1e-6 allowed.
#[test]
fn increments_match_k_diffusion() {
    let f = Fixture::open();
    let mut worst = 0f64;
    for c in f.index["raw"].as_array().expect("list") {
        let name = c["name"].as_str().expect("name");
        let shape = u64s(&c["shape"]);
        let shape = [shape[0], shape[1], shape[2]].map(|v| v as usize);
        let seeds = u64s(&c["seeds"]);
        let stride = c["stride"].as_u64().unwrap_or(1) as usize;
        let mut tree = BrownianTreeNoise::new(
            shape,
            &seeds,
            f32_of(&c["sigma_min"]),
            f32_of(&c["sigma_max"]),
        );
        assert_eq!(tree.batch(), seeds.len());
        for (k, q) in c["queries"].as_array().expect("queries").iter().enumerate() {
            let (a, b) = (f32_of(&q[0]), f32_of(&q[1]));
            let (_, want) = f.get(&format!("raw/{name}/{k}"));
            let got: Vec<f32> = tree.sample(a, b).into_iter().step_by(stride).collect();
            assert_eq!(got.len(), want.len(), "{name}/{k}");
            for (g, w) in got.iter().zip(&want) {
                let e = f64::from((g - w).abs() / w.abs().max(1e-3));
                worst = worst.max(e);
                assert!(e < 1e-6, "{name}/{k} ({a}, {b}): {g} vs {w}");
            }
            if let Some(d) = c.get("divisors") {
                let d = f32_of(&d[k]);
                let exact: Vec<f32> = tree
                    .increment(a, b)
                    .into_iter()
                    .step_by(stride)
                    .map(|v| v / d)
                    .collect();
                assert_eq!(exact, want, "{name}/{k}: increment not bit-exact");
            }
        }
    }
    println!("Brownian increments: worst relative error {worst:e}");
}
