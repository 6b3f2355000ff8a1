//! Training on models with the libraries' default initialisation (`fixtures/random-init/`,
//! written by `tools/make_random_init_models.py`: three SD 1.x-like and three SD 2.x-like
//! models of other seeds and shapes than the golden fixtures). Their CLIP ends in a LayerNorm
//! with bias 0, so a conditioning tensor's mean is rounding noise: A1111's "Original" emphasis
//! is exactly the identity there (all weights 1), and training must stay finite — on these
//! models diffusers' UNet gives finite outputs (the tool checks it).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::{Rgb, RgbImage};
use sd_textual_inversion::create::create_embedding;
use sd_textual_inversion::sd_core::StableDiffusion;
use sd_textual_inversion::train::{
    CancelToken, LatentSampling, StopReason, TrainConfig, TrainEvent, Trainer, freeze,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/random-init");
const MODELS: [&str; 6] = ["sd1-a", "sd1-b", "sd1-c", "sd2-a", "sd2-b", "sd2-c"];
const SEEDS: [u64; 3] = [1, 2, 3];
const STEPS: usize = 15;

fn model_path(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// Four non-square pictures (landscape and portrait, resized to the training size as A1111
/// does): colour gradients with a disc, each different.
fn write_pictures(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..4u32 {
        let (w, h) = if i % 2 == 0 { (96, 72) } else { (56, 88) };
        let image = RgbImage::from_fn(w, h, |x, y| {
            let (cx, cy) = (w as f32 * 0.5, h as f32 * (0.3 + 0.1 * i as f32));
            let inside =
                (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < (w.min(h) as f32 * 0.3).powi(2);
            if inside {
                Rgb([200, (40 * i) as u8, 60])
            } else {
                Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, (60 * i) as u8])
            }
        });
        image
            .save(dir.join(format!("{i:05}-0-picture.png")))
            .expect("png");
    }
}

fn config(dir: &Path, data: &Path, seed: u64) -> TrainConfig {
    TrainConfig {
        data_dir: data.to_owned(),
        log_dir: dir.join("logs"),
        embeddings_dir: dir.join("embeddings"),
        template: "subject".into(),
        learn_rate: "0.005".into(),
        batch_size: 2,
        steps: STEPS,
        width: 64,
        height: 48,
        save_every: 0,
        preview_every: 0,
        latent_sampling: LatentSampling::Once,
        csv_every: 0,
        seed,
        ..TrainConfig::default()
    }
}

#[test]
fn training_on_default_initialised_models_keeps_every_loss_finite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    write_pictures(&data);
    let device = Device::default().autodiff();
    let mut report = Vec::new();
    for name in MODELS {
        for seed in SEEDS {
            let model = StableDiffusion::load(model_path(name), &device).expect("loads");
            let model = freeze(model);
            let embedding =
                create_embedding(&model, &format!("{name}-{seed}"), "*", 2).expect("creates");
            let mut losses = Vec::new();
            let outcome = Trainer::new(model, embedding, config(dir.path(), &data, seed))
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
            assert_eq!(
                outcome.reason,
                StopReason::Completed,
                "{name} seed {seed}: losses {losses:?}"
            );
            assert_eq!(losses.len(), STEPS, "{name} seed {seed}");
            assert!(
                losses.iter().all(|l| l.is_finite()),
                "{name} seed {seed}: {losses:?}"
            );
            assert!(
                outcome.embedding.vectors.data.iter().all(|v| v.is_finite()),
                "{name} seed {seed}: non-finite vectors"
            );
            let max = losses.iter().fold(0f32, |m, l| m.max(*l));
            report.push(format!("{name}/{seed}: max loss {max:.4}"));
        }
    }
    eprintln!("{}", report.join("; "));
}

/// A hypernetwork of every attention width of each model (SD 1.x and 2.x shapes of other
/// seeds), with LayerNorm and dropout, trains with every loss finite, and the file written
/// loads back with its step.
#[test]
fn hypernetworks_train_on_default_initialised_models() {
    use sd_textual_inversion::sd_core::hypernetwork::{HypernetworkFile, HypernetworkSettings};
    use sd_textual_inversion::train::HypernetworkTrainer;

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    write_pictures(&data);
    let device = Device::default().autodiff();
    for name in MODELS {
        let model = freeze(StableDiffusion::load(model_path(name), &device).expect("loads"));
        let settings = HypernetworkSettings {
            sizes: model.hypernetwork_widths().into_iter().collect(),
            activation_func: "swish".into(),
            layer_norm: true,
            use_dropout: true,
            dropout_structure: vec![0.0, 0.2, 0.0],
            ..HypernetworkSettings::default()
        };
        let path = dir.path().join("hypernetworks").join(format!("{name}.pt"));
        HypernetworkFile::new_random(name, &settings, 5)
            .expect("creates")
            .write(&path)
            .expect("writes");
        let file = HypernetworkFile::read(&path).expect("reads");
        let mut cfg = config(dir.path(), &data, 4);
        cfg.hypernetwork_dir = dir.path().join("hypernetworks");
        cfg.learn_rate = "0.0001".into();
        cfg.steps = 6;
        let mut losses = Vec::new();
        let outcome = HypernetworkTrainer::new(model, file, cfg)
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
        assert_eq!(outcome.reason, StopReason::Completed, "{name}: {losses:?}");
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        let written = HypernetworkFile::read(&outcome.path).expect("written file loads");
        assert_eq!(written.step, Some(6), "{name}");
    }
}
