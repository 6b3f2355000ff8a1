//! The text encoders against transformers' `CLIPTextModel` on the tiny fixtures.
//!
//! `tools/make_fixtures.py` (`references`) ran the real module on six prompts padded to 77
//! tokens and saved `input_ids`, `hidden_states.{0..3}`, `last_hidden_state`, `pooled` and
//! `clip_skip.{1,2,3}` = `final_layer_norm(hidden_states[-n])`, all f32. The same weights are
//! loaded from the diffusers folder and from the LDM single file (fp16 on disk, f32 values).

mod common;

use burn::tensor::Device;
use common::{Reference, load_diffusers, load_single_file, relative_error};
use sd_clip::ClipTextModel;

/// Relative error bound (max |ours - transformers| / max |transformers|) the issue asks for.
/// Reached: at most 6.3e-7 (tiny-sd2 `last_hidden_state`); see `--nocapture` for each value.
const TOLERANCE: f64 = 1e-5;

fn check(model_name: &str, model: &ClipTextModel, device: &Device) {
    let mut reference = Reference::open(model_name);
    let ids = reference.input_ids(device);
    let out = model.forward_all(ids.clone(), &[]).expect("forward");
    assert_eq!(out.hidden_states.len(), 4);

    let mut compare = |name: &str, ours: burn::tensor::TensorData| {
        let err = relative_error(ours, reference.data(name));
        println!("{model_name} {name}: relative error {err:.2e}");
        assert!(
            err < TOLERANCE,
            "{model_name} {name}: relative error {err:.3e}"
        );
    };
    for (i, h) in out.hidden_states.iter().enumerate() {
        compare(&format!("hidden_states.{i}"), h.to_data());
    }
    compare("last_hidden_state", out.last_hidden_state.to_data());
    compare("pooled", out.pooled.to_data());
    for skip in 1..=3 {
        let h = model
            .forward_clip_skip(ids.clone(), &[], skip)
            .expect("clip skip");
        compare(&format!("clip_skip.{skip}"), h.to_data());
    }
    // `forward` is CLIP skip 1.
    compare(
        "last_hidden_state",
        model.forward(ids.clone(), &[]).expect("forward").to_data(),
    );
    assert!(model.forward_clip_skip(ids.clone(), &[], 0).is_err());
    assert!(model.forward_clip_skip(ids, &[], 5).is_err());
}

#[test]
fn tiny_sd1_diffusers_folder_matches_transformers() {
    let device = Device::default();
    let (model, report) = load_diffusers("tiny-sd1", &device);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    check("tiny-sd1", &model, &device);
}

#[test]
fn tiny_sd2_diffusers_folder_matches_transformers() {
    let device = Device::default();
    let (model, _) = load_diffusers("tiny-sd2", &device);
    check("tiny-sd2", &model, &device);
}

#[test]
fn tiny_sd1_single_file_matches_transformers() {
    let device = Device::default();
    let (model, report) = load_single_file("tiny-sd1", &device);
    // The int64 position_ids buffer is skipped by name, not silently.
    let skipped: Vec<&str> = report.skipped.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        skipped,
        ["cond_stage_model.transformer.text_model.embeddings.position_ids"]
    );
    check("tiny-sd1", &model, &device);
}

#[test]
fn tiny_sd2_single_file_matches_transformers() {
    let device = Device::default();
    let (model, report) = load_single_file("tiny-sd2", &device);
    // The contrastive head and the one extra OpenCLIP layer (index 3 of a 3-layer config).
    let skipped: Vec<&str> = report.skipped.iter().map(|(k, _)| k.as_str()).collect();
    assert!(skipped.contains(&"cond_stage_model.model.text_projection"));
    assert!(skipped.contains(&"cond_stage_model.model.logit_scale"));
    let extra: Vec<_> = skipped
        .iter()
        .filter(|k| k.contains("transformer.resblocks.3."))
        .collect();
    assert_eq!(extra.len(), 12, "{skipped:?}");
    assert_eq!(skipped.len(), 14, "{skipped:?}");
    check("tiny-sd2", &model, &device);
}

#[test]
fn legacy_eos_token_id_pools_at_the_largest_id() {
    // Published SD configs say eos_token_id 2; transformers then pools at argmax(input_ids),
    // which is the first EOS in CLIP's vocabulary. Same pooled output as the fixture's.
    let device = Device::default();
    let mut config = sd_clip::ClipTextConfig::from_file(&common::repo(
        "fixtures/tiny-sd1/text_encoder/config.json",
    ))
    .expect("config");
    config.eos_token_id = 2;
    let mut store = burn::store::SafetensorsStore::from_file(common::repo(
        "fixtures/tiny-sd1/text_encoder/model.safetensors",
    ));
    let (model, _) = sd_clip::loader::load(
        &config,
        &mut store,
        sd_clip::loader::WeightFormat::Diffusers,
        &device,
    )
    .expect("loads");
    let mut reference = Reference::open("tiny-sd1");
    let out = model
        .forward_all(reference.input_ids(&device), &[])
        .expect("forward");
    let err = relative_error(out.pooled.to_data(), reference.data("pooled"));
    assert!(err < TOLERANCE, "pooled: relative error {err:.3e}");
}
