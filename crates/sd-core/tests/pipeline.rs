//! End to end: txt2img and img2img on the tiny models against `tools/pipeline_reference.py`
//! (k-diffusion over diffusers' UNet, transformers' CLIP, A1111's DDIM and glue, torch's CPU
//! generator), fixtures in `fixtures/pipeline/`.

use std::ops::ControlFlow;

mod common;

use burn::tensor::{Device, Tensor};
use common::{ROOT, relative_error};
use sd_core::conditioning::EmbeddingLookup;
use sd_core::noise::RngSource;
use sd_core::pipeline::{Generation, Img2ImgInput};
use sd_core::{GenerationRequest, LoadOptions, StableDiffusion};
use serde::Deserialize;

/// Worst |ours − reference| over the reference's largest |value|. The bound is 1e-4.
/// Measured: 1.5e-6 to 3.3e-6 on every case (latents and decoded pixels), both models.
const LATENT_TOLERANCE: f32 = 1e-4;

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    model: String,
    sampler: String,
    steps: usize,
    cfg: f32,
    seed: i64,
    width: u32,
    height: u32,
    batch: usize,
    prompt: String,
    negative: String,
    #[serde(default)]
    strength: Option<f32>,
    #[serde(default)]
    pixels: bool,
}

fn cases() -> Vec<Case> {
    common::pipeline_cases("cases.json")
}

fn reference(key: &str) -> Tensor<4> {
    common::pipeline_tensor4("pipeline.safetensors", key)
}

/// The picture the reference starts img2img from (`init_image` in the script).
fn init_image(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let r = x * 255 / (width - 1).max(1);
        let g = y * 255 / (height - 1).max(1);
        let b = ((x / 8 + y / 8) % 2) * 200 + 30;
        image::Rgb([r as u8, g as u8, b as u8])
    })
}

fn load(name: &str) -> StableDiffusion {
    StableDiffusion::load(format!("{ROOT}/fixtures/{name}"), &Device::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run(model: &StableDiffusion, case: &Case) -> Generation {
    let params = GenerationRequest {
        prompt: case.prompt.clone(),
        negative_prompt: case.negative.clone(),
        steps: case.steps,
        sampler: case.sampler.clone(),
        cfg_scale: case.cfg,
        seed: case.seed,
        subseed: 0,
        width: case.width,
        height: case.height,
        batch_size: case.batch,
        rng: RngSource::Cpu,
        ..GenerationRequest::default()
    };
    let embeddings = EmbeddingLookup::new();
    let mut progress = |_: &sd_core::pipeline::Progress<'_>| ControlFlow::Continue(());
    match case.strength {
        None => model.txt2img(&params, &embeddings, &mut progress),
        Some(strength) => {
            let input = Img2ImgInput::new(init_image(case.width, case.height), strength);
            model.img2img(&params, &input, &embeddings, &mut progress)
        }
    }
    .unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

#[test]
fn every_case_matches_the_reference() {
    let sd1 = load("tiny-sd1");
    let sd2 = load("tiny-sd2");
    let mut report = Vec::new();
    for case in cases() {
        let model = if case.model == "tiny-sd2" { &sd2 } else { &sd1 };
        let out = run(model, &case);
        let err = relative_error(
            out.latents.clone(),
            reference(&format!("{}.latents", case.name)),
        );
        report.push(format!("{}: {err:.2e}", case.name));
        assert!(
            err <= LATENT_TOLERANCE,
            "{}: latents off by {err:.3e} (relative)",
            case.name
        );
        if case.pixels {
            let pixels = model.vae.decode(model.vae.unscale_latents(out.latents));
            let err = relative_error(pixels, reference(&format!("{}.pixels", case.name)));
            report.push(format!("{} pixels: {err:.2e}", case.name));
            assert!(
                err <= LATENT_TOLERANCE,
                "{}: pixels off by {err:.3e}",
                case.name
            );
        }
        assert_eq!(out.images.len(), case.batch);
        assert_eq!(out.images[0].dimensions(), (case.width, case.height));
    }
    eprintln!("{}", report.join("\n"));
}

/// The single-file copies (fp16, LDM keys, config folder beside or given) give the same
/// latents as the folders they were converted from.
#[test]
fn single_files_generate_what_the_folders_do() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let bundled = sd_core::bundled::TINY_SD1
        .extract_to(dir.path())
        .expect("extract");
    let sd1 = StableDiffusion::load(&bundled, &device).expect("bundled single file");
    let sd2 = StableDiffusion::load_with(
        format!("{ROOT}/fixtures/tiny-sd2.safetensors"),
        &LoadOptions {
            config_dir: Some(format!("{ROOT}/fixtures/tiny-sd2").into()),
            ..LoadOptions::default()
        },
        &device,
    )
    .expect("sd2 single file");
    for case in cases()
        .iter()
        .filter(|c| ["euler", "sd2_euler_v"].contains(&c.name.as_str()))
    {
        let model = if case.model == "tiny-sd2" { &sd2 } else { &sd1 };
        let out = run(model, case);
        let err = relative_error(out.latents, reference(&format!("{}.latents", case.name)));
        assert!(
            err <= LATENT_TOLERANCE,
            "{}: single file off by {err:.3e}",
            case.name
        );
    }
}

#[test]
fn the_initial_noise_is_torch_cpu_noise() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "euler_a_batch2")
        .expect("case");
    let shape = [4, case.height as usize / 8, case.width as usize / 8];
    let mut rng = sd_core::noise::ImageRng::new(RngSource::Cpu, shape, &[123, 124]).expect("rng");
    let ours = Tensor::<4>::from_data(
        burn::tensor::TensorData::new(rng.next(), [2, shape[0], shape[1], shape[2]]),
        &Device::default(),
    );
    let err = relative_error(ours, reference("euler_a_batch2.noise"));
    assert_eq!(err, 0.0, "torch CPU noise is bit-exact");
}

