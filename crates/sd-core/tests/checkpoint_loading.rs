//! `StableDiffusion::load` on every container users have: diffusers folders, single
//! `.safetensors` files, `.ckpt` pickles (made here from the bundled model with our own torch
//! writer, whose output `torch.load(weights_only=True)` accepts), hostile and broken files.

use std::ops::ControlFlow;
use std::path::Path;

use burn::tensor::Device;
use safetensors::SafeTensors;
use sd_core::conditioning::EmbeddingLookup;
use sd_core::noise::RngSource;
use sd_core::torch_file::{DType, PickleValue, TorchWriter, WriteOptions};
use sd_core::{CoreError, GenerationRequest, LoadOptions, StableDiffusion};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn quick_params() -> GenerationRequest {
    GenerationRequest {
        prompt: "a cat".into(),
        steps: 3,
        sampler: "Euler".into(),
        seed: 1,
        width: 64,
        height: 64,
        rng: RngSource::Cpu,
        ..GenerationRequest::default()
    }
}

fn latents(model: &StableDiffusion) -> Vec<f32> {
    model
        .txt2img(&quick_params(), &EmbeddingLookup::new(), &mut |_| {
            ControlFlow::Continue(())
        })
        .expect("generates")
        .latents
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32")
}

/// The bundled single file re-saved as an A1111-style `.ckpt` (`{"state_dict": ...,
/// "global_step": ...}`, fp16 tensors).
fn write_ckpt(dir: &Path) -> std::path::PathBuf {
    let bytes = sd_core::bundled::TINY_SD1.weights;
    let file = SafeTensors::deserialize(bytes).expect("bundled safetensors");
    let mut writer = TorchWriter::new();
    let mut entries = Vec::new();
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        let view = file.tensor(&name).expect("tensor");
        let dtype = match view.dtype() {
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::I64 => DType::I64,
            other => panic!("unexpected dtype {other:?}"),
        };
        let tensor = writer
            .add_tensor(dtype, view.shape(), view.data().to_vec())
            .expect("add tensor");
        entries.push((PickleValue::String(name), PickleValue::Tensor(tensor)));
    }
    let root = PickleValue::Dict(vec![
        (
            PickleValue::String("global_step".into()),
            PickleValue::Int(470_000),
        ),
        (
            PickleValue::String("state_dict".into()),
            PickleValue::Dict(entries),
        ),
    ]);
    let path = dir.join("tiny-sd1.ckpt");
    let bytes = writer
        .finish(&root, &WriteOptions::named("tiny-sd1"))
        .expect("pickle");
    std::fs::write(&path, bytes).expect("write ckpt");
    // The config folder beside it, as for the `.safetensors`.
    sd_core::bundled::TINY_SD1
        .extract_to(dir)
        .expect("extract configs");
    path
}

#[test]
fn a_ckpt_loads_like_the_safetensors_it_was_made_from() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let ckpt = write_ckpt(dir.path());
    let safetensors = dir.path().join("tiny-sd1.safetensors");
    let from_ckpt = StableDiffusion::load(&ckpt, &device).expect("ckpt loads");
    let from_safetensors = StableDiffusion::load(&safetensors, &device).expect("loads");
    // Same weights, same run: identical bits.
    assert_eq!(latents(&from_ckpt), latents(&from_safetensors));
    assert_eq!(from_ckpt.name(), "tiny-sd1");
}

#[test]
fn a_pickle_that_would_run_code_is_refused_without_running_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let evil = dir.path().join("evil.ckpt");
    std::fs::copy(format!("{ROOT}/fixtures/torch_file/malicious.pt"), &evil).expect("copy");
    let err = StableDiffusion::load(&evil, &Device::default()).expect_err("refused");
    assert!(matches!(err, CoreError::TorchFile(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("evil.ckpt"), "{message}");
    assert!(message.contains("system"), "{message}");
}

#[test]
fn truncated_and_missing_files_are_typed_errors_naming_the_file() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let full = sd_core::bundled::TINY_SD1.weights;
    for (name, len) in [
        ("cut-header.safetensors", 100),
        ("cut-data.safetensors", full.len() / 2),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &full[..len]).expect("write");
        let err = StableDiffusion::load(&path, &device).expect_err("truncated");
        assert!(err.to_string().contains(name), "{err}");
    }
    let ckpt = write_ckpt(dir.path());
    let bytes = std::fs::read(&ckpt).expect("read");
    let cut = dir.path().join("cut.ckpt");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write");
    let err = StableDiffusion::load(&cut, &device).expect_err("truncated ckpt");
    assert!(err.to_string().contains("cut.ckpt"), "{err}");
    let missing = dir.path().join("nope.safetensors");
    let err = StableDiffusion::load(&missing, &device).expect_err("missing");
    assert!(matches!(err, CoreError::Io { .. }), "{err:?}");
}

