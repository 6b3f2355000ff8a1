//! The fuzz targets' short mode, on the stable toolchain (CI runs it with the other tests).
//!
//! For each target of `sd_fuzz`: every file of `fuzz/regressions/<target>/` (inputs that once
//! crashed it), every file of `fuzz/corpus/<target>/` (the seeds), then a deterministic
//! mutation loop over the corpus — bit flips, interesting bytes and integers (`0xFF..`, huge
//! lengths), inserts, deletes, duplicated ranges, truncation, splices of two corpus files and
//! syntax tokens for the text targets — for a fixed number of inputs. A failing input is saved
//! under the test's temporary folder (`target/tmp/short_fuzz/`) and its path printed; copy it
//! to `fuzz/regressions/<target>/` once the bug is fixed.
//!
//! `SD_FUZZ_ITERATIONS=<n>` overrides every target's count (e.g. a longer local run);
//! `SD_FUZZ_SEED=<n>` varies the mutations.
//!
//! The long runs use libFuzzer: see `fuzz/README.md`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes a fuzzer tries first: boundaries of signed and unsigned integers.
const INTERESTING_8: [u8; 9] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x40, 0xFE];
const INTERESTING_32: [u32; 8] = [
    0,
    1,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x0000_FFFF,
    0x0001_0000,
    100_000_001,
];
const INTERESTING_64: [u64; 5] = [u64::MAX, i64::MAX as u64, 1 << 60, 1 << 32, 100_000_001];
/// Syntax of the text formats (prompts, infotexts, schedules, JSON, pickles' strings).
const TOKENS: [&[u8]; 24] = [
    b"[",
    b"]",
    b"(",
    b")",
    b":",
    b"|",
    b" AND ",
    b"BREAK",
    b"\\",
    b",",
    b"\"",
    b"\n",
    b"Negative prompt: ",
    b"Steps: 20, ",
    b"Size: 512x512",
    b"1e308",
    b"-1",
    b"nan",
    b"{",
    b"}",
    b"TORCHTENSOR",
    b"_",
    b"\xc3\xa9",
    b"\xe2\x80\xa8",
];

/// The largest input the loop builds.
const MAX_LEN: usize = 64 * 1024;

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(12) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING_8[rng.below(INTERESTING_8.len())];
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = INTERESTING_32[rng.below(INTERESTING_32.len())];
                let b = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                input[i..i + 4].copy_from_slice(&b);
            }
            3 if len >= 8 => {
                let i = rng.below(len - 7);
                let v = INTERESTING_64[rng.below(INTERESTING_64.len())];
                input[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            4 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(i..i, bytes);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                input.drain(i..i + n);
            }
            6 if len > 0 => {
                let keep = rng.below(len);
                input.truncate(keep);
            }
            7 if !corpus.is_empty() => {
                // Splice: a prefix of this input, a suffix of another.
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            8 if len > 0 => {
                // Duplicate a range (repeated chunks, nested brackets).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let copy = input[i..i + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, copy);
            }
            9 | 10 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, token.iter().copied());
            }
            _ if len > 0 => {
                // Copy a range over another place (keeps the length).
                let i = rng.below(len);
                let j = rng.below(len);
                let n = 1 + rng.below((len - i.max(j)).min(32));
                let copy = input[i..i + n].to_vec();
                input[j..j + n].copy_from_slice(&copy);
            }
            _ => input.push(rng.next() as u8),
        }
        input.truncate(MAX_LEN);
    }
}

fn workspace_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The files of a folder, sorted by name (missing folder: none).
fn read_folder(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != "README.md"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read corpus file");
            (p, bytes)
        })
        .collect()
}

/// Runs `target` on `input`; on a panic saves the input and fails with where it is.
fn run_one(name: &str, target: fn(&[u8]), input: &[u8], what: &str) {
    let started = std::time::Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| target(input)));
    let took = started.elapsed();
    if took > SLOW {
        // Not a failure (a decoder may take this long on a picture it is allowed to decode),
        // but worth a look: save it like libFuzzer's slow units.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("short_fuzz");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("slow-{name}-{}", input.len()));
        let _ = std::fs::write(&path, input);
        eprintln!(
            "{name}: {what} took {took:.2?}; input saved to {}",
            path.display()
        );
    }
    if result.is_err() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("short_fuzz");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("crash-{name}"));
        let _ = std::fs::write(&path, input);
        panic!(
            "target `{name}` panicked on {what} ({} bytes); input saved to {}",
            input.len(),
            path.display()
        );
    }
}

/// An input taking longer than this is reported (see [`run_one`]).
const SLOW: std::time::Duration = std::time::Duration::from_secs(1);

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

