//! A full-size SD 1.5 text encoder (CLIP ViT-L/14, 123 M parameters) from a real-layout
//! single file: every key of the real format loads, and a batch of 2×77 encodes.
//!
//! Needs the random-weight checkpoint of `tools/make_fullsize_checkpoint.py` (~2 GB, never
//! committed), so it is ignored by default. Run it with
//!
//! ```text
//! SD_FULLSIZE_DIR=/path/to/fullsize cargo test --release -p sd-clip --test fullsize -- --ignored --nocapture
//! ```
//!
//! With `SD_CLIP_FULLSIZE_REFERENCE=FILE` it also compares against transformers on the same
//! weights (the diffusers folder beside the single file), FILE made by:
//!
//! ```python
//! import sys, torch
//! from transformers import CLIPTextModel, CLIPTokenizer
//! from safetensors.torch import save_file
//! d, out = sys.argv[1], sys.argv[2]  # $SD_FULLSIZE_DIR/sd15-random, FILE
//! tok = CLIPTokenizer.from_pretrained(f"{d}/tokenizer")
//! prompts = ["a photo of a cat", "a portrait of realbenny-t2 as a pixar character, 8k"]
//! ids = tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
//! model = CLIPTextModel.from_pretrained(f"{d}/text_encoder", torch_dtype=torch.float32).eval()
//! with torch.no_grad():
//!     o = model(ids, output_hidden_states=True)
//! norm = getattr(model, "text_model", model).final_layer_norm
//! save_file({"input_ids": ids, "last_hidden_state": o.last_hidden_state.contiguous(),
//!            "clip_skip.2": norm(o.hidden_states[-2]).contiguous(),
//!            "pooled": o.pooler_output.contiguous()}, out)
//! ```

use std::{path::PathBuf, time::Instant};

use burn::{
    store::{ModuleStore, SafetensorsStore, bridge},
    tensor::{Device, Int, Tensor},
};
use sd_clip::{
    ClipTextConfig, ClipTokenizer,
    loader::{self, WeightFormat},
};

#[test]
#[ignore = "needs the ~2 GB full-size checkpoint in $SD_FULLSIZE_DIR"]
fn sd15_single_file_loads_and_encodes_a_batch() {
    let dir = PathBuf::from(
        std::env::var_os("SD_FULLSIZE_DIR")
            .expect("SD_FULLSIZE_DIR names the folder tools/make_fullsize_checkpoint.py wrote"),
    );
    let path = dir.join("sd15-random.safetensors");
    let device = Device::default();

    let start = Instant::now();
    let mut store = SafetensorsStore::from_file(&path);
    let (model, report) = loader::load(
        &ClipTextConfig::sd15(),
        &mut store,
        WeightFormat::Ldm,
        &device,
    )
    .expect("loads");
    let load_s = start.elapsed().as_secs_f64();
    assert_eq!(report.loaded, 196, "parameters loaded"); // 2 embeddings + 12×16 + 2 norm
    println!(
        "loaded {} tensors in {load_s:.2} s, skipped {:?}",
        report.loaded, report.skipped
    );

    let tokenizer = ClipTokenizer::standard().expect("bundled vocabulary");
    // The diffusers folder's tokenizer is a transformers 5 `tokenizer.json`: same ids.
    let own = ClipTokenizer::from_pretrained(&dir.join("sd15-random")).expect("tokenizer.json");
    let text = "a portrait of realbenny-t2 as a pixar character, 8k";
    assert_eq!(
        own.encode(text).expect("ids"),
        tokenizer.encode(text).expect("ids")
    );
    let ids: Vec<i64> = [
        "a photo of a cat",
        "a portrait of realbenny-t2 as a pixar character, 8k",
    ]
    .iter()
    .flat_map(|p| tokenizer.encode_padded(p, 77).expect("encodes"))
    .map(i64::from)
    .collect();
    let ids = Tensor::<2, Int>::from_ints(burn::tensor::TensorData::new(ids, [2, 77]), &device);

    for rep in 0..3 {
        let start = Instant::now();
        let out = model.forward(ids.clone(), &[]).expect("forward");
        let values: Vec<f32> = out.to_data().iter::<f32>().collect();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(values.len(), 2 * 77 * 768);
        assert!(values.iter().all(|v| v.is_finite()));
        println!("encode 2x77 (rep {rep}): {secs:.3} s");
    }

    let Some(reference) = std::env::var_os("SD_CLIP_FULLSIZE_REFERENCE") else {
        return;
    };
    let mut reference = SafetensorsStore::from_file(PathBuf::from(reference));
    let mut get = |key: &str| {
        bridge::to_data(reference.get_tensor(key).expect("readable").expect(key)).expect("data")
    };
    let want_ids: Vec<i64> = get("input_ids").iter::<i64>().collect();
    assert_eq!(want_ids, ids.to_data().iter::<i64>().collect::<Vec<_>>());
    let out = model.forward_all(ids.clone(), &[]).expect("forward");
    let skip2 = model.forward_clip_skip(ids, &[], 2).expect("forward");
    for (name, ours) in [
        ("last_hidden_state", out.last_hidden_state.to_data()),
        ("clip_skip.2", skip2.to_data()),
        ("pooled", out.pooled.to_data()),
    ] {
        let want = get(name);
        let a: Vec<f32> = ours.iter::<f32>().collect();
        let b: Vec<f32> = want.iter::<f32>().collect();
        let max_ref = b.iter().fold(0f32, |m, x| m.max(x.abs()));
        let err = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / max_ref;
        println!("{name}: relative error {err:.2e}");
        // Same bound as the tiny golden tests.
        assert!(err < 1e-5, "{name}: relative error {err:.3e}");
    }
}
