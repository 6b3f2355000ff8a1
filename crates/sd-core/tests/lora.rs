//! LoRA (issue 27) against diffusers' own loader (`tools/lora_reference.py`: a random kohya
//! LoRA on every attention, feed-forward, projection, text-encoder layer and LoCon module of
//! the resnets, loaded by `load_lora_weights` and fused at text-encoder 0.6 / UNet 0.8), in
//! kohya's layout and PEFT's, on tiny SD1 and SD2; then the bad files.

mod common;

use burn::tensor::{Device, Int, Tensor};
use common::{ROOT, fixture_tensor, relative_error};
use sd_core::StableDiffusion;
use sd_core::lora::{ActiveLora, LoraError, LoraFile};

/// Worst |ours − diffusers| over diffusers' largest |value|: the networks' golden bound.
/// Measured 2026-12-07: 4.7e-7 to 1.4e-6 (kohya and PEFT layouts, UNet and CLIP, both models).
const TOLERANCE: f32 = 1e-4;

struct Outputs {
    unet: Tensor<4>,
    clip: Tensor<4>,
}

fn outputs(model: &StableDiffusion, fixture: &str) -> Outputs {
    let device = model.device();
    let tensor = |key: &str| fixture_tensor(fixture, key);
    let unet = model
        .unet
        .forward(
            Tensor::from_data(tensor("sample"), device),
            Tensor::from_data(tensor("timesteps"), device),
            Tensor::from_data(tensor("context"), device),
        )
        .expect("UNet runs");
    let ids = Tensor::<2, Int>::from_data(tensor("input_ids").convert::<i64>(), device);
    let clip = model.text_encoder.forward(ids, &[]).expect("CLIP runs");
    Outputs {
        unet,
        clip: clip.unsqueeze(),
    }
}

/// A reference output as a 4-d tensor (CLIP's `[batch, tokens, width]` with a leading 1).
fn reference(fixture: &str, key: &str) -> Tensor<4> {
    let data = fixture_tensor(fixture, key);
    if data.shape().num_dims() == 3 {
        Tensor::<3>::from_data(data, &Device::default()).unsqueeze()
    } else {
        Tensor::<4>::from_data(data, &Device::default())
    }
}

