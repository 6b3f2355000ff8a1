//! The bad-checkpoint table: hostile model configs and single-file headers through
//! `StableDiffusion::load` (and `ModelArchitecture::from_ldm_yaml`). Each row builds its input
//! in a temporary folder — a copy of `fixtures/tiny-sd1` with one `config.json` field edited,
//! or the bundled `tiny-sd1.safetensors` with its header rewritten — and asserts the exact
//! error variant and that the message names the file and the field or tensor. None may panic
//! or allocate what the config asks for (`layers_per_block: 100000000` is 132 GB of modules).

use std::path::{Path, PathBuf};

use sd_core::model::TensorShapes;
use sd_core::sd_clip::ClipError;
use sd_core::sd_unet::UNetError;
use sd_core::sd_vae::VaeError;
use sd_core::{CoreError, DeviceChoice, ModelArchitecture, StableDiffusion};
use serde_json::{Value, json};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn bundled_checkpoint() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/tiny-sd1.safetensors"
    ))
}

fn load(path: &Path) -> CoreError {
    let device = DeviceChoice::Cpu.device().expect("cpu device");
    match StableDiffusion::load(path, &device) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Sets `key` of `folder/component/config.json` to `value`.
fn edit_config(folder: &Path, component: &str, key: &str, value: Value) -> PathBuf {
    let path = folder.join(component).join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read config"))
            .expect("config json");
    config[key] = value;
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

/// A copy of the tiny SD 1.x diffusers folder with one config field set; returns the folder
/// and the edited config file.
fn folder_with(dir: &Path, component: &str, key: &str, value: Value) -> (PathBuf, PathBuf) {
    let folder = dir.join("tiny-sd1");
    copy_dir(&Path::new(ROOT).join("fixtures/tiny-sd1"), &folder);
    let config = edit_config(&folder, component, key, value);
    (folder, config)
}

/// Asserts that `message` names `path` (the component folder and file name, so
/// `unet/config.json` is told from `vae/config.json`) and every one of `words`.
fn names(message: &str, path: &Path, words: &[&str]) {
    let parent = path
        .parent()
        .and_then(Path::file_name)
        .expect("parent")
        .to_string_lossy();
    let file = path.file_name().expect("file name").to_string_lossy();
    let shown = format!("{parent}{}{file}", std::path::MAIN_SEPARATOR);
    assert!(
        message.contains(&shown),
        "message does not name {shown}: {message}"
    );
    for word in words {
        assert!(
            message.contains(word),
            "message does not say {word}: {message}"
        );
    }
}

fn text_encoder_field(dir: &Path, key: &str, value: Value) {
    let (folder, config) = folder_with(dir, "text_encoder", key, value);
    let e = load(&folder);
    assert!(
        matches!(
            &e,
            CoreError::TextEncoder { path, source: ClipError::Config { field, .. } }
                if path == &config && *field == key
        ),
        "{e:?}"
    );
    names(&e.to_string(), &config, &[key]);
}

fn unet_field(dir: &Path, key: &str, value: Value) {
    let (folder, config) = folder_with(dir, "unet", key, value);
    let e = load(&folder);
    assert!(
        matches!(
            &e,
            CoreError::Unet { path, source: UNetError::Config { field, .. } }
                if path == &config && *field == key
        ),
        "{e:?}"
    );
    names(&e.to_string(), &config, &[key]);
}

fn vae_field(dir: &Path, key: &str, value: Value) {
    let (folder, config) = folder_with(dir, "vae", key, value);
    let e = load(&folder);
    assert!(
        matches!(
            &e,
            CoreError::Vae { path, source: VaeError::UnsupportedConfig { key: field, .. } }
                if path == &config && *field == key
        ),
        "{e:?}"
    );
    names(&e.to_string(), &config, &[key]);
}

/// The bundled single file split into its header (as JSON) and data section.
fn bundled_parts() -> (serde_json::Map<String, Value>, Vec<u8>) {
    let bytes = std::fs::read(bundled_checkpoint()).expect("bundled checkpoint");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).expect("header json");
    let Value::Object(header) = header else {
        panic!("header is not an object")
    };
    (header, bytes[8 + header_len..].to_vec())
}

fn write_safetensors(
    dir: &Path,
    name: &str,
    header: &serde_json::Map<String, Value>,
    data: &[u8],
) -> PathBuf {
    let json = Value::Object(header.clone()).to_string();
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.extend_from_slice(data);
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write checkpoint");
    path
}

fn offsets(entry: &Value) -> (u64, u64) {
    let o = &entry["data_offsets"];
    (o[0].as_u64().expect("start"), o[1].as_u64().expect("end"))
}

/// Tensor names of the bundled header, in order of their data.
fn by_offset(header: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
    names.sort_by_key(|k| offsets(&header[*k]));
    names.into_iter().cloned().collect()
}

fn assert_invalid_safetensors(e: &CoreError, path: &Path, words: &[&str]) {
    assert!(
        matches!(e, CoreError::InvalidSafetensors { path: p, .. } if p == path),
        "{e:?}"
    );
    let message = e.to_string();
    let file = path.file_name().expect("name").to_string_lossy();
    assert!(message.contains(file.as_ref()), "{message}");
    for word in words {
        assert!(
            message.contains(word),
            "message does not say {word}: {message}"
        );
    }
}

/// One row: what it feeds, and the check (which panics on failure).
struct Row {
    name: &'static str,
    run: fn(&Path),
}

fn rows() -> Vec<Row> {
    vec![
        // ------------------------------------------------------------ text encoder config
        Row {
            name: "text encoder with 0 attention heads (was: division by zero)",
            run: |dir| text_encoder_field(dir, "num_attention_heads", json!(0)),
        },
        Row {
            name: "text encoder with 5 heads for width 32 (was: reshape panic)",
            run: |dir| text_encoder_field(dir, "num_attention_heads", json!(5)),
        },
        Row {
            name: "text encoder with 64 heads for width 32 (was: zero-width heads)",
            run: |dir| text_encoder_field(dir, "num_attention_heads", json!(64)),
        },
        Row {
            name: "text encoder with a 10^12-row vocabulary",
            run: |dir| text_encoder_field(dir, "vocab_size", json!(1_000_000_000_000u64)),
        },
        Row {
            name: "text encoder with 0 positions",
            run: |dir| text_encoder_field(dir, "max_position_embeddings", json!(0)),
        },
        Row {
            name: "text encoder with a 10^15-wide MLP",
            run: |dir| {
                text_encoder_field(dir, "intermediate_size", json!(1_000_000_000_000_000u64))
            },
        },
        Row {
            name: "text encoder with 100000000 layers",
            run: |dir| text_encoder_field(dir, "num_hidden_layers", json!(100_000_000)),
        },
        Row {
            name: "text encoder with 16 positions: under one 77-token prompt chunk",
            run: |dir| {
                let (folder, config) =
                    folder_with(dir, "text_encoder", "max_position_embeddings", json!(16));
                let e = load(&folder);
                assert!(
                    matches!(&e, CoreError::InvalidConfig { path, .. } if path == &config),
                    "{e:?}"
                );
                names(&e.to_string(), &config, &["max_position_embeddings", "77"]);
            },
        },
        Row {
            name: "text encoder vocab_size under the tokenizer's 8192 tokens",
            run: |dir| {
                let (folder, config) = folder_with(dir, "text_encoder", "vocab_size", json!(1000));
                let e = load(&folder);
                assert!(
                    matches!(&e, CoreError::InvalidConfig { path, .. } if path == &config),
                    "{e:?}"
                );
                names(&e.to_string(), &config, &["vocab_size", "8192"]);
            },
        },
        // -------------------------------------------------------------------- UNet config
        Row {
            name: "UNet with layers_per_block 100000000 (132 GB of modules)",
            run: |dir| unet_field(dir, "layers_per_block", json!(100_000_000)),
        },
        Row {
            name: "UNet with a 2^40-channel block",
            run: |dir| unet_field(dir, "block_out_channels", json!([16, 32, 1u64 << 40])),
        },
        Row {
            name: "UNet with 10^6 heads",
            run: |dir| unet_field(dir, "attention_head_dim", json!(1_000_000)),
        },
        Row {
            name: "UNet with a 2^40-wide cross-attention",
            run: |dir| unet_field(dir, "cross_attention_dim", json!(1u64 << 40)),
        },
        Row {
            name: "UNet with 2^30 transformer layers per block",
            run: |dir| unet_field(dir, "transformer_layers_per_block", json!(1u64 << 30)),
        },
        Row {
            name: "UNet with 0 input channels",
            run: |dir| unet_field(dir, "in_channels", json!(0)),
        },
        Row {
            name: "UNet attending to a context the text encoder does not make",
            run: |dir| {
                let (folder, config) = folder_with(dir, "unet", "cross_attention_dim", json!(64));
                let e = load(&folder);
                assert!(
                    matches!(&e, CoreError::InvalidConfig { path, .. } if path == &config),
                    "{e:?}"
                );
                names(
                    &e.to_string(),
                    &config,
                    &["cross_attention_dim", "hidden_size"],
                );
            },
        },
        // --------------------------------------------------------------------- VAE config
        Row {
            name: "VAE with layers_per_block 100000000",
            run: |dir| vae_field(dir, "layers_per_block", json!(100_000_000)),
        },
        Row {
            name: "VAE with 70 levels (was: `1 << 69` in downscale_factor)",
            run: |dir| {
                let (folder, _) = folder_with(
                    dir,
                    "vae",
                    "down_block_types",
                    json!(vec!["DownEncoderBlock2D"; 70]),
                );
                edit_config(
                    &folder,
                    "vae",
                    "up_block_types",
                    json!(vec!["UpDecoderBlock2D"; 70]),
                );
                let config = edit_config(&folder, "vae", "block_out_channels", json!(vec![8; 70]));
                let e = load(&folder);
                assert!(
                    matches!(
                        &e,
                        CoreError::Vae { path, source: VaeError::UnsupportedConfig { key: "block_out_channels", .. } }
                            if path == &config
                    ),
                    "{e:?}"
                );
                names(&e.to_string(), &config, &["block_out_channels"]);
            },
        },
        Row {
            name: "VAE with 2^50 latent channels",
            run: |dir| vae_field(dir, "latent_channels", json!(1u64 << 50)),
        },
        // ------------------------------------------------- single file with a config folder
        Row {
            name: "single file whose config folder beside it asks for 10^8 UNet resnets",
            run: |dir| {
                let checkpoint = dir.join("tiny-sd1.safetensors");
                std::fs::copy(bundled_checkpoint(), &checkpoint).expect("copy checkpoint");
                let folder = dir.join("tiny-sd1");
                copy_dir(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tiny-sd1"),
                    &folder,
                );
                let config = edit_config(&folder, "unet", "layers_per_block", json!(100_000_000));
                let e = load(&checkpoint);
                assert!(
                    matches!(
                        &e,
                        CoreError::Unet { path, source: UNetError::Config { field: "layers_per_block", .. } }
                            if path == &config
                    ),
                    "{e:?}"
                );
                names(&e.to_string(), &config, &["layers_per_block"]);
            },
        },
        Row {
            name: "LDM yaml asking for 10^8 resnets per block",
            run: |dir| {
                let yaml = dir.join("huge.yaml");
                std::fs::write(
                    &yaml,
                    V1_YAML.replace(
                        "num_res_blocks: 2\n        channel_mult",
                        "num_res_blocks: 100000000\n        channel_mult",
                    ),
                )
                .expect("write yaml");
                let e = ModelArchitecture::from_ldm_yaml(&yaml, &TensorShapes::new())
                    .expect_err("refused");
                // The yaml reader checks the UNet it describes itself.
                assert!(
                    matches!(&e, CoreError::InvalidConfig { path, .. } if path == &yaml),
                    "{e:?}"
                );
                let message = e.to_string();
                assert!(message.contains("huge.yaml"), "{message}");
                assert!(
                    message.contains("`layers_per_block`: 100000000"),
                    "{message}"
                );
            },
        },
        Row {
            name: "LDM yaml whose channel_mult overflows usize (was: multiply overflow)",
            run: |dir| {
                let yaml = dir.join("overflow.yaml");
                std::fs::write(
                    &yaml,
                    V1_YAML.replace(
                        "model_channels: 320",
                        "model_channels: 18446744073709551615",
                    ),
                )
                .expect("write yaml");
                let e = ModelArchitecture::from_ldm_yaml(&yaml, &TensorShapes::new())
                    .expect_err("refused");
                // Refused by the yaml reader (heads that cannot divide a saturated width) or
                // by the UNet's caps: either way a typed error naming the yaml, not a panic.
                assert!(
                    matches!(
                        &e,
                        CoreError::Unet { path, source: UNetError::Config { .. } }
                            | CoreError::InvalidConfig { path, .. } if path == &yaml
                    ),
                    "{e:?}"
                );
                assert!(e.to_string().contains("overflow.yaml"), "{e}");
            },
        },
        // --------------------------------------------------------- single-file header layout
        Row {
            name: "single file whose two tensors share their bytes (overlapping data_offsets)",
            run: |dir| {
                let (mut header, data) = bundled_parts();
                let names = by_offset(&header);
                // Two tensors of the same byte size, the second pointed at the first's bytes.
                let size = |n: &String| {
                    let (s, e) = offsets(&header[n]);
                    e - s
                };
                let (a, b) = names
                    .iter()
                    .enumerate()
                    .find_map(|(i, a)| {
                        names[i + 1..]
                            .iter()
                            .find(|b| size(b) == size(a) && size(a) > 0)
                            .map(|b| (a.clone(), b.clone()))
                    })
                    .expect("two tensors of one size");
                let shared = header[&a]["data_offsets"].clone();
                header[&b]["data_offsets"] = shared;
                let path = write_safetensors(dir, "overlap.safetensors", &header, &data);
                let e = load(&path);
                let later = a.clone().max(b.clone());
                assert_invalid_safetensors(&e, &path, &["overlap", &format!("`{later}`")]);
            },
        },
        Row {
            name: "single file with a gap between tensors (a tensor dropped from the header)",
            run: |dir| {
                let (mut header, data) = bundled_parts();
                let names = by_offset(&header);
                header.remove(&names[0]);
                let path = write_safetensors(dir, "gap.safetensors", &header, &data);
                let e = load(&path);
                assert_invalid_safetensors(&e, &path, &["gap", &format!("`{}`", names[1])]);
            },
        },
        Row {
            name: "single file with bytes after its last tensor",
            run: |dir| {
                let (header, mut data) = bundled_parts();
                data.extend_from_slice(&[0; 16]);
                let path = write_safetensors(dir, "trailing.safetensors", &header, &data);
                let e = load(&path);
                assert_invalid_safetensors(&e, &path, &["cover"]);
            },
        },
        Row {
            name: "single file whose header lists tensors in another order than their data (accepted)",
            run: |dir| {
                let (header, data) = bundled_parts();
                // The header is rewritten in key order; the data is in the writer's order
                // (by dtype alignment, then name). The library accepts that, and so must we.
                let in_key_order: Vec<String> = header
                    .keys()
                    .filter(|k| *k != "__metadata__")
                    .cloned()
                    .collect();
                assert_ne!(in_key_order, by_offset(&header), "already in data order");
                let checkpoint = write_safetensors(dir, "tiny-sd1.safetensors", &header, &data);
                copy_dir(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tiny-sd1"),
                    &dir.join("tiny-sd1"),
                );
                let device = DeviceChoice::Cpu.device().expect("cpu device");
                StableDiffusion::load(&checkpoint, &device).expect("loads");
            },
        },
        Row {
            name: "single file with a UNet tensor's shape transposed (same bytes, wrong shape)",
            run: |dir| {
                let (mut header, data) = bundled_parts();
                let key = header
                    .iter()
                    .find_map(|(k, v)| {
                        let shape = v["shape"].as_array()?;
                        (k.starts_with("model.diffusion_model.")
                            && shape.len() == 2
                            && shape[0] != shape[1])
                            .then(|| k.clone())
                    })
                    .expect("a non-square UNet matrix");
                let shape = header[&key]["shape"].as_array().expect("shape").clone();
                header[&key]["shape"] = json!([shape[1], shape[0]]);
                let checkpoint = write_safetensors(dir, "tiny-sd1.safetensors", &header, &data);
                copy_dir(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tiny-sd1"),
                    &dir.join("tiny-sd1"),
                );
                let e = load(&checkpoint);
                assert!(
                    matches!(&e, CoreError::Unet { path, source: UNetError::Tensors { .. } } if path == &checkpoint),
                    "{e:?}"
                );
                let message = e.to_string();
                assert!(message.contains("tiny-sd1.safetensors"), "{message}");
                // The UNet loader names the tensor by its diffusers path (the model's), with
                // both shapes.
                let (rows, cols) = (&shape[0], &shape[1]);
                assert!(message.contains("Shape mismatch for '"), "{message}");
                assert!(message.contains(&format!("[{cols}, {rows}]")), "{message}");
            },
        },
    ]
}

/// CompVis' `v1-inference.yaml`, the fields that describe the networks.
const V1_YAML: &str = "model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    timesteps: 1000
    scale_factor: 0.18215
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_heads: 8
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: 768
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        ddconfig:
          z_channels: 4
          in_channels: 3
          out_ch: 3
          ch: 128
          ch_mult: [ 1, 2, 4, 4 ]
          num_res_blocks: 2
          attn_resolutions: []
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
";

#[test]
fn bad_checkpoint_table() {
    let rows = rows();
    assert!(rows.len() >= 10, "{} rows", rows.len());
    let mut failed = Vec::new();
    for row in &rows {
        let dir = tempfile::tempdir().expect("temp dir");
        let result = std::panic::catch_unwind(|| (row.run)(dir.path()));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {message}", row.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} rows failed:\n{}",
        failed.len(),
        rows.len(),
        failed.join("\n")
    );
}
