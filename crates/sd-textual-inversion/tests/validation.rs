//! The validation loss (issue 26): off by default (A1111's CSV), when on evaluated every N
//! steps at fixed timesteps and noise, written into the CSV and the plot, the best step's
//! vectors kept, early stopping after the patience; progress and cancelling while the pictures
//! are encoded and while a preview renders.

use std::path::Path;

use burn::tensor::Device;
use sd_textual_inversion::TrainError;
use sd_textual_inversion::create::create_embedding;
use sd_textual_inversion::sd_core::StableDiffusion;
use sd_textual_inversion::sd_core::embeddings::read_file;
use sd_textual_inversion::train::{
    CancelToken, StopReason, TrainConfig, TrainEvent, TrainOutcome, Trainer, Validation,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn model() -> StableDiffusion {
    StableDiffusion::load(
        format!("{ROOT}/fixtures/tiny-sd1-concept"),
        &Device::default().autodiff(),
    )
    .expect("model")
}

fn config(dir: &Path, steps: usize, learn_rate: &str, validation: Validation) -> TrainConfig {
    TrainConfig {
        data_dir: format!("{ROOT}/crates/sdti/assets/sample-set").into(),
        log_dir: dir.join("logs"),
        embeddings_dir: dir.join("embeddings"),
        template: "subject".into(),
        learn_rate: learn_rate.into(),
        steps,
        width: 64,
        height: 64,
        save_every: 0,
        preview_every: 0,
        csv_every: 1000,
        validation: Some(validation),
        ..TrainConfig::default()
    }
}

/// Runs a fresh embedding "disc-val" (init text "disc"); returns the outcome and the
/// validation events `(step, loss)`.
fn train(config: TrainConfig, cancel: &CancelToken) -> (TrainOutcome, Vec<(usize, f32)>) {
    let model = model();
    let embedding = create_embedding(&model, "disc-val", "disc", 1).expect("create");
    let mut evaluations = Vec::new();
    let outcome = Trainer::new(model, embedding, config)
        .expect("trainer")
        .run(
            &mut |event| {
                if let TrainEvent::Validation { step, loss, .. } = event {
                    evaluations.push((*step, *loss));
                }
            },
            cancel,
        )
        .expect("runs");
    (outcome, evaluations)
}

#[test]
fn the_validation_loss_is_deterministic_logged_and_its_best_step_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let validation = Validation {
        every: 10,
        ..Validation::default()
    };
    let (outcome, evaluations) = train(
        config(dir.path(), 40, "0.01", validation.clone()),
        &CancelToken::new(),
    );
    assert_eq!(outcome.reason, StopReason::Completed);
    let steps: Vec<usize> = evaluations.iter().map(|e| e.0).collect();
    assert_eq!(steps, [10, 20, 30, 40]);
    assert!(
        evaluations.iter().all(|e| e.1.is_finite() && e.1 > 0.0),
        "{evaluations:?}"
    );
    // The loss at fixed timesteps and noise falls as the embedding learns the red disc.
    eprintln!("validation losses: {evaluations:?}");
    assert!(evaluations[3].1 < evaluations[0].1, "{evaluations:?}");

    // The best step: the lowest loss, its vectors in `<name>-best.pt`.
    let best = outcome.best.clone().expect("a best step");
    let lowest = evaluations
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("evaluated");
    assert_eq!((best.step, best.loss), lowest);
    let (saved, _) = read_file(&best.path).expect("best file");
    assert_eq!(saved.step, Some(best.step as i64));
    assert!(
        best.path.ends_with("embeddings/disc-val-best.pt"),
        "{}",
        best.path.display()
    );

    // The CSV: A1111's five columns and the validation loss, a row per evaluation (the CSV
    // interval, 1000, is never reached).
    let csv = std::fs::read_to_string(outcome.run_folder.join("textual_inversion_loss.csv"))
        .expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "step,epoch,epoch_step,loss,learn_rate,validation_loss"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    for (line, (step, loss)) in lines[1..].iter().zip(&evaluations) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], step.to_string());
        assert_eq!(fields[5], format!("{loss:.7}"));
    }
    assert!(
        outcome
            .run_folder
            .join("textual_inversion_loss.png")
            .is_file()
    );

    // The same run again: the same losses to the bit (fixed timesteps, noise, prompts).
    let again = tempfile::tempdir().expect("tempdir");
    let (_, repeated) = train(
        config(again.path(), 40, "0.01", validation),
        &CancelToken::new(),
    );
    assert_eq!(repeated, evaluations);
}

#[test]
fn a_loss_that_never_improves_stops_the_run_after_the_patience() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A learning rate of 0: the vectors never change, so no evaluation beats the first.
    let validation = Validation {
        every: 5,
        patience: Some(2),
        timesteps: vec![400],
        ..Validation::default()
    };
    let (outcome, evaluations) = train(
        config(dir.path(), 100, "0", validation),
        &CancelToken::new(),
    );
    assert_eq!(outcome.reason, StopReason::NoImprovement { best_step: 5 });
    assert_eq!(evaluations.len(), 3, "{evaluations:?}");
    assert!(
        evaluations.iter().all(|e| e.1 == evaluations[0].1),
        "{evaluations:?}"
    );
    assert_eq!(outcome.embedding.step, Some(15));
    assert_eq!(outcome.best.map(|b| b.step), Some(5));
}

