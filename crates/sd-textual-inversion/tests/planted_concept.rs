//! A planted concept is learned: pictures the model draws with a secret embedding are the
//! training set, and a fresh embedding trained on them from another init text comes to draw
//! what the secret draws.
//!
//! The model is `fixtures/tiny-sd1-concept`, the tiny SD 1.x fixture trained by
//! `tools/train_concept_model.py` to draw coloured circles and squares from captions like
//! "a photo of a blue circle" (the random tiny model does not follow its prompt, so nothing
//! could be learned from it). The secret is the token embedding of "blue"; the fresh one
//! starts from "red".

mod common;

use std::ops::ControlFlow;
use std::path::Path;

use burn::tensor::{Device, Tensor};
use sd_textual_inversion::create::create_embedding;
use sd_textual_inversion::sd_core::noise::RngSource;
use sd_textual_inversion::sd_core::{GenerationRequest, StableDiffusion};
use sd_textual_inversion::train::{
    CancelToken, LatentSampling, StopReason, TrainConfig, TrainEvent, Trainer, freeze,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const SEEDS: [i64; 4] = [0, 1, 2, 3];

fn model() -> StableDiffusion {
    StableDiffusion::load(
        format!("{ROOT}/fixtures/tiny-sd1-concept"),
        &Device::default().autodiff(),
    )
    .expect("concept model")
}

fn prompt(name: &str) -> String {
    format!("a photo of a {name} circle")
}

/// What the model draws for `a photo of a NAME circle` with `vectors` as NAME, one picture
/// per seed: the decoded pixels in [0, 255] and the final latents.
fn draw(
    model: &StableDiffusion,
    name: &str,
    vectors: &[f32],
) -> (Vec<image::RgbImage>, Vec<Tensor<4>>) {
    let lookup = common::lookup_with(model, name, vectors);
    SEEDS
        .iter()
        .map(|&seed| {
            let params = GenerationRequest {
                prompt: prompt(name),
                steps: 20,
                sampler: "Euler".into(),
                cfg_scale: 7.0,
                seed,
                width: 64,
                height: 64,
                rng: RngSource::Cpu,
                ..GenerationRequest::default()
            };
            let out = model
                .txt2img(&params, &lookup, &mut |_| ControlFlow::Continue(()))
                .expect("generates");
            (out.images[0].clone(), out.latents)
        })
        .unzip()
}

/// Mean absolute difference of two sets of pictures, in 8-bit levels.
fn picture_distance(a: &[image::RgbImage], b: &[image::RgbImage]) -> f32 {
    let mut total = 0.0;
    let mut n = 0.0;
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.as_raw().iter().zip(y.as_raw()) {
            total += (f32::from(*p) - f32::from(*q)).abs();
            n += 1.0;
        }
    }
    total / n
}

/// Mean of (blue − red) over every pixel of every picture, in 8-bit levels.
fn blue_minus_red(pictures: &[image::RgbImage]) -> f32 {
    let (mut total, mut n) = (0.0, 0.0);
    for p in pictures {
        for px in p.pixels() {
            total += f32::from(px.0[2]) - f32::from(px.0[0]);
            n += 1.0;
        }
    }
    total / n
}

/// The denoising loss of `a photo of a NAME circle` with `vectors` over `latents`.
fn eval_loss(model: &StableDiffusion, latents: &[Tensor<4>], name: &str, vectors: &[f32]) -> f32 {
    common::eval_loss(
        model,
        latents,
        &prompt(name),
        name,
        vectors,
        &[100, 300, 500, 700, 900],
    )
}

fn write_pictures(dir: &Path, pictures: &[image::RgbImage]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (i, picture) in pictures.iter().enumerate() {
        picture
            .save(dir.join(format!("{i:05}-0-secret.png")))
            .expect("png");
    }
}