fn short_fuzz(name: &str, target: fn(&[u8]), iterations: u64) {
    let started = std::time::Instant::now();
    let regressions = read_folder(&workspace_dir(&format!("fuzz/regressions/{name}")));
    for (path, bytes) in &regressions {
        run_one(
            name,
            target,
            bytes,
            &format!("regression {}", path.display()),
        );
    }
    let corpus_files = read_folder(&workspace_dir(&format!("fuzz/corpus/{name}")));
    assert!(
        !corpus_files.is_empty(),
        "fuzz/corpus/{name} holds the target's seeds"
    );
    for (path, bytes) in &corpus_files {
        run_one(
            name,
            target,
            bytes,
            &format!("corpus file {}", path.display()),
        );
    }
    let corpus: Vec<Vec<u8>> = corpus_files
        .into_iter()
        .chain(regressions)
        .map(|(_, b)| b)
        .collect();

    let iterations = env_u64("SD_FUZZ_ITERATIONS").unwrap_or(iterations);
    // The seed depends on the target's name, so each target mutates differently.
    let seed = name
        .bytes()
        .fold(env_u64("SD_FUZZ_SEED").unwrap_or(0x5DF5), |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
        });
    let mut rng = Rng::new(seed);
    for i in 0..iterations {
        let mut input = if rng.below(16) == 0 {
            Vec::new()
        } else {
            corpus[rng.below(corpus.len())].clone()
        };
        mutate(&mut rng, &mut input, &corpus);
        run_one(name, target, &input, &format!("mutation {i}"));
    }
    eprintln!(
        "{name}: {} regressions, {} corpus files, {iterations} mutations in {:.2?}",
        read_folder(&workspace_dir(&format!("fuzz/regressions/{name}"))).len(),
        corpus.len(),
        started.elapsed()
    );
}

macro_rules! short_fuzz_tests {
    ($($target:ident: $iterations:expr,)*) => {
        $(
            #[test]
            fn $target() {
                short_fuzz(stringify!($target), sd_fuzz::$target, $iterations);
            }
        )*
    };
}

// Counts sized for about 1–3 s each in a dev build on 2 cores.
short_fuzz_tests! {
    prompt: 100_000,
    pickle: 100_000,
    torch_zip: 40_000,
    safetensors_header: 200_000,
    embedding_png_text: 10_000,
    embedding_png_pixels: 4_000,
    infotext: 20_000,
    lr_schedule: 200_000,
    preprocess_image: 40_000,
    tokenizer: 20_000,
}

/// Writes the seeds of the two PNG embedding targets that come from our own writer (the rest
/// come from `fuzz/make_seeds.py`). Run it after changing the formats:
/// `cargo test -p sd-fuzz --test short_fuzz -- --ignored make_embedding_seeds`.
#[test]
#[ignore = "writes fuzz/corpus seeds; run by hand"]
fn make_embedding_seeds() {
    use sd_core::embeddings::{
        Embedding, Vectors,
        formats::{png_pixels, png_text},
    };
    let dir = workspace_dir("fuzz/corpus/embedding_png_pixels");
    std::fs::create_dir_all(&dir).expect("corpus folder");
    let vectors = |n: usize, dim: usize| {
        let data = (0..n * dim).map(|i| (i as f32 * 0.37).sin()).collect();
        Vectors::new(n, dim, data).expect("vectors")
    };
    let mut made = 0;
    for (i, (n, dim, height)) in [(1, 4, 8), (2, 3, 4), (1, 8, 12)].into_iter().enumerate() {
        let mut e = Embedding::new(format!("seed-{i}"), vectors(n, dim));
        e.step = Some(100 + i as i64);
        let path = Path::new("seed.png");
        let json = png_text::to_json(path, &e).expect("json");
        let compressed = png_pixels::compress(json.as_bytes());
        let picture = png_pixels::RgbImage {
            width: 3,
            height,
            pixels: (0..3 * height * 3)
                .map(|k| 0x31 + (k % 7) as u8 * 0x11)
                .collect(),
        };
        let style = png_pixels::edge_style(&e.vectors.data);
        let out = png_pixels::insert_data(&picture, &compressed, &style);
        assert!(out.width <= 64, "the target reads widths up to 64");
        // The seed must be one the reader decodes, or it seeds nothing.
        let png =
            sd_infotext::encode_png_rgb8(out.width as u32, out.height as u32, &out.pixels, &[])
                .expect("png");
        if sd_core::embeddings::read_bytes(path, png).is_err() {
            continue;
        }
        let mut seed = vec![(out.width - 1) as u8];
        seed.extend_from_slice(&out.pixels);
        std::fs::write(dir.join(format!("writer-{i}")), seed).expect("write seed");
        made += 1;
    }
    assert!(made >= 2, "at least two pixel seeds decode");
}