#[test]
fn kohya_and_peft_files_change_the_networks_as_diffusers_does() {
    let device = Device::default();
    let mut report = Vec::new();
    for name in ["tiny-sd1", "tiny-sd2"] {
        let fixture = format!("lora/{name}.safetensors");
        let model =
            StableDiffusion::load(format!("{ROOT}/fixtures/{name}"), &device).expect("model");
        let scales = fixture_tensor(&fixture, "scales")
            .try_to_vec::<f32>()
            .expect("scales");
        // `lora-ldm`: the kohya file with its UNet modules in LDM's names
        // (`tools/lora_ldm_names.py`), as A1111 names its layers.
        for layout in ["lora", "peft", "lora-ldm"] {
            let path = format!("{ROOT}/fixtures/lora/{name}-{layout}.safetensors");
            let file = LoraFile::read(&path).expect("reads");
            assert!(file.unsupported().is_empty(), "{:?}", file.unsupported());
            let active = [ActiveLora {
                file: &file,
                text_encoder: scales[0],
                unet: scales[1],
            }];
            let (patched, applied) = model.with_loras(&active).expect("applies");
            assert!(applied.unmatched.is_empty(), "{:?}", applied.unmatched);
            let ours = outputs(&patched, &fixture);
            for (part, ours, key) in [
                ("unet", ours.unet, "unet.lora"),
                ("clip", ours.clip, "clip.lora"),
            ] {
                let err = relative_error(ours, reference(&fixture, key));
                report.push(format!("{name} {layout} {part}: {err:.2e}"));
                assert!(err <= TOLERANCE, "{name} {layout} {part}: off by {err:.3e}");
            }
        }
        // The loaded model is untouched: the next prompt starts from its own weights.
        let base = outputs(&model, &fixture);
        for (part, ours, key) in [
            ("unet", base.unet, "unet.base"),
            ("clip", base.clip, "clip.base"),
        ] {
            let err = relative_error(ours, reference(&fixture, key));
            assert!(
                err <= TOLERANCE,
                "{name} {part} after applying: off by {err:.3e}"
            );
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn multipliers_scale_and_split_as_a1111() {
    let device = Device::default();
    let fixture = "lora/tiny-sd1.safetensors";
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("model");
    let file =
        LoraFile::read(format!("{ROOT}/fixtures/lora/tiny-sd1-lora.safetensors")).expect("reads");
    // Text encoder only: the UNet keeps its own weights.
    let (te_only, _) = model
        .with_loras(&[ActiveLora {
            file: &file,
            text_encoder: 0.6,
            unet: 0.0,
        }])
        .expect("applies");
    let out = outputs(&te_only, fixture);
    assert!(relative_error(out.unet, reference(fixture, "unet.base")) <= TOLERANCE);
    assert!(relative_error(out.clip, reference(fixture, "clip.lora")) <= TOLERANCE);
    // Two tags of 0.3 and 0.5 on the UNet add up to 0.8.
    let (twice, _) = model
        .with_loras(&[
            ActiveLora {
                file: &file,
                text_encoder: 0.6,
                unet: 0.3,
            },
            ActiveLora {
                file: &file,
                text_encoder: 0.0,
                unet: 0.5,
            },
        ])
        .expect("applies");
    let out = outputs(&twice, fixture);
    assert!(relative_error(out.unet, reference(fixture, "unet.lora")) <= TOLERANCE);
    assert!(relative_error(out.clip, reference(fixture, "clip.lora")) <= TOLERANCE);
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

/// A safetensors file of f32 tensors.
fn safetensors(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .expect("view");
            (name.to_string(), view)
        })
        .collect();
    safetensors::serialize(views, None).expect("serialize")
}

#[test]
fn bad_files_are_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::default();
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("model");
    let apply = |file: &LoraFile| {
        model
            .with_loras(&[ActiveLora {
                file,
                text_encoder: 1.0,
                unet: 1.0,
            }])
            .map(|_| ())
    };

    let junk = write(
        dir.path(),
        "junk.safetensors",
        b"not a safetensors file at all",
    );
    assert!(matches!(LoraFile::read(&junk), Err(LoraError::Format { path, .. }) if path == junk));
    let missing = dir.path().join("missing.safetensors");
    assert!(matches!(
        LoraFile::read(&missing),
        Err(LoraError::Io { .. })
    ));

    // A LoRA for a wider model (SD 1.5's 320 channels): the layer exists, the shape does not fit.
    let q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    let wide = write(
        dir.path(),
        "wide.safetensors",
        &safetensors(&[
            (
                &format!("{q}.lora_down.weight"),
                vec![2, 320],
                vec![0.1; 640],
            ),
            (&format!("{q}.lora_up.weight"), vec![320, 2], vec![0.1; 640]),
        ]),
    );
    let file = LoraFile::read(&wide).expect("reads");
    assert!(matches!(apply(&file), Err(LoraError::Shape { path, .. }) if path == wide));

    // Nothing this model has.
    let other = write(
        dir.path(),
        "other.safetensors",
        &safetensors(&[
            (
                "lora_unet_no_such_layer.lora_down.weight",
                vec![2, 4],
                vec![0.1; 8],
            ),
            (
                "lora_unet_no_such_layer.lora_up.weight",
                vec![4, 2],
                vec![0.1; 8],
            ),
        ]),
    );
    let file = LoraFile::read(&other).expect("reads");
    assert!(matches!(
        apply(&file),
        Err(LoraError::NothingMatched { modules: 1, .. })
    ));

    // Ranks that disagree, a value that is not finite: refused when read.
    for (name, up_shape, value) in [
        ("ranks.safetensors", vec![32, 3], 0.1),
        ("nan.safetensors", vec![32, 2], f32::NAN),
    ] {
        let n = up_shape.iter().product();
        let path = write(
            dir.path(),
            name,
            &safetensors(&[
                (&format!("{q}.lora_down.weight"), vec![2, 32], vec![0.1; 64]),
                (&format!("{q}.lora_up.weight"), up_shape, vec![value; n]),
            ]),
        );
        assert!(
            matches!(LoraFile::read(&path), Err(LoraError::Shape { .. })),
            "{name}"
        );
    }

    // Other network kinds (LoHa here) are listed, not applied.
    let loha = write(
        dir.path(),
        "loha.safetensors",
        &safetensors(&[(&format!("{q}.hada_w1_a"), vec![2, 2], vec![0.1; 4])]),
    );
    let file = LoraFile::read(&loha).expect("reads");
    assert!(file.modules().is_empty());
    assert_eq!(file.unsupported(), [format!("{q}.hada_w1_a")]);
}

fn latents(model: &StableDiffusion, prompt: &str) -> (Vec<f32>, String) {
    let request = sd_core::GenerationRequest {
        prompt: prompt.into(),
        steps: 3,
        sampler: "Euler".into(),
        seed: 5,
        width: 64,
        height: 64,
        ..sd_core::GenerationRequest::default()
    };
    let generation = model
        .txt2img(
            &request,
            &sd_core::conditioning::EmbeddingLookup::new(),
            &mut |_| std::ops::ControlFlow::Continue(()),
        )
        .expect("generates");
    let infotext = generation.infotext(0, model);
    let values = generation
        .latents
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    (values, infotext)
}

/// `<lora:…>` in a prompt, end to end: the tags leave the prompt, the named file is applied
/// with A1111's multipliers, tags that cannot be used are skipped with their reason, and the
/// infotext gets A1111's `Lora hashes` (kohya's addnet hash: sha256 of what follows the
/// header, 12 hex digits).
#[test]
fn prompt_tags_activate_loras_from_a_folder() {
    use sd_core::lora::LoraLibrary;
    use sha2::{Digest, Sha256};

    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("styles");
    std::fs::create_dir(&sub).expect("mkdir");
    let bytes =
        std::fs::read(format!("{ROOT}/fixtures/lora/tiny-sd1-lora.safetensors")).expect("read");
    std::fs::write(sub.join("styled.safetensors"), &bytes).expect("copy");
    write(
        dir.path(),
        "broken.safetensors",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{",
    );
    let library = LoraLibrary::scan(dir.path()).expect("scan");
    assert_eq!(library.entries().len(), 2);

    let device = Device::default();
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("model");
    let prompt =
        "a photo <lora:styled:0.6:0.8>, <lora:missing:1> <lora:broken> <lora:styled:strong>";
    let activated = library.activate(&model, prompt).expect("activates");
    let reasons: Vec<(&str, &str)> = activated
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0], ("missing", "not found"));
    assert!(reasons[1].0 == "broken" && reasons[1].1.contains("broken.safetensors"));
    assert!(reasons[2].0 == "styled" && reasons[2].1.contains("strong"));

    let header = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize + 8;
    let digest = Sha256::digest(&bytes[header..]);
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        activated.hashes.as_deref(),
        Some(format!("styled: {short}").as_str())
    );

    // The same as applying the file by hand and writing the prompt without its tags.
    let file = LoraFile::read(sub.join("styled.safetensors")).expect("reads");
    let (by_hand, _) = model
        .with_loras(&[ActiveLora {
            file: &file,
            text_encoder: 0.6,
            unet: 0.8,
        }])
        .expect("applies");
    let (ours, infotext) = latents(&activated.model, prompt);
    let (expected, _) = latents(&by_hand, "a photo , ");
    assert_eq!(ours, expected);
    let (plain, _) = latents(&model, "a photo , ");
    assert_ne!(ours, plain);
    // The infotext keeps the prompt as typed; `Lora hashes` is the caller's to set.
    assert!(infotext.starts_with(prompt), "{infotext}");
    let mut generation_infotext = {
        let request = sd_core::GenerationRequest {
            prompt: prompt.into(),
            steps: 1,
            sampler: "Euler".into(),
            seed: 5,
            width: 64,
            height: 64,
            ..sd_core::GenerationRequest::default()
        };
        activated
            .model
            .txt2img(
                &request,
                &sd_core::conditioning::EmbeddingLookup::new(),
                &mut |_| std::ops::ControlFlow::Continue(()),
            )
            .expect("generates")
    };
    generation_infotext.lora_hashes = activated.hashes.clone();
    let text = generation_infotext.infotext(0, &activated.model);
    assert!(
        text.contains(&format!("Lora hashes: \"styled: {short}\"")),
        "{text}"
    );
}

