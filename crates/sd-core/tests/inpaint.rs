//! End to end: inpainting (A1111 v1.10, whole picture) on the tiny models against
//! `tools/pipeline_reference.py` (`write_inpaint`): PIL for every pixel operation (mask
//! resize, "fill", overlay), numpy's rounding, k-diffusion / A1111's DDIM with A1111's mask
//! blending, diffusers' UNet (a 9-channel one in `fixtures/tiny-sd1-inpaint/`) and VAE.
//! Fixtures in `fixtures/pipeline/inpaint.safetensors` + `inpaint_cases.json`.

use std::ops::ControlFlow;

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{ROOT, relative_error};
use image::{GrayImage, RgbImage};
use sd_core::conditioning::EmbeddingLookup;
use sd_core::noise::RngSource;
use sd_core::pipeline::{
    Img2ImgInput, InpaintingFill, PilFilter, apply_overlay, fill_masked, latent_keep_mask,
    prepare_mask, resize_gray,
};
use sd_core::{GenerationRequest, StableDiffusion};
use serde::Deserialize;

/// Worst |ours − reference| over the reference's largest |value| (the bound).
/// Measured: see `every_inpainting_case_matches_the_reference`'s report (≤ 3e-6).
const LATENT_TOLERANCE: f32 = 1e-4;

/// Final pictures: the decoded latents are truncated to 8 bits (`astype(np.uint8)`), so a
/// latent off by ~1e-6 can move a pixel across an integer: at most one level, on few pixels.
const PIXEL_TOLERANCE: u8 = 1;

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
    strength: f32,
    fill: String,
    mask_blur: u32,
    #[serde(default)]
    overlaid: bool,
}

fn cases() -> Vec<Case> {
    common::pipeline_cases("inpaint_cases.json")
}

fn fixture(key: &str) -> TensorData {
    common::pipeline_fixture("inpaint.safetensors", key)
}

fn values(key: &str) -> (Vec<f32>, Vec<usize>) {
    let data = fixture(key);
    let shape: Vec<usize> = data.shape().to_vec();
    (data.try_to_vec::<f32>().expect("f32"), shape)
}

fn tensor4(key: &str) -> Tensor<4> {
    Tensor::from_data(fixture(key), &Device::default())
}

/// An `[h, w]` fixture of 0..255 values as an "L" picture.
fn gray(key: &str) -> GrayImage {
    let (v, shape) = values(key);
    GrayImage::from_raw(
        shape[1] as u32,
        shape[0] as u32,
        v.iter().map(|&x| x as u8).collect(),
    )
    .expect("gray")
}

/// An `[h, w, 3]` fixture of 0..255 values as an "RGB" picture.
fn rgb(key: &str) -> RgbImage {
    let (v, shape) = values(key);
    RgbImage::from_raw(
        shape[1] as u32,
        shape[0] as u32,
        v.iter().map(|&x| x as u8).collect(),
    )
    .expect("rgb")
}

/// Largest per-channel difference and how many channel values differ at all.
fn pixel_diff(ours: &RgbImage, reference: &RgbImage) -> (u8, usize) {
    assert_eq!(ours.dimensions(), reference.dimensions());
    ours.as_raw()
        .iter()
        .zip(reference.as_raw())
        .fold((0, 0), |(max, n), (a, b)| {
            let d = a.abs_diff(*b);
            (max.max(d), n + usize::from(d > 0))
        })
}

fn fill_mode(name: &str) -> InpaintingFill {
    match name {
        "fill" => InpaintingFill::Fill,
        "original" => InpaintingFill::Original,
        "latent noise" => InpaintingFill::LatentNoise,
        "latent nothing" => InpaintingFill::LatentNothing,
        other => panic!("unknown fill {other}"),
    }
}

/// PIL's `Image.resize` (BICUBIC / LANCZOS; down, up, one axis only, same size) to the level.
#[test]
fn pil_resize_is_pillow_exactly() {
    let src = gray("resize.src");
    for filter in ["bicubic", "lanczos"] {
        for (w, h) in [(8, 5), (50, 40), (37, 12), (64, 64)] {
            let expected = gray(&format!("resize.{filter}_{w}x{h}"));
            let f = if filter == "bicubic" {
                PilFilter::Bicubic
            } else {
                PilFilter::Lanczos
            };
            let ours = resize_gray(&src, w, h, f);
            assert_eq!(ours.as_raw(), expected.as_raw(), "{filter} {w}x{h}");
        }
    }
}

/// The latent mask: PIL's bicubic shrink of the mask, /255, `np.around`.
#[test]
fn latent_mask_is_a1111s() {
    let mask = gray("inputs.mask");
    let case = &cases()[0];
    let shrunk = resize_gray(&mask, case.width / 8, case.height / 8, PilFilter::Bicubic);
    let expected = gray(&format!("{}.latmask_u8", case.name));
    assert_eq!(shrunk.as_raw(), expected.as_raw(), "bicubic shrink");
    let keep = latent_keep_mask(&mask, case.width / 8, case.height / 8, &Device::default());
    let nmask: Tensor<4> =
        Tensor::<2>::from_data(fixture(&format!("{}.nmask", case.name)), &Device::default())
            .unsqueeze::<4>();
    let diff: f32 = (keep + nmask - 1.0).abs().max().into_scalar();
    assert_eq!(diff, 0.0, "keep = 1 − nmask exactly");
}

