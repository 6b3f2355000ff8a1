//! The hires fix end to end against `tools/hires_reference.py` (A1111's
//! `sample_hr_pass` over k-diffusion, diffusers' networks, torch's CPU generator): every
//! model-free upscaler (the six latent modes through torch's own `interpolate`, "None",
//! "Lanczos", "Nearest" through PIL), scale and resize targets with A1111's cropping, hires
//! steps, strength, sampler, prompt, negative prompt and CFG, batches, SD1 and SD2.

use std::ops::ControlFlow;

mod common;

use burn::tensor::{Device, Tensor};
use common::{ROOT, fixture_tensor, relative_error};
use sd_core::conditioning::EmbeddingLookup;
use sd_core::noise::RngSource;
use sd_core::pipeline::{HiresFix, HiresUpscaler};
use sd_core::{GenerationRequest, StableDiffusion};
use serde::Deserialize;

/// The pipeline goldens' bound (worst |ours − reference| over the largest |reference|).
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
    hr_scale: f32,
    hr_resize_x: u32,
    hr_resize_y: u32,
    hr_upscaler: String,
    hr_second_pass_steps: usize,
    denoising_strength: f32,
    hr_sampler: Option<String>,
    hr_prompt: String,
    hr_negative_prompt: String,
    hr_cfg_scale: Option<f32>,
}

#[test]
fn hires_fix_matches_a1111s_second_pass() {
    let path = format!("{ROOT}/fixtures/hires/cases.json");
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("cases")).expect("JSON");
    let device = Device::default();
    let sd1 = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("sd1");
    let sd2 = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd2"), &device).expect("sd2");
    let mut report = Vec::new();
    for case in cases {
        let model = if case.model == "tiny-sd2" { &sd2 } else { &sd1 };
        let request = GenerationRequest {
            prompt: case.prompt.clone(),
            negative_prompt: case.negative.clone(),
            steps: case.steps,
            sampler: case.sampler.clone(),
            cfg_scale: case.cfg,
            seed: case.seed,
            width: case.width,
            height: case.height,
            batch_size: case.batch,
            rng: RngSource::Cpu,
            hires: Some(HiresFix {
                hr_scale: case.hr_scale,
                hr_resize_x: case.hr_resize_x,
                hr_resize_y: case.hr_resize_y,
                hr_upscaler: case.hr_upscaler.parse::<HiresUpscaler>().expect("upscaler"),
                hr_second_pass_steps: case.hr_second_pass_steps,
                denoising_strength: case.denoising_strength,
                hr_sampler: case.hr_sampler.clone(),
                hr_prompt: case.hr_prompt.clone(),
                hr_negative_prompt: case.hr_negative_prompt.clone(),
                hr_cfg_scale: case.hr_cfg_scale,
                ..HiresFix::default()
            }),
            ..GenerationRequest::default()
        };
        let first = model
            .txt2img(
                &GenerationRequest {
                    hires: None,
                    ..request.clone()
                },
                &EmbeddingLookup::new(),
                &mut |_| ControlFlow::Continue(()),
            )
            .expect("first pass");
        let first_err = relative_error(
            first.latents,
            Tensor::<4>::from_data(
                fixture_tensor("hires/hires.safetensors", &format!("{}.first", case.name)),
                &device,
            ),
        );
        assert!(
            first_err <= LATENT_TOLERANCE,
            "{}: first pass off by {first_err:.3e}",
            case.name
        );
        let out = model
            .txt2img(&request, &EmbeddingLookup::new(), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let reference = Tensor::<4>::from_data(
            fixture_tensor("hires/hires.safetensors", &format!("{}.latents", case.name)),
            &device,
        );
        let [_, _, h, w] = reference.dims();
        assert_eq!(
            out.images[0].dimensions(),
            (w as u32 * 8, h as u32 * 8),
            "{}",
            case.name
        );
        let err = relative_error(out.latents, reference);
        report.push(format!("{}: {err:.2e}", case.name));
        assert!(
            err <= LATENT_TOLERANCE,
            "{}: latents off by {err:.3e} (relative)",
            case.name
        );
    }
    eprintln!("{}", report.join("\n"));
}

