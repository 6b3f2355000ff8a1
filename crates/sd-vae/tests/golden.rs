//! Golden tests against diffusers' `AutoencoderKL` on the tiny fixtures.
//!
//! The references (`fixtures/reference/tiny-sd{1,2}/vae.safetensors`) were written by
//! `tools/make_fixtures.py` with diffusers 0.42.1 in float32:
//!
//! ```python
//! vae["decode.image"] = pipe.vae.decode(z).sample            # z: [1, 4, 8, 8], unscaled
//! vae["decode_nonsquare.image"] = pipe.vae.decode(z2).sample # z2: [1, 4, 4, 8]
//! dist = pipe.vae.encode(x).latent_dist                       # x: [2, 3, 64, 64]
//! vae["encode.mean"], vae["encode.logvar"] = dist.mean, dist.logvar
//! ```
//!
//! Each model is loaded four ways (diffusers folder, LDM single file, standalone LDM VAE
//! without the prefix) and must reproduce the same outputs.

use std::collections::BTreeMap;

use burn::store::{ModuleStore, SafetensorsStore, bridge};
use burn::tensor::{Device, Tensor, TensorData};
use sd_vae::{AutoencoderKl, AutoencoderKlConfig, VaeError, WeightFormat};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Relative error budget: max |ours - diffusers| / max |diffusers|. Both run float32 from the
/// same (float16-representable) weights; what remains is summation order in convolutions,
/// GroupNorm and attention. Reached (flex backend, x86): at most 1.6e-6 for every output of
/// both models, whatever the file layout.
const TOLERANCE: f32 = 1e-4;

fn reference(model: &str) -> BTreeMap<String, TensorData> {
    let path = format!("{ROOT}/fixtures/reference/{model}/vae.safetensors");
    let mut store = SafetensorsStore::from_file(path);
    store
        .get_all_tensors()
        .expect("reference file")
        .iter()
        .map(|(k, t)| (k.clone(), bridge::to_data(t).expect("reference tensor")))
        .collect()
}

fn input(refs: &BTreeMap<String, TensorData>, key: &str, device: &Device) -> Tensor<4> {
    Tensor::from_data(refs[key].clone(), device)
}

/// max |actual - expected| / max |expected|, after checking the shapes agree.
fn relative_error(actual: Tensor<4>, expected: &TensorData) -> f32 {
    assert_eq!(
        actual.dims().as_slice(),
        expected.shape().as_slice(),
        "shape"
    );
    let actual = actual.into_data().try_to_vec::<f32>().expect("f32 output");
    let expected = expected.try_to_vec::<f32>().expect("f32 reference");
    let scale = expected.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = actual
        .iter()
        .zip(&expected)
        .fold(0f32, |m, (a, e)| m.max((a - e).abs()));
    diff / scale
}

/// Runs every reference through `vae` and returns the worst relative error per output.
fn check(vae: &AutoencoderKl, model: &str, device: &Device) -> [f32; 4] {
    let refs = reference(model);
    let image = vae.decode(input(&refs, "decode.latent", device));
    let decode = relative_error(image, &refs["decode.image"]);
    let image = vae.decode(input(&refs, "decode_nonsquare.latent", device));
    let nonsquare = relative_error(image, &refs["decode_nonsquare.image"]);
    let dist = vae.encode(input(&refs, "encode.image", device));
    let mean = relative_error(dist.mean, &refs["encode.mean"]);
    let logvar = relative_error(dist.logvar, &refs["encode.logvar"]);
    let errors = [decode, nonsquare, mean, logvar];
    eprintln!(
        "{model}: decode {decode:.2e}, nonsquare {nonsquare:.2e}, mean {mean:.2e}, logvar {logvar:.2e}"
    );
    for (name, err) in ["decode", "decode_nonsquare", "encode.mean", "encode.logvar"]
        .iter()
        .zip(errors)
    {
        assert!(err < TOLERANCE, "{model} {name}: relative error {err:e}");
    }
    errors
}

fn folder(model: &str, device: &Device) -> AutoencoderKl {
    let dir = format!("{ROOT}/fixtures/{model}/vae");
    let config = AutoencoderKlConfig::from_json_file(format!("{dir}/config.json")).expect("config");
    let mut store =
        SafetensorsStore::from_file(format!("{dir}/diffusion_pytorch_model.safetensors"));
    AutoencoderKl::load(&config, &mut store, WeightFormat::Diffusers, device).expect("load")
}