#[test]
fn training_on_pictures_of_a_secret_embedding_learns_to_draw_them() {
    let model = freeze(model());
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = create_embedding(&model, "sks", "blue", 1).expect("secret");
    let start = create_embedding(&model, "learned", "red", 1).expect("start");
    let (secret_pictures, secret_latents) = draw(&model, "sks", &secret.vectors.data);
    let (start_pictures, _) = draw(&model, "learned", &start.vectors.data);
    write_pictures(&dir.path().join("data"), &secret_pictures);
    let template = dir.path().join("template.txt");
    std::fs::write(&template, "a photo of a [name] circle\n").expect("template");

    let secret_loss = eval_loss(&model, &secret_latents, "sks", &secret.vectors.data);
    let start_loss = eval_loss(&model, &secret_latents, "learned", &start.vectors.data);
    let config = TrainConfig {
        data_dir: dir.path().join("data"),
        log_dir: dir.path().join("logs"),
        embeddings_dir: dir.path().join("embeddings"),
        template: template.display().to_string(),
        learn_rate: "0.02".into(),
        batch_size: 2,
        steps: 150,
        width: 64,
        height: 64,
        save_every: 0,
        preview_every: 0,
        latent_sampling: LatentSampling::Deterministic,
        seed: 5,
        ..TrainConfig::default()
    };
    let mut losses = Vec::new();
    let outcome = Trainer::new(model, start.clone(), config)
        .expect("trainer")
        .run(
            &mut |event| {
                if let TrainEvent::Step { loss, .. } = event {
                    losses.push(*loss);
                }
            },
            &CancelToken::new(),
        )
        .expect("trains");
    assert_eq!(outcome.reason, StopReason::Completed);

    let model = freeze(self::model());
    let learned = &outcome.embedding.vectors.data;
    let end_loss = eval_loss(&model, &secret_latents, "learned", learned);
    let (learned_pictures, _) = draw(&model, "learned", learned);
    // `SD_PLANTED_DUMP=DIR` keeps the three sets of pictures for a look (docs/images/ has
    // them as a grid).
    if let Some(out) = std::env::var_os("SD_PLANTED_DUMP") {
        let out = std::path::PathBuf::from(out);
        for (label, set) in [
            ("secret", &secret_pictures),
            ("start", &start_pictures),
            ("learned", &learned_pictures),
        ] {
            for (i, p) in set.iter().enumerate() {
                p.save(out.join(format!("{label}-{i}.png"))).expect("dump");
            }
        }
    }
    let before = picture_distance(&start_pictures, &secret_pictures);
    let after = picture_distance(&learned_pictures, &secret_pictures);
    let quarter = losses.len() / 4;
    let first: f32 = losses[..quarter].iter().sum::<f32>() / quarter as f32;
    let last: f32 = losses[losses.len() - quarter..].iter().sum::<f32>() / quarter as f32;
    eprintln!(
        "picture distance to the secret's: {before:.2} -> {after:.2} levels; eval loss \
         {start_loss:.4} -> {end_loss:.4} (secret {secret_loss:.4}); training loss, first \
         quarter {first:.4}, last quarter {last:.4}"
    );
    let before_colour = blue_minus_red(&start_pictures);
    let learned_colour = blue_minus_red(&learned_pictures);
    let secret_colour = blue_minus_red(&secret_pictures);
    eprintln!(
        "blue minus red, mean over the pictures: secret {secret_colour:.1}, start \
         {before_colour:.1}, learned {learned_colour:.1}"
    );
    // Measured (2026-11-25): pictures 23.09 -> 17.33 levels; eval loss 0.1598 -> 0.1473
    // with the secret at 0.1454 (87 % of the gap closed); training loss 0.159 -> 0.125;
    // blue minus red: secret +10.6, start -17.4, learned +14.0.
    assert!(after < 0.85 * before, "pictures: {before} -> {after}");
    assert!(
        start_loss - end_loss > 0.5 * (start_loss - secret_loss),
        "eval loss {start_loss} -> {end_loss}, secret {secret_loss}"
    );
    assert!(last < first, "training loss {first} -> {last}");
    assert!(
        before_colour < 0.0 && learned_colour > 0.0,
        "the learned embedding draws blue like the secret: start {before_colour}, learned \
         {learned_colour}"
    );
}