#[test]
fn validation_on_held_out_pictures_uses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The held-out set: one of the training pictures, mirrored.
    let held_out = dir.path().join("held-out");
    std::fs::create_dir_all(&held_out).expect("mkdir");
    let picture = image::open(format!(
        "{ROOT}/crates/sdti/assets/sample-set/00001-0-disc.png"
    ))
    .expect("picture")
    .fliph();
    picture.save(held_out.join("flipped.png")).expect("save");
    let validation = |data_dir| Validation {
        every: 4,
        data_dir,
        ..Validation::default()
    };
    let (_, on_training) = train(
        config(&dir.path().join("a"), 4, "0.01", validation(None)),
        &CancelToken::new(),
    );
    let (_, on_held_out) = train(
        config(&dir.path().join("b"), 4, "0.01", validation(Some(held_out))),
        &CancelToken::new(),
    );
    assert_eq!(on_training.len(), 1);
    assert_eq!(on_held_out.len(), 1);
    assert_ne!(on_training[0].1, on_held_out[0].1);
}

#[test]
fn bad_validation_settings_are_refused_before_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = model();
    let cases = [
        (
            Validation {
                every: 0,
                ..Validation::default()
            },
            "validate_every",
        ),
        (
            Validation {
                patience: Some(0),
                ..Validation::default()
            },
            "validation_patience",
        ),
        (
            Validation {
                timesteps: vec![],
                ..Validation::default()
            },
            "validation_timesteps",
        ),
        (
            Validation {
                timesteps: vec![10, 1000],
                ..Validation::default()
            },
            "validation_timesteps",
        ),
        (
            Validation {
                data_dir: Some(dir.path().join("missing")),
                ..Validation::default()
            },
            "validation_data",
        ),
    ];
    for (validation, setting) in cases {
        let config = config(dir.path(), 10, "0.01", validation);
        let error = config.validate().expect_err(setting);
        assert!(
            matches!(&error, TrainError::InvalidConfig { name, .. } if *name == setting),
            "{setting}: {error:?}"
        );
    }
    drop(model);
}

#[test]
fn cancelling_while_the_pictures_are_encoded_saves_the_untrained_embedding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path(), 10, "0.01", Validation::default());
    config.validation = None;
    let model = model();
    let embedding = create_embedding(&model, "disc-cancel", "disc", 1).expect("create");
    let cancel = CancelToken::new();
    let mut encoded = Vec::new();
    let mut started = false;
    let outcome = Trainer::new(model, embedding, config)
        .expect("trainer")
        .run(
            &mut |event| match event {
                TrainEvent::Encoding { done, total } => {
                    encoded.push((*done, *total));
                    if *done == 2 {
                        cancel.cancel();
                    }
                }
                TrainEvent::Started { .. } => started = true,
                _ => {}
            },
            &cancel,
        )
        .expect("runs");
    assert_eq!(outcome.reason, StopReason::Cancelled);
    assert!(!started, "training started after the cancel");
    // The sample set: 4 pictures and 4 captions, 8 files; cancelled before the third.
    assert_eq!(encoded, [(0, 8), (1, 8), (2, 8)]);
    assert_eq!(outcome.embedding.step.unwrap_or(0), 0);
    assert!(outcome.path.is_file());
}

#[test]
fn cancelling_while_a_preview_renders_writes_no_preview_and_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path(), 10, "0.01", Validation::default());
    config.validation = None;
    config.preview_every = 3;
    let model = model();
    let embedding = create_embedding(&model, "disc-preview", "disc", 1).expect("create");
    let cancel = CancelToken::new();
    let mut rendered = Vec::new();
    let mut previews = 0;
    let outcome = Trainer::new(model, embedding, config)
        .expect("trainer")
        .run(
            &mut |event| match event {
                TrainEvent::Rendering { done, total } => {
                    rendered.push((*done, *total));
                    if *done == 5 {
                        cancel.cancel();
                    }
                }
                TrainEvent::Preview { .. } => previews += 1,
                _ => {}
            },
            &cancel,
        )
        .expect("runs");
    assert_eq!(outcome.reason, StopReason::Cancelled);
    // The first preview is due after step 2 (A1111 names it 3): 20 sampling steps, cut at 5.
    assert_eq!(rendered, (1..=5).map(|d| (d, 20)).collect::<Vec<_>>());
    assert_eq!(previews, 0);
    assert_eq!(outcome.embedding.step, Some(2));
    let images = outcome.run_folder.join("images");
    let written = std::fs::read_dir(&images).map_or(0, |d| d.count());
    assert_eq!(written, 0, "a preview was written in {}", images.display());
}

/// A1111's progress-bar loss: the mean of the last 3 × (pictures) step losses, in every step
/// event (4 pictures: the last 12).
#[test]
fn the_step_event_carries_a1111s_running_mean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path(), 30, "0.01", Validation::default());
    config.validation = None;
    let model = model();
    let embedding = create_embedding(&model, "disc-mean", "disc", 1).expect("create");
    let mut steps = Vec::new();
    Trainer::new(model, embedding, config)
        .expect("trainer")
        .run(
            &mut |event| {
                if let TrainEvent::Step {
                    loss, mean_loss, ..
                } = event
                {
                    steps.push((*loss, *mean_loss));
                }
            },
            &CancelToken::new(),
        )
        .expect("runs");
    assert_eq!(steps.len(), 30);
    for i in 0..steps.len() {
        let window = &steps[i.saturating_sub(11)..=i];
        let mean = window.iter().map(|s| s.0).sum::<f32>() / window.len() as f32;
        assert!(
            (steps[i].1 - mean).abs() <= 1e-6 * mean.abs().max(1.0),
            "step {}: {} vs {mean}",
            i + 1,
            steps[i].1
        );
    }
}
