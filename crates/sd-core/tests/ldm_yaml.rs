//! A1111's `<checkpoint>.yaml` (LDM inference configs) beside single-file checkpoints: the
//! published yamls describe exactly the architectures recognised from standard shapes, a yaml
//! for the tiny models builds the same networks as their diffusers config folders, and what
//! cannot be built is an error naming the yaml.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor};
use sd_core::checkpoint::{ModelFamily, SafetensorsHeader};
use sd_core::model::TensorShapes;
use sd_core::sd_clip::ClipTextConfig;
use sd_core::sd_schedulers::Prediction;
use sd_core::sd_unet::UNetConfig;
use sd_core::sd_vae::AutoencoderKlConfig;
use sd_core::{CoreError, LoadOptions, ModelArchitecture, StableDiffusion};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn yaml_fixture(name: &str) -> PathBuf {
    Path::new(ROOT).join("fixtures/ldm_yaml").join(name)
}

const CONV_IN: &str = "model.diffusion_model.input_blocks.0.0.weight";
const ATTN2_K: &str =
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight";

/// The shapes `recognise` reads, plus a full-size text encoder's: OpenAI CLIP ViT-L/14
/// (SD 1.x) or OpenCLIP ViT-H/14 with its 24 layers (SD 2.x).
fn standard_shapes(family: ModelFamily, in_channels: usize) -> TensorShapes {
    let mut shapes = TensorShapes::new();
    shapes.insert(CONV_IN.into(), vec![320, in_channels, 3, 3]);
    match family {
        ModelFamily::Sd1 => {
            let p = "cond_stage_model.transformer.text_model.";
            shapes.insert(ATTN2_K.into(), vec![320, 768]);
            shapes.insert(
                format!("{p}embeddings.token_embedding.weight"),
                vec![49408, 768],
            );
            shapes.insert(
                format!("{p}embeddings.position_embedding.weight"),
                vec![77, 768],
            );
            for i in 0..12 {
                shapes.insert(
                    format!("{p}encoder.layers.{i}.mlp.fc1.weight"),
                    vec![3072, 768],
                );
            }
            shapes.insert(format!("{p}final_layer_norm.weight"), vec![768]);
        }
        _ => {
            let p = "cond_stage_model.model.";
            shapes.insert(ATTN2_K.into(), vec![320, 1024]);
            shapes.insert(format!("{p}token_embedding.weight"), vec![49408, 1024]);
            shapes.insert(format!("{p}positional_embedding"), vec![77, 1024]);
            for i in 0..24 {
                shapes.insert(
                    format!("{p}transformer.resblocks.{i}.mlp.c_fc.weight"),
                    vec![4096, 1024],
                );
            }
            shapes.insert(format!("{p}ln_final.weight"), vec![1024]);
        }
    }
    shapes
}

fn assert_same(actual: &ModelArchitecture, expected: &ModelArchitecture) {
    assert_eq!(actual.family, expected.family);
    assert_eq!(actual.prediction, expected.prediction);
    assert_eq!(actual.text_encoder, expected.text_encoder);
    assert_eq!(actual.unet, expected.unet);
    assert_eq!(actual.vae, expected.vae);
    assert_eq!(actual.noise_schedule, expected.noise_schedule);
}

#[test]
fn the_published_yamls_describe_the_standard_architectures() {
    for (yaml, family, in_channels, prediction, unet, vae, text) in [
        (
            "v1-inference.yaml",
            ModelFamily::Sd1,
            4,
            Prediction::Epsilon,
            UNetConfig::sd15(),
            AutoencoderKlConfig::sd15(),
            ClipTextConfig::sd15(),
        ),
        (
            "v1-inpainting-inference.yaml",
            ModelFamily::Sd1,
            9,
            Prediction::Epsilon,
            UNetConfig::sd15_inpainting(),
            AutoencoderKlConfig::sd15(),
            ClipTextConfig::sd15(),
        ),
        (
            "v2-inference-v.yaml",
            ModelFamily::Sd2,
            4,
            Prediction::V,
            UNetConfig::sd21(),
            AutoencoderKlConfig::sd21(),
            ClipTextConfig::sd21(),
        ),
    ] {
        let shapes = standard_shapes(family, in_channels);
        let path = yaml_fixture(yaml);
        let from_yaml = ModelArchitecture::from_ldm_yaml(&path, &shapes).expect(yaml);
        let mut recognised =
            ModelArchitecture::recognise(Path::new("model.safetensors"), &shapes).expect(yaml);
        // Identical shapes for SD 2.x ε and v: `load` probes the UNet, the yaml says it.
        recognised.prediction = prediction;
        assert_same(&from_yaml, &recognised);
        assert_eq!(from_yaml.family, family, "{yaml}");
        assert_eq!(from_yaml.unet, unet, "{yaml}");
        assert_eq!(from_yaml.vae, vae, "{yaml}");
        assert_eq!(from_yaml.text_encoder, text, "{yaml}");
        // Without shapes the text encoder is the family's preset too.
        let text_only = std::fs::read_to_string(&path).expect("read");
        let bare =
            ModelArchitecture::from_ldm_yaml_str(&text_only, &TensorShapes::new()).expect(yaml);
        assert_same(&bare, &recognised);
    }
}