/// The infotext is A1111's: its keys, order and omissions, and it parses back to the run.
#[test]
fn the_infotext_reads_back_as_the_run() {
    let model = load("tiny-sd1");
    let case = cases()
        .into_iter()
        .find(|c| c.name == "euler_a_batch2")
        .expect("case");
    let out = run(&model, &case);
    let text = out.infotext(1, &model);
    assert_eq!(
        text,
        "portrait of an old man\nSteps: 6, Sampler: Euler a, Schedule type: Automatic, \
         CFG scale: 5, Seed: 124, Size: 64x48, Model: tiny-sd1, RNG: CPU"
    );
    let parsed = sd_core::infotext::GenerationParameters::parse(&text);
    assert_eq!(parsed.seed, Some(124));
    assert_eq!(parsed.sampler.as_deref(), Some("Euler a"));
    assert_eq!((parsed.width, parsed.height), (Some(64), Some(48)));
}

/// A checkpoint held in memory loads to the same model as its file: the same latents to the
/// bit, the same A1111 hashes; a cut image is a typed error naming it.
#[test]
fn a_checkpoint_in_memory_loads_as_its_file_does() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = sd_core::bundled::TINY_SD1
        .extract_to(dir.path())
        .expect("extract");
    let from_file = StableDiffusion::load(&file, &device).expect("file");
    let options = LoadOptions {
        config_dir: Some(file.with_extension("")),
        ..LoadOptions::default()
    };
    let bytes = std::fs::read(&file).expect("read");
    let from_bytes =
        StableDiffusion::load_bytes("tiny-sd1.safetensors", bytes.clone(), &options, &device)
            .expect("bytes");
    assert_eq!(from_bytes.name(), from_file.name());
    assert_eq!(from_bytes.hash(), from_file.hash());
    let case = cases()
        .into_iter()
        .find(|c| c.name == "euler")
        .expect("the euler case");
    let a = run(&from_file, &case).latents.into_data();
    let b = run(&from_bytes, &case).latents.into_data();
    assert_eq!(a, b);

    let cut = bytes[..bytes.len() / 2].to_vec();
    let error = StableDiffusion::load_bytes("cut.safetensors", cut, &options, &device)
        .expect_err("half a checkpoint");
    assert!(error.to_string().contains("cut.safetensors"), "{error}");
}