fn single_file(file: &str, config_dir: &str, strip_prefix: bool, device: &Device) -> AutoencoderKl {
    let config =
        AutoencoderKlConfig::from_json_file(format!("{ROOT}/{config_dir}/vae/config.json"))
            .expect("config");
    let mut store = SafetensorsStore::from_file(format!("{ROOT}/{file}"));
    if strip_prefix {
        // What a standalone `*.vae.safetensors` looks like: the same keys, no prefix.
        store = store.with_key_remapping(r"^first_stage_model\.", "");
    }
    AutoencoderKl::load(&config, &mut store, WeightFormat::Ldm, device).expect("load")
}

#[test]
fn tiny_sd1_diffusers_folder_float32() {
    let device = Device::default();
    check(&folder("tiny-sd1", &device), "tiny-sd1", &device);
}

#[test]
fn tiny_sd2_diffusers_folder_float16() {
    let device = Device::default();
    check(&folder("tiny-sd2", &device), "tiny-sd2", &device);
}

#[test]
fn tiny_sd1_ldm_single_file() {
    let device = Device::default();
    let vae = single_file(
        "crates/sd-core/assets/tiny-sd1.safetensors",
        "crates/sd-core/assets/tiny-sd1",
        false,
        &device,
    );
    check(&vae, "tiny-sd1", &device);
}

#[test]
fn tiny_sd2_ldm_single_file() {
    let device = Device::default();
    let vae = single_file(
        "fixtures/tiny-sd2.safetensors",
        "fixtures/tiny-sd2",
        false,
        &device,
    );
    check(&vae, "tiny-sd2", &device);
}

#[test]
fn tiny_sd2_standalone_vae_without_prefix() {
    let device = Device::default();
    let vae = single_file(
        "fixtures/tiny-sd2.safetensors",
        "fixtures/tiny-sd2",
        true,
        &device,
    );
    check(&vae, "tiny-sd2", &device);
}

#[test]
fn formats_are_detected_from_keys() {
    for (path, expected) in [
        (
            "fixtures/tiny-sd1/vae/diffusion_pytorch_model.safetensors",
            WeightFormat::Diffusers,
        ),
        ("fixtures/tiny-sd2.safetensors", WeightFormat::Ldm),
    ] {
        let mut store = SafetensorsStore::from_file(format!("{ROOT}/{path}"));
        let keys = store.keys().expect("keys");
        assert_eq!(
            WeightFormat::detect(keys.iter().map(String::as_str)),
            Some(expected),
            "{path}"
        );
    }
}