/// One UNet call and one VAE decode on fixed inputs.
fn run_unet_and_vae(model: &StableDiffusion, device: &Device) -> (Vec<f32>, Vec<f32>) {
    let width = model.architecture().unet.cross_attention_dim;
    let sample = Tensor::<1, Int>::arange(0..(4 * 8 * 8), device)
        .float()
        .mul_scalar(0.37)
        .sin()
        .reshape([1, 4, 8, 8]);
    let context = Tensor::<1, Int>::arange(0..(77 * width as i64), device)
        .float()
        .mul_scalar(0.11)
        .cos()
        .reshape([1, 77, width]);
    let timesteps = Tensor::<1>::from_floats([500.0], device);
    let eps = model
        .unet
        .forward(sample.clone(), timesteps, context)
        .expect("unet forward")
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    let image = model
        .vae
        .decode(sample)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    (eps, image)
}

/// `sample_size` is informative; the yaml path takes the family's (see `from_ldm_yaml`).
fn without_sample_sizes(arch: &ModelArchitecture) -> (UNetConfig, AutoencoderKlConfig) {
    let mut unet = arch.unet.clone();
    let mut vae = arch.vae.clone();
    unet.sample_size = None;
    vae.sample_size = 0;
    (unet, vae)
}

#[test]
fn a_yaml_beside_the_tiny_sd1_file_builds_the_networks_of_its_config_folder() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let with_folder = sd_core::bundled::TINY_SD1
        .extract_to(dir.path().join("folder"))
        .expect("extract");
    let yaml_dir = dir.path().join("yaml");
    std::fs::create_dir_all(&yaml_dir).expect("mkdir");
    let with_yaml = yaml_dir.join("tiny.safetensors");
    std::fs::write(&with_yaml, sd_core::bundled::TINY_SD1.weights).expect("write");
    std::fs::copy(yaml_fixture("tiny-sd1.yaml"), yaml_dir.join("tiny.yaml")).expect("copy");

    let reference = StableDiffusion::load(&with_folder, &device).expect("folder config");
    let model = StableDiffusion::load(&with_yaml, &device).expect("yaml config");
    let (arch, expected) = (model.architecture(), reference.architecture());
    assert_eq!(arch.family, ModelFamily::Sd1);
    assert_eq!(arch.prediction, expected.prediction);
    assert_eq!(arch.noise_schedule, expected.noise_schedule);
    assert_eq!(without_sample_sizes(arch), without_sample_sizes(expected));
    // Same weights, same networks: identical bits.
    assert_eq!(
        run_unet_and_vae(&model, &device),
        run_unet_and_vae(&reference, &device)
    );
    // The yaml cannot state the text encoder's heads: its width (32) is not a multiple of
    // CLIP's 64-wide heads, so it gets one head where the folder says 4. Everything the
    // shapes tell agrees, and the weights load.
    let (text, expected_text) = (&arch.text_encoder, &expected.text_encoder);
    assert_eq!(text.num_attention_heads, 1);
    assert_eq!(expected_text.num_attention_heads, 4);
    assert_eq!(
        (
            text.hidden_size,
            text.intermediate_size,
            text.num_hidden_layers,
            text.vocab_size,
            text.max_position_embeddings
        ),
        (
            expected_text.hidden_size,
            expected_text.intermediate_size,
            expected_text.num_hidden_layers,
            expected_text.vocab_size,
            expected_text.max_position_embeddings
        )
    );
    assert_eq!(model.text_encoder.num_layers(), 3);
}