/// The infotext carries A1111's hires keys in its order, and A1111's parser (this
/// workspace's `parse_generation_parameters`) reads them back.
#[test]
fn the_infotext_writes_and_reads_back_the_hires_keys() {
    let device = Device::default();
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("sd1");
    let request = GenerationRequest {
        prompt: "a red disc".into(),
        steps: 3,
        seed: 4,
        width: 32,
        height: 32,
        rng: RngSource::Cpu,
        hires: Some(HiresFix {
            hr_scale: 1.5,
            hr_second_pass_steps: 2,
            denoising_strength: 0.35,
            hr_upscaler: HiresUpscaler::LatentBicubicAntialiased,
            hr_sampler: Some("Euler".into()),
            hr_prompt: "a red disc, detailed".into(),
            ..HiresFix::default()
        }),
        ..GenerationRequest::default()
    };
    let out = model
        .txt2img(&request, &EmbeddingLookup::new(), &mut |_| {
            ControlFlow::Continue(())
        })
        .expect("generates");
    assert_eq!(out.images[0].dimensions(), (48, 48));
    let text = out.infotext(0, &model);
    // A1111's order: `Denoising strength` among the fixed keys (before `RNG`), the hires
    // keys from `extra_generation_params` after them.
    assert!(
        text.contains(
            "Denoising strength: 0.35, RNG: CPU, Hires sampler: Euler, Hires prompt: \"a red disc, \
             detailed\", Hires upscale: 1.5, Hires steps: 2, Hires upscaler: Latent (bicubic \
             antialiased)"
        ),
        "{text}"
    );
    // `Size` stays the first pass's, as A1111 writes it.
    assert!(text.contains("Size: 32x32"), "{text}");
    let parsed = sd_core::infotext::parse_generation_parameters(&text);
    let get = |key: &str| {
        parsed
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_text())
            .unwrap_or_else(|| panic!("{key} missing from {parsed:?}"))
    };
    assert_eq!(get("Hires upscale"), "1.5");
    assert_eq!(get("Hires steps"), "2");
    assert_eq!(get("Hires upscaler"), "Latent (bicubic antialiased)");
    assert_eq!(get("Hires sampler"), "Euler");
    assert_eq!(get("Hires prompt"), "a red disc, detailed");
    assert_eq!(get("Denoising strength"), "0.35");
}

/// Settings A1111 would crash on, or that would ask for more than the limits allow, are typed
/// errors before any work; an img2img request ignores the hires fix.
#[test]
fn hostile_hires_settings_are_refused_and_img2img_ignores_them() {
    let base = GenerationRequest {
        prompt: "a red disc <lora:x:1>".into(),
        width: 64,
        height: 64,
        ..GenerationRequest::default()
    };
    let with = |hires: HiresFix| GenerationRequest {
        hires: Some(hires),
        ..base.clone()
    };
    for (hires, field) in [
        (
            HiresFix {
                denoising_strength: 1e-30,
                ..HiresFix::default()
            },
            "steps",
        ),
        (
            HiresFix {
                denoising_strength: 0.0,
                ..HiresFix::default()
            },
            "denoising_strength",
        ),
        (
            HiresFix {
                hr_resize_x: 8,
                hr_resize_y: u32::MAX,
                ..HiresFix::default()
            },
            "hires",
        ),
        (
            HiresFix {
                hr_scale: f32::INFINITY,
                ..HiresFix::default()
            },
            "hr_scale",
        ),
        (
            HiresFix {
                hr_scale: 1e6,
                ..HiresFix::default()
            },
            "hires",
        ),
        (
            HiresFix {
                hr_prompt: "a red disc <lora:y:1>".into(),
                ..HiresFix::default()
            },
            "hr_prompt",
        ),
    ] {
        let error = with(hires.clone()).validate().expect_err("refused");
        assert!(
            error.to_string().contains(field),
            "{hires:?}: {error} (expected to name {field})"
        );
    }
    // The same tags in the hires prompt are fine.
    with(HiresFix {
        hr_prompt: "a red disc, detailed <lora:x:1>".into(),
        ..HiresFix::default()
    })
    .validate()
    .expect("same networks");

    let device = Device::default();
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("sd1");
    let request = GenerationRequest {
        prompt: "a red disc".into(),
        steps: 3,
        seed: 1,
        width: 32,
        height: 32,
        rng: RngSource::Cpu,
        hires: Some(HiresFix::default()),
        ..GenerationRequest::default()
    };
    let input = sd_core::pipeline::Img2ImgInput::new(image::RgbImage::new(32, 32), 0.5);
    let out = model
        .img2img(&request, &input, &EmbeddingLookup::new(), &mut |_| {
            ControlFlow::Continue(())
        })
        .expect("img2img");
    assert_eq!(out.images[0].dimensions(), (32, 32));
    let text = out.infotext(0, &model);
    assert!(!text.contains("Hires"), "{text}");
    assert!(text.contains("Denoising strength: 0.5"), "{text}");
}