#[test]
fn a_nonstandard_single_file_without_config_says_where_to_put_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mystery.safetensors");
    std::fs::write(&path, sd_core::bundled::TINY_SD1.weights).expect("write");
    let err = StableDiffusion::load(&path, &Device::default()).expect_err("no config");
    assert!(
        matches!(err, CoreError::UnrecognisedCheckpoint { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("`mystery/`"), "{err}");
}

#[test]
fn a_separate_vae_file_replaces_the_checkpoints_own() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let weights = sd_core::bundled::TINY_SD1
        .extract_to(dir.path())
        .expect("extract");
    // The diffusers VAE of the same model, as a standalone file.
    let vae = format!("{ROOT}/fixtures/tiny-sd1/vae/diffusion_pytorch_model.safetensors");
    let with_vae = StableDiffusion::load_with(
        &weights,
        &LoadOptions {
            vae: Some(vae.into()),
            ..LoadOptions::default()
        },
        &device,
    )
    .expect("loads with a separate VAE");
    let plain = StableDiffusion::load(&weights, &device).expect("loads");
    assert_eq!(
        decode_ones(&with_vae, &device),
        decode_ones(&plain, &device)
    );
    let err = StableDiffusion::load_with(
        &weights,
        &LoadOptions {
            vae: Some(
                format!("{ROOT}/fixtures/tiny-sd1/unet/diffusion_pytorch_model.safetensors").into(),
            ),
            ..LoadOptions::default()
        },
        &device,
    )
    .expect_err("a UNet is not a VAE");
    assert!(err.to_string().contains("diffusion_pytorch_model"), "{err}");
}

/// A1111 users swap VAEs as standalone `.vae.pt` pickles (`vae-ft-mse-840000-ema-pruned.ckpt`
/// style: `{"state_dict": {"encoder.…", "decoder.…", ...}}`, LDM keys without the
/// `first_stage_model.` prefix, fp16). One made from the bundled model's own VAE must decode
/// exactly as the checkpoint's VAE.
#[test]
fn a_standalone_vae_pt_pickle_replaces_the_checkpoints_own() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let weights = sd_core::bundled::TINY_SD1
        .extract_to(dir.path())
        .expect("extract");
    let file = SafeTensors::deserialize(sd_core::bundled::TINY_SD1.weights).expect("bundled");
    let mut writer = TorchWriter::new();
    let mut state_dict = Vec::new();
    for (name, view) in file.tensors() {
        let Some(key) = name.strip_prefix("first_stage_model.") else {
            continue;
        };
        assert_eq!(view.dtype(), safetensors::Dtype::F16, "{name}");
        let tensor = writer
            .add_tensor(DType::F16, view.shape(), view.data().to_vec())
            .expect("tensor");
        state_dict.push((PickleValue::String(key.into()), PickleValue::Tensor(tensor)));
    }
    assert!(state_dict.len() > 20, "the VAE's tensors");
    let root = PickleValue::Dict(vec![(
        PickleValue::String("state_dict".into()),
        PickleValue::Dict(state_dict),
    )]);
    let bytes = writer
        .finish(&root, &WriteOptions::named("tiny"))
        .expect("pickled");
    let vae_path = dir.path().join("tiny.vae.pt");
    std::fs::write(&vae_path, bytes).expect("write");

    let with_vae = StableDiffusion::load_with(
        &weights,
        &LoadOptions {
            vae: Some(vae_path),
            ..LoadOptions::default()
        },
        &device,
    )
    .expect("loads with a standalone .vae.pt");
    let plain = StableDiffusion::load(&weights, &device).expect("loads");
    assert_eq!(
        decode_ones(&with_vae, &device),
        decode_ones(&plain, &device)
    );
}

/// The VAE's decoding of an all-ones latent: equal outputs mean equal VAE weights.
fn decode_ones(model: &StableDiffusion, device: &Device) -> Vec<f32> {
    let latent = burn::tensor::Tensor::<4>::ones([1, 4, 8, 8], device);
    model
        .vae
        .decode(latent)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32")
}

/// `with_random_weights` builds the networks an architecture describes — the loaded model's
/// parameter shapes, other values — and the result generates.
#[test]
fn random_weights_of_an_architecture_generate() {
    use burn::module::Module;
    use sd_core::ModelArchitecture;

    let device = Device::default();
    let folder = Path::new(ROOT).join("fixtures/tiny-sd1");
    let loaded = StableDiffusion::load(&folder, &device).expect("tiny-sd1 loads");
    let architecture = ModelArchitecture::from_config_dir(&folder).expect("its configs");
    let mut broken = architecture.clone();
    broken.text_encoder.vocab_size = 0;
    assert!(
        StableDiffusion::with_random_weights(broken, &device).is_err(),
        "a config that describes no network is an error"
    );
    let random = StableDiffusion::with_random_weights(architecture, &device).expect("builds");
    let describe = |model: &StableDiffusion| format!("{:?}", model.architecture());
    assert_eq!(describe(&random), describe(&loaded));
    assert_eq!(random.unet.num_params(), loaded.unet.num_params());
    assert_eq!(random.vae.num_params(), loaded.vae.num_params());
    assert_eq!(
        random.text_encoder.num_params(),
        loaded.text_encoder.num_params()
    );
    assert!(random.hash().is_none());
    let (ours, theirs) = (latents(&random), latents(&loaded));
    assert_eq!(ours.len(), theirs.len());
    assert!(ours.iter().all(|x| x.is_finite()));
    assert_ne!(ours, theirs, "random weights are not the file's");
}