#[test]
fn a_renamed_key_is_reported_as_missing_and_unused() {
    let device = Device::default();
    let config =
        AutoencoderKlConfig::from_json_file(format!("{ROOT}/fixtures/tiny-sd2/vae/config.json"))
            .expect("config");
    let mut store = SafetensorsStore::from_file(format!("{ROOT}/fixtures/tiny-sd2.safetensors"))
        .with_key_remapping(
            r"decoder\.up\.0\.block\.1\.conv1\.weight",
            "decoder.up.0.block.1.conv9.weight",
        );
    let err = AutoencoderKl::load(&config, &mut store, WeightFormat::Ldm, &device)
        .expect_err("must fail");
    match &err {
        VaeError::WeightMismatch {
            missing, unused, ..
        } => {
            // LDM `up.0` is diffusers' last up block (index 3 of 4).
            assert_eq!(missing, &["decoder.up_blocks.3.resnets.1.conv1.weight"]);
            assert_eq!(
                unused,
                &["first_stage_model.decoder.up.0.block.1.conv9.weight"]
            );
        }
        other => panic!("unexpected error {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("conv9"), "{message}");
}

#[test]
fn a_wrong_architecture_is_an_error_not_a_panic() {
    let device = Device::default();
    // The tiny fixture's weights do not fit SD 1.5's channel counts.
    let mut store = SafetensorsStore::from_file(format!("{ROOT}/fixtures/tiny-sd2.safetensors"));
    let err = AutoencoderKl::load(
        &AutoencoderKlConfig::sd15(),
        &mut store,
        WeightFormat::Ldm,
        &device,
    )
    .expect_err("must fail");
    assert!(
        matches!(err, VaeError::WeightMismatch { ref errors, .. } if !errors.is_empty()),
        "{err}"
    );
}

#[test]
fn the_wrong_format_finds_nothing_to_load() {
    let device = Device::default();
    let config =
        AutoencoderKlConfig::from_json_file(format!("{ROOT}/fixtures/tiny-sd1/vae/config.json"))
            .expect("config");
    // A single file read as diffusers: its VAE keys all carry `first_stage_model.`.
    let mut store = SafetensorsStore::from_file(format!("{ROOT}/fixtures/tiny-sd2.safetensors"));
    let err = AutoencoderKl::load(&config, &mut store, WeightFormat::Diffusers, &device)
        .expect_err("must fail");
    assert!(matches!(err, VaeError::NoVaeTensors { .. }), "{err}");
}

#[test]
fn sampling_with_given_noise_is_mean_plus_std_times_noise() {
    let device = Device::default();
    let vae = folder("tiny-sd1", &device);
    let refs = reference("tiny-sd1");
    let dist = vae.encode(input(&refs, "encode.image", &device));
    let zeros = dist.sample_with_noise(dist.mean.zeros_like());
    let diff = (zeros - dist.mode()).abs().max().into_scalar::<f32>();
    assert_eq!(diff, 0.0);
    let ones = dist.sample_with_noise(dist.mean.ones_like());
    let expected = dist.mean.clone() + dist.logvar.clone().mul_scalar(0.5).exp();
    let diff = (ones - expected).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
    assert_eq!(dist.sample().dims(), dist.mean.dims());
}

#[test]
fn scaling_round_trips_with_the_config_factor() {
    let device = Device::default();
    let vae = folder("tiny-sd1", &device);
    assert_eq!(vae.scaling_factor, 0.18215);
    let z = Tensor::<4>::ones([1, 4, 2, 2], &device);
    let scaled = vae.scale_latents(z.clone());
    let value = scaled.clone().mean().into_scalar::<f32>();
    assert!((value - 0.18215).abs() < 1e-7, "{value}");
    let back = vae.unscale_latents(scaled);
    let diff = (back - z).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
}

/// Rewrites a safetensors header so that the LDM attention projections are `[C, C]` instead
/// of `[C, C, 1, 1]` (the same bytes), as some older conversions store them.
fn with_linear_attention(path: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("fixture");
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).expect("header");
    let mut changed = 0;
    for (key, entry) in header.as_object_mut().expect("object") {
        let projection = [".q.weight", ".k.weight", ".v.weight", ".proj_out.weight"];
        if key.contains(".mid.attn_1.") && projection.iter().any(|p| key.ends_with(p)) {
            let shape = entry["shape"].as_array().expect("shape")[..2].to_vec();
            entry["shape"] = serde_json::Value::Array(shape);
            changed += 1;
        }
    }
    assert_eq!(changed, 8, "four projections in each of two mid blocks");
    let mut text = serde_json::to_vec(&header).expect("json");
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    out
}

#[test]
fn ldm_attention_stored_as_linear_weights_loads_too() {
    let device = Device::default();
    let config =
        AutoencoderKlConfig::from_json_file(format!("{ROOT}/fixtures/tiny-sd2/vae/config.json"))
            .expect("config");
    let bytes = with_linear_attention(&format!("{ROOT}/fixtures/tiny-sd2.safetensors"));
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let vae = AutoencoderKl::load(&config, &mut store, WeightFormat::Ldm, &device).expect("load");
    check(&vae, "tiny-sd2", &device);
}

#[test]
fn deprecated_diffusers_attention_names_load() {
    // diffusers < 0.14 wrote `query`/`key`/`value`/`proj_attn` (SD 1.5's own vae/ folder).
    let device = Device::default();
    let dir = format!("{ROOT}/fixtures/tiny-sd1/vae");
    let config = AutoencoderKlConfig::from_json_file(format!("{dir}/config.json")).expect("config");
    let mut store =
        SafetensorsStore::from_file(format!("{dir}/diffusion_pytorch_model.safetensors"))
            .with_key_remapping(r"attentions\.0\.to_q\.", "attentions.0.query.")
            .with_key_remapping(r"attentions\.0\.to_k\.", "attentions.0.key.")
            .with_key_remapping(r"attentions\.0\.to_v\.", "attentions.0.value.")
            .with_key_remapping(r"attentions\.0\.to_out\.0\.", "attentions.0.proj_attn.");
    assert!(
        store
            .keys()
            .expect("keys")
            .iter()
            .any(|k| k.contains(".proj_attn."))
    );
    let vae =
        AutoencoderKl::load(&config, &mut store, WeightFormat::Diffusers, &device).expect("load");
    check(&vae, "tiny-sd1", &device);
}