/// A multiplier of 0 is a LoRA that names the model's layers and changes nothing (not "for
/// another model"); a CP-decomposed or DoRA module is left out whole; integer alphas read.
#[test]
fn zero_weights_other_kinds_and_integer_alphas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::default();
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("model");
    let file =
        LoraFile::read(format!("{ROOT}/fixtures/lora/tiny-sd1-lora.safetensors")).expect("reads");
    let (same, report) = model
        .with_loras(&[ActiveLora {
            file: &file,
            text_encoder: 0.0,
            unet: 0.0,
        }])
        .expect("a zero weight applies");
    assert!(report.unmatched.is_empty(), "{:?}", report.unmatched);
    let fixture = "lora/tiny-sd1.safetensors";
    let unchanged = outputs(&model, fixture).unet;
    assert_eq!(relative_error(outputs(&same, fixture).unet, unchanged), 0.0);

    let q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    let k = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k";
    let path = write(
        dir.path(),
        "mixed.safetensors",
        &safetensors(&[
            (&format!("{q}.lora_down.weight"), vec![2, 32], vec![0.1; 64]),
            (&format!("{q}.lora_up.weight"), vec![32, 2], vec![0.1; 64]),
            (&format!("{q}.dora_scale"), vec![1, 32], vec![1.0; 32]),
            (&format!("{k}.lora_down.weight"), vec![2, 32], vec![0.1; 64]),
            (&format!("{k}.lora_up.weight"), vec![32, 2], vec![0.1; 64]),
        ]),
    );
    let mixed = LoraFile::read(&path).expect("reads");
    assert_eq!(mixed.modules().keys().collect::<Vec<_>>(), [k]);
    assert!(
        mixed.unsupported().iter().any(|u| u == q),
        "{:?}",
        mixed.unsupported()
    );

    // An integer alpha (4 for rank 2: a scale of 2).
    let data: Vec<u8> = 4i64.to_le_bytes().to_vec();
    let down: Vec<u8> = [0.1f32; 64].iter().flat_map(|x| x.to_le_bytes()).collect();
    let up = down.clone();
    let views = vec![
        (
            format!("{k}.alpha"),
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![], &data)
                .expect("view"),
        ),
        (
            format!("{k}.lora_down.weight"),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 32], &down)
                .expect("view"),
        ),
        (
            format!("{k}.lora_up.weight"),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![32, 2], &up)
                .expect("view"),
        ),
    ];
    let path = write(
        dir.path(),
        "int-alpha.safetensors",
        &safetensors::serialize(views, None).expect("serialize"),
    );
    let int_alpha = LoraFile::read(&path).expect("an integer alpha reads");
    assert_eq!(int_alpha.modules()[k].scale(), 2.0);
}