/// "fill" (`masking.fill`): PIL's premultiplied paste, Gaussian (extended box) blurs and
/// alpha compositing, to the level.
#[test]
fn fill_is_a1111s_to_the_level() {
    let image = rgb("inputs.init_image");
    let mask = gray("inputs.mask");
    for case in cases().iter().filter(|c| c.fill != "original") {
        let expected = rgb(&format!("{}.filled", case.name));
        let ours = fill_masked(&image, &mask);
        let (max, n) = pixel_diff(&ours, &expected);
        assert_eq!((max, n), (0, 0), "{}: fill differs", case.name);
    }
}

/// The overlay over the reference's own decoded picture, to the level.
#[test]
fn overlay_is_a1111s_to_the_level() {
    let image = rgb("inputs.init_image");
    let mask = gray("inputs.mask");
    for case in cases().iter().filter(|c| c.overlaid) {
        let prepared = prepare_mask(&mask, false, case.mask_blur, case.width, case.height);
        let decoded = rgb(&format!("{}.decoded", case.name));
        let ours = apply_overlay(&decoded, &image, &prepared.overlay);
        let expected = rgb(&format!("{}.overlaid", case.name));
        assert_eq!(pixel_diff(&ours, &expected), (0, 0), "{}", case.name);
    }
}

/// "Mask blur" has no golden data (OpenCV is not in the reference environment, so the
/// golden cases use blur 0). An impulse shows the kernel, with values worked out by hand:
/// blur 1 → `2·⌊2.5 + 0.5⌋ + 1` = 7 taps of σ = 1, normalised weights 0.39905, 0.24204,
/// 0.05400, 0.00443; × 255 = 101.8, 61.7, 13.8, 1.1. OpenCV's 8-bit path quantises the kernel
/// to 1/256 (102, 62, 14, 1; sum 256) and gives 255·k/256 rounded: the same 102, 62, 14, 1.
/// The y pass of a one-row picture mirrors onto the row itself and changes nothing.
#[test]
fn mask_blur_of_an_impulse_is_opencvs_kernel() {
    let impulse = GrayImage::from_fn(15, 1, |x, _| image::Luma([if x == 7 { 255 } else { 0 }]));
    let blurred = prepare_mask(&impulse, false, 1, 15, 1).mask;
    assert_eq!(
        blurred.as_raw(),
        &[0, 0, 0, 0, 1, 14, 62, 102, 62, 14, 1, 0, 0, 0, 0]
    );
    // The overlay mask doubles and clips.
    let overlay = prepare_mask(&impulse, false, 1, 15, 1).overlay;
    assert_eq!(
        overlay.as_raw(),
        &[0, 0, 0, 0, 2, 28, 124, 204, 124, 28, 2, 0, 0, 0, 0]
    );
}

#[test]
fn every_inpainting_case_matches_the_reference() {
    let device = Device::default();
    let sd1 = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("sd1");
    let inpaint = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1-inpaint"), &device)
        .expect("tiny-sd1-inpaint");
    let image = rgb("inputs.init_image");
    let mask = gray("inputs.mask");
    let mut report = Vec::new();
    for case in cases() {
        let model = if case.model == "tiny-sd1-inpaint" {
            &inpaint
        } else {
            &sd1
        };
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
        let input = Img2ImgInput {
            mask: Some(mask.clone()),
            mask_blur: case.mask_blur,
            inpainting_fill: fill_mode(&case.fill),
            inpainting_mask_invert: false,
            ..Img2ImgInput::new(image.clone(), case.strength)
        };
        let mut progress = |_: &sd_core::pipeline::Progress<'_>| ControlFlow::Continue(());
        let out = model
            .img2img(&params, &input, &EmbeddingLookup::new(), &mut progress)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let err = relative_error(
            out.latents.clone(),
            tensor4(&format!("{}.latents", case.name)),
        );
        report.push(format!("{}: latents {err:.2e}", case.name));
        assert!(
            err <= LATENT_TOLERANCE,
            "{}: latents off by {err:.3e} (relative)",
            case.name
        );
        if case.overlaid {
            let expected = rgb(&format!("{}.overlaid", case.name));
            let (max, n) = pixel_diff(&out.images[0], &expected);
            report.push(format!(
                "{}: picture max {max} level(s), {n} channel values differ",
                case.name
            ));
            assert!(
                max <= PIXEL_TOLERANCE,
                "{}: picture off by {max} levels",
                case.name
            );
        }
    }
    eprintln!("{}", report.join("\n"));
}
