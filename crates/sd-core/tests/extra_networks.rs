//! End to end: txt2img with `<lora:…>` and `<hypernet:…>` tags in the prompt against
//! `tools/extra_networks_reference.py` (A1111's path: diffusers' LoRA loader fused with the
//! tag's multipliers, A1111's hypernetwork modules on every attention, the tags removed from
//! the text before it is encoded, k-diffusion's samplers, torch's CPU generator). The files
//! are the committed LoRA and hypernetwork fixtures, found by name in their folders as a
//! prompt finds them.

use std::ops::ControlFlow;

mod common;

use burn::tensor::{Device, Tensor};
use common::{ROOT, fixture_tensor, relative_error};
use sd_core::conditioning::EmbeddingLookup;
use sd_core::hypernetwork::HypernetworkLibrary;
use sd_core::lora::LoraLibrary;
use sd_core::noise::RngSource;
use sd_core::{GenerationRequest, StableDiffusion};
use serde::Deserialize;

/// The pipeline goldens' bound (worst |ours − reference| over the largest |reference|).
/// Measured 2026-12-07: 2.3e-6 (SD1, LoRA + hypernetwork, Euler a), 2.4e-6 (SD1, two
/// hypernetworks, DPM++ 2M Karras, batch 2), 3.7e-6 (SD2, UNet-only LoRA, Euler).
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
    tags: String,
    negative: String,
}

#[test]
fn prompts_with_loras_and_hypernetworks_match_a1111s_path() {
    let path = format!("{ROOT}/fixtures/extra_networks/cases.json");
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("cases")).expect("JSON");
    let loras = LoraLibrary::scan(format!("{ROOT}/fixtures/lora")).expect("LoRA folder");
    let hypernetworks =
        HypernetworkLibrary::scan(format!("{ROOT}/fixtures/hypernetwork")).expect("folder");
    let mut report = Vec::new();
    for case in cases {
        let model = StableDiffusion::load(
            format!("{ROOT}/fixtures/{}", case.model),
            &Device::default(),
        )
        .expect("model");
        // What a user types; the generation removes the tags from the text it encodes.
        let prompt = format!("{}{}", case.prompt, case.tags);
        let with_loras = loras.activate(&model, &prompt).expect("LoRAs");
        assert!(with_loras.skipped.is_empty(), "{:?}", with_loras.skipped);
        let (styled, skipped) = hypernetworks.activate(&with_loras.model, &prompt);
        assert!(skipped.is_empty(), "{skipped:?}");
        let request = GenerationRequest {
            prompt,
            negative_prompt: case.negative.clone(),
            steps: case.steps,
            sampler: case.sampler.clone(),
            cfg_scale: case.cfg,
            seed: case.seed,
            width: case.width,
            height: case.height,
            batch_size: case.batch,
            rng: RngSource::Cpu,
            ..GenerationRequest::default()
        };
        let out = styled
            .txt2img(&request, &EmbeddingLookup::new(), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let reference = Tensor::<4>::from_data(
            fixture_tensor(
                "extra_networks/latents.safetensors",
                &format!("{}.latents", case.name),
            ),
            &Device::default(),
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