#[test]
fn a_v_prediction_yaml_beside_the_tiny_sd2_file_builds_its_networks() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let with_yaml = dir.path().join("tiny-v.safetensors");
    std::fs::copy(format!("{ROOT}/fixtures/tiny-sd2.safetensors"), &with_yaml).expect("copy");
    std::fs::copy(
        yaml_fixture("tiny-sd2.yaml"),
        dir.path().join("tiny-v.yaml"),
    )
    .expect("copy");
    // The fixture sits beside its diffusers config folder `fixtures/tiny-sd2/`.
    let reference = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd2.safetensors"), &device)
        .expect("folder config");
    let model = StableDiffusion::load(&with_yaml, &device).expect("yaml config");
    let (arch, expected) = (model.architecture(), reference.architecture());
    assert_eq!(arch.family, ModelFamily::Sd2);
    assert_eq!(arch.prediction, Prediction::V);
    assert_eq!(expected.prediction, Prediction::V);
    assert_eq!(without_sample_sizes(arch), without_sample_sizes(expected));
    assert_eq!(
        run_unet_and_vae(&model, &device),
        run_unet_and_vae(&reference, &device)
    );
    // 4 OpenCLIP layers in the file, the penultimate one is the output: 3 kept.
    assert_eq!(arch.text_encoder.num_hidden_layers, 3);
    assert_eq!(arch.text_encoder.hidden_size, 32);
}

#[test]
fn the_yaml_comes_before_the_folder_and_an_explicit_config_before_both() {
    let device = Device::default();
    let dir = tempfile::tempdir().expect("temp dir");
    let weights = sd_core::bundled::TINY_SD1
        .extract_to(dir.path())
        .expect("extract");
    // A1111's order: `tiny-sd1.yaml` beside the file wins over the `tiny-sd1/` folder.
    std::fs::copy(
        yaml_fixture("tiny-sd1.yaml"),
        dir.path().join("tiny-sd1.yaml"),
    )
    .expect("copy");
    let heads = |options: &LoadOptions| {
        StableDiffusion::load_with(&weights, options, &device)
            .expect("loads")
            .architecture()
            .text_encoder
            .num_attention_heads
    };
    // One head: the yaml (width / 64 rule); four: the folder's config.json.
    assert_eq!(heads(&LoadOptions::default()), 1);
    let folder = LoadOptions {
        config_dir: Some(dir.path().join("tiny-sd1")),
        ..LoadOptions::default()
    };
    assert_eq!(heads(&folder), 4);
    // `config_dir` may name a yaml file too (the examples' `--config`).
    let other = dir.path().join("elsewhere");
    std::fs::create_dir_all(&other).expect("mkdir");
    let moved = other.join("custom.yml");
    std::fs::rename(dir.path().join("tiny-sd1.yaml"), &moved).expect("move");
    assert_eq!(heads(&LoadOptions::default()), 4);
    let yaml = LoadOptions {
        config_dir: Some(moved),
        ..LoadOptions::default()
    };
    assert_eq!(heads(&yaml), 1);
}

#[test]
fn a_nonstandard_file_without_config_suggests_a1111s_yaml() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mystery.safetensors");
    std::fs::write(&path, sd_core::bundled::TINY_SD1.weights).expect("write");
    let err = StableDiffusion::load(&path, &Device::default()).expect_err("no config");
    assert!(err.to_string().contains("`mystery.yaml`"), "{err}");
}

/// The error of `from_ldm_yaml` on `text` written to `name`, and through `load` beside the
/// tiny model.
fn yaml_error(name: &str, text: &str) -> (PathBuf, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    let err = ModelArchitecture::from_ldm_yaml(&path, &TensorShapes::new()).expect_err(name);
    let CoreError::InvalidConfig {
        path: named,
        reason,
        ..
    } = &err
    else {
        panic!("not InvalidConfig: {err:?}");
    };
    assert_eq!(named, &path);
    assert!(err.to_string().contains(name), "{err}");
    // The same through `load`, with the yaml beside a checkpoint.
    let weights = dir
        .path()
        .join(Path::new(name).with_extension("safetensors"));
    std::fs::write(&weights, sd_core::bundled::TINY_SD1.weights).expect("write");
    let load_err = StableDiffusion::load(&weights, &Device::default()).expect_err("load");
    assert!(
        matches!(&load_err, CoreError::InvalidConfig { path: p, .. } if p == &path),
        "{load_err:?}"
    );
    (path, reason.clone())
}