/// As A1111's `network_apply_weights` (which catches each layer's error and counts it): a
/// module whose update does not fit its layer is left out and reported, the file's other
/// modules still apply — the result is the file without that module.
#[test]
fn a_module_that_does_not_fit_is_left_out_and_the_rest_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::default();
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("model");
    let good = "lora_unet_down_blocks_0_attentions_0_proj_in";
    let bad = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    let fixture = format!("{ROOT}/fixtures/lora/tiny-sd1-lora.safetensors");
    let source = LoraFile::read(&fixture).expect("fixture");
    let module = &source.modules()[good];
    let good_tensors = |prefix: &str| -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![
            (
                format!("{prefix}.lora_down.weight"),
                module.down.shape.clone(),
                module.down.values.clone(),
            ),
            (
                format!("{prefix}.lora_up.weight"),
                module.up.shape.clone(),
                module.up.values.clone(),
            ),
        ]
    };
    let mut mixed = good_tensors(good);
    mixed.push((
        format!("{bad}.lora_down.weight"),
        vec![2, 320],
        vec![0.1; 640],
    ));
    mixed.push((
        format!("{bad}.lora_up.weight"),
        vec![320, 2],
        vec![0.1; 640],
    ));
    let as_refs = |t: &[(String, Vec<usize>, Vec<f32>)]| -> Vec<u8> {
        let refs: Vec<(&str, Vec<usize>, Vec<f32>)> = t
            .iter()
            .map(|(k, s, v)| (k.as_str(), s.clone(), v.clone()))
            .collect();
        safetensors(&refs)
    };
    let mixed_path = write(dir.path(), "mixed.safetensors", &as_refs(&mixed));
    let good_path = write(
        dir.path(),
        "good.safetensors",
        &as_refs(&good_tensors(good)),
    );
    let apply = |path: &std::path::Path| {
        let file = LoraFile::read(path).expect("reads");
        let (patched, report) = model
            .with_loras(&[ActiveLora {
                file: &file,
                text_encoder: 1.0,
                unet: 1.0,
            }])
            .expect("applies");
        (outputs(&patched, "lora/tiny-sd1.safetensors").unet, report)
    };
    let (mixed_out, report) = apply(&mixed_path);
    let (good_out, good_report) = apply(&good_path);
    assert!(good_report.failed.is_empty());
    let failed = &report.failed[&mixed_path];
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, bad);
    assert!(failed[0].1.contains("does not fit"), "{}", failed[0].1);
    assert_eq!(
        mixed_out.into_data().try_to_vec::<f32>().expect("f32"),
        good_out.into_data().try_to_vec::<f32>().expect("f32")
    );
}
