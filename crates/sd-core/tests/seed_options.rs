//! A1111's seed options reaching the pipeline and the infotext: "Eta noise seed delta"
//! (ENSD), "Resize seed from" and the variation seed, end to end against
//! `tools/seed_options_reference.py` (A1111's own `modules/rng.py` `ImageRNG` feeding
//! k-diffusion's ancestral sampler over diffusers' UNet on the tiny model; fixtures in
//! `fixtures/pipeline/seed_options*`); and the `TI hashes` entry of pictures that used
//! embeddings from files.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

mod common;

use burn::tensor::{Device, Tensor};
use common::{ROOT, relative_error};
use sd_core::conditioning::EmbeddingLookup;
use sd_core::embeddings::{Embedding, EmbeddingDatabase, Vectors, write_file};
use sd_core::infotext::GenerationParameters;
use sd_core::noise::{RngSource, SeedResize};
use sd_core::{GenerationRequest, StableDiffusion};
use serde::Deserialize;
use serde_json::Value;

/// Worst |ours − reference| over the reference's largest |value|: the pipeline goldens'
/// bound (tests/pipeline.rs).
const LATENT_TOLERANCE: f32 = 1e-4;

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    model: String,
    prompt: String,
    negative: String,
    seed: i64,
    batch: usize,
    width: u32,
    height: u32,
    steps: usize,
    cfg: f32,
    sampler: String,
    eta_noise_seed_delta: u64,
    seed_resize_from: Option<[u32; 2]>,
    /// `None` when the case uses no variation seed.
    subseed: Option<i64>,
    subseed_strength: f32,
    /// The seeds A1111's `ImageRNG` got (with a variation strength, the same for every image).
    image_seeds: Vec<u64>,
    /// The entries A1111's `create_infotext` writes for these settings (`Seed resize from`,
    /// `ENSD`), absent keys meaning "not written".
    infotext: BTreeMap<String, Value>,
}

fn cases() -> Vec<Case> {
    common::pipeline_cases("seed_options_cases.json")
}

fn reference(key: &str) -> Tensor<4> {
    common::pipeline_tensor4("seed_options.safetensors", key)
}

fn params(case: &Case) -> GenerationRequest {
    GenerationRequest {
        prompt: case.prompt.clone(),
        negative_prompt: case.negative.clone(),
        steps: case.steps,
        sampler: case.sampler.clone(),
        cfg_scale: case.cfg,
        seed: case.seed,
        subseed: case.subseed.unwrap_or(0),
        subseed_strength: case.subseed_strength,
        width: case.width,
        height: case.height,
        batch_size: case.batch,
        rng: RngSource::Cpu,
        seed_resize_from: case
            .seed_resize_from
            .map(|[width, height]| SeedResize { width, height }),
        eta_noise_seed_delta: case.eta_noise_seed_delta,
        ..GenerationRequest::default()
    }
}

