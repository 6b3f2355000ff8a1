//! Weights that do not fit the configured model are errors that list every offending key.

mod common;

use burn::{store::SafetensorsStore, tensor::Device};
use common::repo;
use sd_clip::{
    ClipError, ClipTextConfig, ClipTokenizer,
    loader::{self, WeightFormat},
};

fn tiny_config(model: &str) -> ClipTextConfig {
    ClipTextConfig::from_file(&repo(&format!("fixtures/{model}/text_encoder/config.json")))
        .expect("config")
}

fn load(config: &ClipTextConfig, path: &str, format: WeightFormat) -> Result<(), ClipError> {
    let mut store = SafetensorsStore::from_file(repo(path));
    loader::load(config, &mut store, format, &Device::default()).map(|_| ())
}

const SD1_FOLDER: &str = "fixtures/tiny-sd1/text_encoder/model.safetensors";

#[test]
fn fewer_layers_than_the_file_leaves_unused_keys() {
    let config = ClipTextConfig {
        num_hidden_layers: 2,
        ..tiny_config("tiny-sd1")
    };
    match load(&config, SD1_FOLDER, WeightFormat::Diffusers) {
        Err(ClipError::Weights {
            missing, unused, ..
        }) => {
            assert!(missing.is_empty(), "{missing:?}");
            assert_eq!(unused.len(), 16, "{unused:?}");
            assert!(unused.iter().all(|k| k.contains("layers.2.")), "{unused:?}");
        }
        other => panic!("expected a weights error, got {other:?}"),
    }
}

#[test]
fn more_layers_than_the_file_leaves_missing_parameters() {
    let config = ClipTextConfig {
        num_hidden_layers: 4,
        ..tiny_config("tiny-sd1")
    };
    match load(&config, SD1_FOLDER, WeightFormat::Diffusers) {
        Err(ClipError::Weights {
            missing, unused, ..
        }) => {
            assert!(unused.is_empty(), "{unused:?}");
            assert_eq!(missing.len(), 16, "{missing:?}");
        }
        other => panic!("expected a weights error, got {other:?}"),
    }
}

#[test]
fn only_one_extra_open_clip_layer_is_ignored() {
    // With 2 layers configured, resblock 2 is "the extra one" and resblock 3 is unused.
    let config = ClipTextConfig {
        num_hidden_layers: 2,
        ..tiny_config("tiny-sd2")
    };
    match load(&config, "fixtures/tiny-sd2.safetensors", WeightFormat::Ldm) {
        Err(ClipError::Weights { unused, .. }) => {
            assert_eq!(unused.len(), 12, "{unused:?}");
            assert!(
                unused
                    .iter()
                    .all(|k| k.starts_with("cond_stage_model.model.transformer.resblocks.3."))
            );
        }
        other => panic!("expected a weights error, got {other:?}"),
    }
}

#[test]
fn wrong_shapes_are_reported() {
    let config = ClipTextConfig {
        vocab_size: 8000,
        ..tiny_config("tiny-sd1")
    };
    match load(&config, SD1_FOLDER, WeightFormat::Diffusers) {
        Err(ClipError::Weights { errors, .. }) => {
            assert!(
                errors
                    .iter()
                    .any(|e| e.to_string().contains("token_embedding")),
                "{errors:?}"
            );
        }
        other => panic!("expected a weights error, got {other:?}"),
    }
}

#[test]
fn a_file_without_a_text_encoder_is_an_error() {
    let result = load(&tiny_config("tiny-sd1"), SD1_FOLDER, WeightFormat::Ldm);
    assert!(
        matches!(result, Err(ClipError::Weights { .. })),
        "{result:?}"
    );
    let result = load(
        &tiny_config("tiny-sd1"),
        "fixtures/tiny-sd1/unet/diffusion_pytorch_model.safetensors",
        WeightFormat::Diffusers,
    );
    assert!(matches!(result, Err(ClipError::Weights { .. })));
}

#[test]
fn single_files_give_their_vocabulary_size() {
    for path in [
        "crates/sd-core/assets/tiny-sd1.safetensors",
        "fixtures/tiny-sd2.safetensors",
        SD1_FOLDER,
    ] {
        let mut store = SafetensorsStore::from_file(repo(path));
        assert_eq!(
            loader::token_embedding_rows(&mut store).expect("rows"),
            8192,
            "{path}"
        );
    }
}

#[test]
fn tokenizer_for_a_single_file_without_config_is_the_bundled_cut() {
    // Beside its config folder, a single file uses that folder's tokenizer; alone, the
    // bundled vocabulary cut to its embedding rows. Both give the same ids here.
    let beside =
        ClipTokenizer::for_model(&repo("fixtures/tiny-sd2.safetensors")).expect("tokenizer");
    assert_eq!(
        beside.pad_id(),
        0,
        "tiny-sd2's tokenizer_config.json pads with '!'"
    );
    let dir = std::env::temp_dir().join(format!("sd-clip-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let alone = dir.join("lonely.safetensors");
    std::fs::copy(repo("fixtures/tiny-sd2.safetensors"), &alone).expect("copy");
    let cut = ClipTokenizer::for_model(&alone).expect("tokenizer");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        (cut.vocab_size(), cut.eos_id(), cut.pad_id()),
        (8192, 8191, 8191)
    );
    let text = "a portrait of realbenny-t2 as a pixar character, 8k";
    assert_eq!(
        beside.encode(text).expect("ids"),
        cut.encode(text).expect("ids")
    );
    assert!(ClipTokenizer::for_model(&repo("no/such/model")).is_err());
}
