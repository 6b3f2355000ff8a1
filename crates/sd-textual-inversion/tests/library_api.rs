//! The library as a program embeds it (issue 26): the model and the trainer cross threads,
//! training hands the model back so one load serves training and generation, and one call
//! puts an embedding file (or folder) into prompts, its width checked.

use std::ops::ControlFlow;
use std::path::Path;

use burn::tensor::Device;
use sd_textual_inversion::create::create_embedding;
use sd_textual_inversion::sd_core::embeddings::{Embedding, EmbeddingError, Vectors, write_file};
use sd_textual_inversion::sd_core::{CoreError, GenerationRequest, StableDiffusion};
use sd_textual_inversion::train::{CancelToken, StopReason, TrainConfig, TrainOutcome, Trainer};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn assert_send<T: Send>() {}

/// A GUI or a server runs them on a worker thread; this does not compile if one is not
/// `Send`.
#[test]
fn the_model_the_trainer_and_its_outcome_are_send() {
    assert_send::<StableDiffusion>();
    assert_send::<Trainer>();
    assert_send::<TrainOutcome>();
    assert_send::<CancelToken>();
}

fn request(prompt: &str) -> GenerationRequest {
    GenerationRequest {
        prompt: prompt.into(),
        steps: 4,
        sampler: "Euler".into(),
        seed: 3,
        width: 64,
        height: 64,
        ..GenerationRequest::default()
    }
}

fn latents(model: &StableDiffusion, prompt: &str, path: &Path) -> Vec<f32> {
    let lookup = model.load_embedding(path).expect("embedding loads");
    model
        .txt2img(
            &request(prompt),
            &lookup,
            &mut |_| ControlFlow::Continue(()),
        )
        .expect("generates")
        .latents
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32")
}

/// One load: train on a worker thread, get the model back, generate with the trained file,
/// then train a second embedding on the same model.
#[test]
fn training_hands_the_model_back_for_generation_and_more_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = StableDiffusion::load(
        format!("{ROOT}/fixtures/tiny-sd1-concept"),
        &Device::default().autodiff(),
    )
    .expect("model");
    let config = |steps| TrainConfig {
        data_dir: format!("{ROOT}/crates/sdti/assets/sample-set").into(),
        log_dir: dir.path().join("logs"),
        embeddings_dir: dir.path().join("embeddings"),
        steps,
        width: 64,
        height: 64,
        learn_rate: "0.01".into(),
        ..TrainConfig::default()
    };
    let first = create_embedding(&model, "disc-one", "disc", 1).expect("create");
    let trainer = Trainer::new(model, first, config(20)).expect("trainer");
    let outcome = std::thread::spawn(move || {
        trainer
            .run(&mut |_| {}, &CancelToken::new())
            .expect("trains")
    })
    .join()
    .expect("worker thread");
    assert_eq!(outcome.reason, StopReason::Completed);
    let model = outcome.model;

    // The trained file changes the picture of its prompt; the untrained init text's word
    // ("disc") draws what it drew.
    let trained = latents(&model, "a photo of disc-one", &outcome.path);
    let plain = latents(&model, "a photo of disc", &outcome.path);
    let differs = trained
        .iter()
        .zip(&plain)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(differs > 1e-3, "the embedding changed nothing: {differs}");

    // A second embedding on the same model, no reload.
    let second = create_embedding(&model, "disc-two", "circle", 1).expect("create");
    let outcome = Trainer::new(model, second, config(5))
        .expect("second trainer")
        .run(&mut |_| {}, &CancelToken::new())
        .expect("second run");
    assert!(outcome.path.ends_with("disc-two.pt"));

    // The folder, as A1111's embeddings folder: both files.
    let lookup = outcome
        .model
        .load_embeddings_dir(dir.path().join("embeddings"))
        .expect("folder");
    assert_eq!(lookup.len(), 2, "both embeddings of the folder");
}

#[test]
fn an_embedding_of_another_width_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &Device::default())
        .expect("model");
    let width = model.architecture().text_encoder.hidden_size;
    let path = dir.path().join("wide.pt");
    let vectors = Vectors::new(1, width + 8, vec![0.1; width + 8]).expect("vectors");
    write_file(&path, &Embedding::new("wide", vectors)).expect("write");
    let error = model.load_embedding(&path).expect_err("wrong width");
    assert!(
        matches!(&error, CoreError::Embedding(EmbeddingError::WrongWidth { path: p, embedding, model: m })
            if p == &path && *embedding == width + 8 && *m == width),
        "{error:?}"
    );
    assert!(error.to_string().contains("wide.pt"), "{error}");
    // A file that is no embedding: an error naming it, never a panic.
    let junk = dir.path().join("junk.pt");
    std::fs::write(&junk, b"not a pickle").expect("write");
    let error = model.load_embedding(&junk).expect_err("junk");
    assert!(error.to_string().contains("junk.pt"), "{error}");
}