fn load(name: &str) -> StableDiffusion {
    StableDiffusion::load(format!("{ROOT}/fixtures/{name}"), &Device::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn ensd_and_seed_resize_match_a1111_end_to_end() {
    let model = load("tiny-sd1");
    let cases = cases();
    assert!(cases.len() >= 5, "{} cases", cases.len());
    let mut report = Vec::new();
    for case in &cases {
        assert_eq!(case.model, "tiny-sd1");
        let out = model
            .txt2img(&params(case), &EmbeddingLookup::new(), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(out.seeds, case.image_seeds, "{}: seeds", case.name);
        let err = relative_error(
            out.latents.clone(),
            reference(&format!("{}.latents", case.name)),
        );
        report.push(format!("{}: {err:.2e}", case.name));
        assert!(
            err <= LATENT_TOLERANCE,
            "{}: latents off by {err:.3e}",
            case.name
        );

        // The infotext: A1111's entries for these settings, and nothing where it writes none.
        let written = GenerationParameters::parse(&out.infotext(0, &model));
        let expected = |key: &str| {
            case.infotext
                .get(key)
                .filter(|v| !v.is_null())
                .map(value_text)
        };
        assert_eq!(
            written.seed_resize_from.map(|(w, h)| format!("{w}x{h}")),
            expected("Seed resize from"),
            "{}",
            case.name
        );
        assert_eq!(
            written.ensd.map(|d| d.to_string()),
            expected("ENSD"),
            "{}",
            case.name
        );
    }
    eprintln!("{}", report.join("\n"));
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn ensd_is_written_only_for_samplers_that_use_it() {
    let model = load("tiny-sd1");
    let run = |sampler: &str, eta: Option<f64>| {
        let params = GenerationRequest {
            prompt: "a photo".into(),
            steps: 2,
            sampler: sampler.into(),
            seed: 1,
            width: 64,
            height: 64,
            eta,
            eta_noise_seed_delta: 31337,
            ..GenerationRequest::default()
        };
        let out = model
            .txt2img(&params, &EmbeddingLookup::new(), &mut |_| {
                ControlFlow::Continue(())
            })
            .expect("generates");
        GenerationParameters::parse(&out.infotext(0, &model)).ensd
    };
    // A1111's `is_sampler_using_eta_noise_seed_delta`: `uses_ensd` in the sampler's options
    // and an η that is not 0 (the sampler's default η when none is given).
    assert_eq!(run("Euler a", None), Some(31337));
    assert_eq!(run("Euler a", Some(0.0)), None);
    assert_eq!(run("DPM++ 2S a", None), Some(31337));
    assert_eq!(run("Euler", None), None);
    assert_eq!(run("DPM++ 2M", None), None);
    assert_eq!(run("DDIM", Some(0.5)), None);
}

#[test]
fn pictures_that_used_embeddings_from_files_carry_ti_hashes() {
    let model = load("tiny-sd1");
    let dir = tempfile::tempdir().expect("temp dir");
    let dim = model.architecture().text_encoder.hidden_size;
    for (i, name) in ["red-disc", "blur:ry,"].iter().enumerate() {
        let data = (0..dim).map(|j| (j + i) as f32 * 0.01).collect();
        let e = Embedding::new(*name, Vectors::new(1, dim, data).expect("vectors"));
        // A1111 names an embedding after its file.
        write_file(&dir.path().join(format!("{name}.pt")), &e).expect("writes");
    }
    let db = EmbeddingDatabase::load_dirs(&[dir.path().to_path_buf()], Some(dim));
    assert_eq!(db.names().len(), 2, "{:?}", db.skipped());
    let lookup = db.lookup(&model.tokenizer).expect("lookup");
    let hash = |name: &str| db.get(name).expect("loaded").shorthash().to_owned();
    let run = |prompt: &str, negative: &str| {
        let params = GenerationRequest {
            prompt: prompt.into(),
            negative_prompt: negative.into(),
            steps: 1,
            sampler: "Euler".into(),
            seed: 1,
            width: 64,
            height: 64,
            ..GenerationRequest::default()
        };
        let out = model
            .txt2img(&params, &lookup, &mut |_| ControlFlow::Continue(()))
            .expect("generates");
        let text = out.infotext(0, &model);
        (GenerationParameters::parse(&text), text)
    };
    let (written, text) = run("a photo of red-disc", "");
    assert_eq!(
        written.extra_value("TI hashes"),
        Some(format!("red-disc: {}", hash("red-disc")).as_str()),
        "{text}"
    );
    assert!(
        text.contains(&format!("TI hashes: \"red-disc: {}\"", hash("red-disc"))),
        "quoted as A1111 quotes values with ':' and ',': {text}"
    );
    // A1111 encodes the negative prompt first and puts each later pass's list before the
    // earlier value; names lose ':' and ','.
    let (written, text) = run("red-disc", "blur:ry, red-disc");
    let expected = format!(
        "red-disc: {r}, blurry: {b}, red-disc: {r}",
        r = hash("red-disc"),
        b = hash("blur:ry,")
    );
    assert_eq!(
        written.extra_value("TI hashes"),
        Some(expected.as_str()),
        "{text}"
    );
    // No embedding used: no entry.
    let (written, _) = run("a photo", "");
    assert_eq!(written.extra_value("TI hashes"), None);
}
