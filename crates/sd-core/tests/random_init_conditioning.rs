//! Conditioning on models with the libraries' default initialisation
//! (`fixtures/random-init/`, written by `tools/make_random_init_models.py`): their CLIP ends in a
//! LayerNorm with bias 0, so the mean of a conditioning tensor is rounding noise (~1e-8) and
//! A1111's "Original" emphasis divides two such means. With every multiplier 1, A1111's result
//! is exactly `z` (torch reduces both means of the same bits alike) — or NaN where the mean is
//! exactly 0.0, which happens; ours must be `z` bit for bit, and never non-finite.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use sd_core::StableDiffusion;
use sd_core::checkpoint::ModelFamily;
use sd_core::conditioning::{EmbeddingLookup, Emphasis, ModelFlavour, PromptEncoder};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/random-init");
const MODELS: [&str; 6] = ["sd1-a", "sd1-b", "sd1-c", "sd2-a", "sd2-b", "sd2-c"];
const PROMPTS: [&str; 3] = [
    "a photo of a cat",
    "",
    "a portrait of a dog, highly detailed, by greg rutkowski",
];

fn folder(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// A stored tensor of `reference.safetensors` as f32 values (int64 ids converted).
fn reference(name: &str, key: &str) -> Vec<f32> {
    let bytes = std::fs::read(folder(name).join("reference.safetensors")).expect("reference");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let view = st.tensor(key).expect("key");
    match view.dtype() {
        safetensors::Dtype::I64 => view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect(),
    }
}

fn values(t: &Tensor<3>) -> Vec<f32> {
    t.to_data().iter::<f32>().collect()
}

fn encoder<'a>(model: &'a StableDiffusion, embeddings: &'a EmbeddingLookup) -> PromptEncoder<'a> {
    let flavour = match model.family() {
        ModelFamily::Sd2 => ModelFlavour::Sd2,
        _ => ModelFlavour::Sd1,
    };
    PromptEncoder::new(&model.tokenizer, &model.text_encoder, embeddings, flavour)
}

#[test]
fn original_emphasis_with_unit_weights_is_z_on_default_initialised_models() {
    let device = Device::default();
    let embeddings = EmbeddingLookup::new();
    let mut worst = 0f32;
    for name in MODELS {
        let model = StableDiffusion::load(folder(name), &device).expect("loads");
        assert_eq!(
            model.family() == ModelFamily::Sd2,
            name.starts_with("sd2"),
            "{name}: family"
        );
        for (i, prompt) in PROMPTS.iter().enumerate() {
            let z_mean = reference(name, &format!("{i}.z_mean"))[0];
            // The condition under test: the mean is rounding noise beside values of ~1.
            assert!(z_mean.abs() < 1e-6, "{name}: z mean {z_mean}");
            let original = encoder(&model, &embeddings)
                .encode(prompt)
                .expect("encodes");
            let no_emphasis = encoder(&model, &embeddings)
                .with_emphasis(Emphasis::None)
                .encode(prompt)
                .expect("encodes");
            // Exactly z, as in A1111: bit for bit what the model gives without emphasis.
            let differing = values(&original)
                .iter()
                .zip(values(&no_emphasis))
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(differing, 0, "{name} {prompt:?}: values differing from z");
            // A1111's ratio is exactly 1, or 0/0 = NaN where the mean is exactly 0.0 (one
            // prompt on sd2-b): A1111 then sends NaN to the UNet; we send `z`.
            let ratio = reference(name, &format!("{i}.a1111_ratio"))[0];
            assert!(
                ratio == 1.0 || ratio.is_nan(),
                "{name}: A1111's ratio {ratio}"
            );
            let expected = reference(name, &format!("{i}.z"));
            let ours = values(&original);
            assert_eq!(ours.len(), expected.len());
            let err = ours
                .iter()
                .zip(&expected)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // transformers' CLIP against ours in f32, values up to ~4: the conditioning
            // goldens' tolerance (tests/conditioning.rs).
            assert!(err < 1e-5, "{name} {prompt:?}: max abs error {err}");
            worst = worst.max(err);
        }
    }
    eprintln!("random-init models: max abs error against A1111's emphasis {worst:e}");
}

#[test]
fn mixed_weights_on_default_initialised_models_stay_finite() {
    let device = Device::default();
    let embeddings = EmbeddingLookup::new();
    for name in MODELS {
        let model = StableDiffusion::load(folder(name), &device).expect("loads");
        for prompt in [
            "a (photo:1.3) of a [cat]",
            "(dog:0.0)",
            "((((((masterpiece))))))",
        ] {
            let z = encoder(&model, &embeddings)
                .encode(prompt)
                .expect("encodes");
            let bad = values(&z).iter().filter(|v| !v.is_finite()).count();
            assert_eq!(bad, 0, "{name} {prompt:?}: {bad} non-finite values");
            let largest = values(&z).iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(largest < 1e3, "{name} {prompt:?}: |z| up to {largest}");
        }
    }
}

#[test]
fn the_unet_gives_diffusers_output_on_default_initialised_models() {
    let device = Device::default();
    let mut worst = 0f32;
    for name in MODELS {
        let model = StableDiffusion::load(folder(name), &device).expect("loads");
        let hidden = model.architecture().text_encoder.hidden_size;
        for i in 0..PROMPTS.len() {
            let tensor3 = |key: &str, shape: [usize; 3]| {
                Tensor::<3>::from_data(
                    burn::tensor::TensorData::new(reference(name, key), shape),
                    &device,
                )
            };
            let sample = Tensor::<4>::from_data(
                burn::tensor::TensorData::new(
                    reference(name, &format!("{i}.sample")),
                    [1, 4, 8, 12],
                ),
                &device,
            );
            let timestep = Tensor::<1>::from_data(
                burn::tensor::TensorData::new(reference(name, &format!("{i}.timestep")), [1]),
                &device,
            );
            let context = tensor3(&format!("{i}.z"), [1, 77, hidden]);
            let ours: Vec<f32> = model
                .unet
                .forward(sample, timestep, context)
                .expect("runs")
                .to_data()
                .iter::<f32>()
                .collect();
            let expected = reference(name, &format!("{i}.eps"));
            assert!(ours.iter().all(|v| v.is_finite()), "{name}: non-finite");
            let err = ours
                .iter()
                .zip(&expected)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            // f32 through burn's and torch's kernels in other orders: the UNet goldens'
            // relative 1e-4 (crates/sd-unet/tests/diffusers_reference.rs).
            let relative = err / scale;
            assert!(
                relative <= 1e-4,
                "{name} case {i}: relative error {relative:e}"
            );
            worst = worst.max(relative);
        }
    }
    eprintln!("random-init UNets: max relative error against diffusers {worst:e}");
}