fn tiny_yaml() -> String {
    std::fs::read_to_string(yaml_fixture("tiny-sd1.yaml")).expect("read")
}

#[test]
fn a_malformed_yaml_is_an_invalid_config_naming_the_file() {
    let (_, reason) = yaml_error("broken.yaml", "model:\n  target: [unclosed\n  params: {\n");
    assert!(reason.contains("not valid YAML"), "{reason}");
    let (_, reason) = yaml_error("list.yaml", "- just\n- a list\n");
    assert!(reason.contains("not a mapping"), "{reason}");
}

#[test]
fn an_unsupported_parameterization_names_the_field() {
    let text = tiny_yaml().replace(
        "  params:\n    linear_start",
        "  params:\n    parameterization: \"x0\"\n    linear_start",
    );
    let (_, reason) = yaml_error("x0.yaml", &text);
    assert!(
        reason.contains("`model.params.parameterization: \"x0\"`"),
        "{reason}"
    );
}

#[test]
fn a_missing_unet_config_names_the_field() {
    let text = tiny_yaml();
    let start = text.find("    unet_config:").expect("unet_config");
    let end = text
        .find("    first_stage_config:")
        .expect("first_stage_config");
    let text = format!("{}{}", &text[..start], &text[end..]);
    let (_, reason) = yaml_error("no-unet.yaml", &text);
    assert!(
        reason.contains("`model.params.unet_config` is missing"),
        "{reason}"
    );
}

#[test]
fn what_this_crate_does_not_build_is_refused_by_name() {
    for (from, to, field) in [
        (
            "ldm.models.diffusion.ddpm.LatentDiffusion",
            "sgm.models.diffusion.DiffusionEngine",
            "model.target",
        ),
        (
            "openaimodel.UNetModel",
            "openaimodel.EncoderUNetModel",
            "model.params.unet_config.target",
        ),
        (
            "        legacy: False",
            "        num_classes: sequential\n        adm_in_channels: 2816",
            "model.params.unet_config.params.num_classes",
        ),
        (
            "        legacy: False",
            "        use_scale_shift_norm: True",
            "model.params.unet_config.params.use_scale_shift_norm",
        ),
        (
            "FrozenCLIPEmbedder",
            "BertSeriesModelWithTransformation",
            "model.params.cond_stage_config.target",
        ),
        (
            "          attn_resolutions: []",
            "          attn_resolutions: [ 16 ]",
            "model.params.first_stage_config.params.ddconfig.attn_resolutions",
        ),
        (
            "    conditioning_key: crossattn",
            "    conditioning_key: hybrid",
            "model.params.conditioning_key",
        ),
        (
            "        context_dim: 32",
            "        context_dim: 64",
            "model.params.unet_config.params.context_dim",
        ),
    ] {
        let text = tiny_yaml().replace(from, to);
        assert_ne!(text, tiny_yaml(), "{from}");
        let err =
            ModelArchitecture::from_ldm_yaml_str(&text, &TensorShapes::new()).expect_err(field);
        assert!(matches!(err, CoreError::InvalidConfig { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&format!("`{field}")),
            "{field}: {err}"
        );
    }
}

#[test]
fn the_text_encoder_family_must_match_the_weights() {
    let header =
        SafetensorsHeader::read(format!("{ROOT}/fixtures/tiny-sd2.safetensors")).expect("header");
    let shapes: TensorShapes = header
        .tensors
        .into_iter()
        .map(|(name, info)| (name, info.shape))
        .collect();
    let err = ModelArchitecture::from_ldm_yaml_str(&tiny_yaml(), &shapes).expect_err("SD 1 yaml");
    let message = err.to_string();
    assert!(message.contains("cond_stage_config.target"), "{message}");
    assert!(message.contains("SD 2.x text encoder weights"), "{message}");
}
