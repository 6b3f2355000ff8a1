//! kill -9 during training, many times, at random points: every file the run has written is
//! whole and loadable, and resuming from the last saved copy loses at most one save
//! interval.
//!
//! The training runs in a child process: this test binary runs itself with
//! `--ignored --exact crash_test_child` and the folder in `SD_CRASH_TEST_DIR`. The parent
//! SIGKILLs it after a pseudo-random delay (deterministic seed), checks the folder, and starts
//! the next child, which resumes from the newest copy in the run's `embeddings/` — as a user
//! of A1111 resumes from `textual_inversion/<date>/<name>/embeddings/<name>-<step>.pt`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use burn::tensor::Device;
use sd_textual_inversion::create::create_embedding;
use sd_textual_inversion::sd_core::StableDiffusion;
use sd_textual_inversion::sd_core::embeddings::{Embedding, read_file};
use sd_textual_inversion::sd_core::fs::is_temporary;
use sd_textual_inversion::train::{
    CancelToken, LatentSampling, SavedOptimizer, TrainConfig, TrainEvent, Trainer, optimizer_path,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const CHILD_ENV: &str = "SD_CRASH_TEST_DIR";
const NAME: &str = "crashy";
const SAVE_EVERY: usize = 2;
const STEPS: usize = 40;

fn config(dir: &Path) -> TrainConfig {
    TrainConfig {
        data_dir: PathBuf::from(format!("{ROOT}/crates/sdti/assets/sample-set")),
        log_dir: dir.join("logs"),
        embeddings_dir: dir.join("embeddings"),
        template: "subject".into(),
        learn_rate: "0.005".into(),
        batch_size: 1,
        steps: STEPS,
        width: 64,
        height: 64,
        save_every: SAVE_EVERY,
        // Previews and image embeddings too, so kills also land in PNG writes.
        preview_every: SAVE_EVERY,
        latent_sampling: LatentSampling::Deterministic,
        csv_every: 1,
        seed: 11,
        ..TrainConfig::default()
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The newest copy the run saved (by step), loaded: the point a resume starts from.
fn newest_copy(dir: &Path) -> Option<(Embedding, PathBuf)> {
    files(&dir.join("logs"))
        .into_iter()
        .filter(|p| {
            p.parent().and_then(Path::file_name) == Some("embeddings".as_ref())
                && p.extension() == Some("pt".as_ref())
        })
        .filter_map(|p| read_file(&p).ok().map(|(e, _)| (e, p)))
        .max_by_key(|(e, _)| e.step)
}

/// The training process: resumes from the newest copy, or starts a new embedding.
#[test]
#[ignore = "the child process of `sigkill_at_random_points_never_leaves_a_broken_file`"]
fn crash_test_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let model = StableDiffusion::load(
        format!("{ROOT}/fixtures/tiny-sd1"),
        &Device::default().autodiff(),
    )
    .expect("tiny model");
    let mut config = config(&dir);
    let (embedding, optimizer) = match newest_copy(&dir) {
        Some((mut e, path)) => {
            e.name = NAME.into();
            let saved: Option<SavedOptimizer> = std::fs::read(optimizer_path(&path))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            // Continuing the embedding: it may replace `<embeddings>/crashy.pt`.
            config.resume_from = Some(path);
            (e, saved)
        }
        None => {
            // A child killed after the final save of a fresh start: the new start replaces it.
            config.overwrite = true;
            (
                create_embedding(&model, NAME, "photo", 1).expect("create"),
                None,
            )
        }
    };
    let mut trainer = Trainer::new(model, embedding, config).expect("trainer");
    if let Some(saved) = &optimizer {
        trainer = trainer.with_saved_optimizer(saved);
    }
    trainer
        .run(
            &mut |event| {
                if let TrainEvent::Step { step, .. } = event {
                    println!("STEP {step}");
                }
            },
            &CancelToken::new(),
        )
        .expect("trains");
    println!("DONE");
}

/// Starts a child; its `STEP n` / `DONE` lines arrive on the returned channel.
fn spawn_child(dir: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "crash_test_child", "--nocapture"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("STEP ") || line == "DONE" {
                let _ = tx.send(line);
            }
        }
    });
    (child, rx)
}

/// Every file under `dir` is whole: embeddings and image embeddings load, previews decode,
/// JSON parses, the CSV has whole rows. Temporaries of a write that the kill
/// interrupted are allowed (they are not the file; the next run removes them).
fn assert_every_file_is_whole(dir: &Path) {
    for path in files(dir) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_temporary(&name) {
            continue;
        }
        let folder = path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shown = path.display();
        if name.ends_with(".optim.json") || name == "settings.json" {
            let bytes = std::fs::read(&path).expect("readable");
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{shown}: {e}"));
        } else if name.ends_with(".pt") || folder == "image_embeddings" {
            read_file(&path).unwrap_or_else(|e| panic!("{shown}: {e}"));
        } else if name.ends_with(".png") {
            image::open(&path).unwrap_or_else(|e| panic!("{shown}: {e}"));
        } else if name.ends_with(".csv") {
            let text = std::fs::read_to_string(&path).expect("readable");
            let mut lines = text.lines();
            assert_eq!(
                lines.next(),
                Some("step,epoch,epoch_step,loss,learn_rate"),
                "{shown}"
            );
            // A1111 appends: each resumed child adds its rows after those of the child before
            // it, starting again after the copy it resumed (so a step may repeat).
            for line in lines {
                let fields: Vec<&str> = line.split(',').collect();
                assert_eq!(fields.len(), 5, "{shown}: {line}");
                let step: usize = fields[0].parse().expect("step");
                assert!(
                    step > 0 && step <= STEPS,
                    "{shown}: step out of range at {line}"
                );
                assert!(fields[3].parse::<f32>().is_ok(), "{shown}: {line}");
            }
            assert!(text.ends_with('\n'), "{shown}: cut in the middle of a row");
        } else if name.ends_with(".lock") {
            // The run's advisory locks: empty files, released by the kill.
            let len = std::fs::metadata(&path).expect("lock file").len();
            assert_eq!(len, 0, "{shown}: a lock file with content");
        } else {
            panic!("{shown}: a file the trainer should not write");
        }
    }
}

/// Waits for the child to finish, noting its steps; `true` once it printed `DONE`.
fn wait_for_done(lines: &mpsc::Receiver<String>, last_step: &mut Option<usize>) -> bool {
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(600)) {
        if line == "DONE" {
            return true;
        }
        *last_step = Some(line[5..].parse().expect("step number"));
    }
    false
}

/// SplitMix64: the kill points, deterministic. A value in `0..max`.
fn next_below(state: &mut u64, max: u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % max
}

#[test]
fn sigkill_at_random_points_never_leaves_a_broken_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = 0x5EED_u64;
    let mut kills = 0;
    let mut resumed_from = Vec::new();
    for round in 0..40 {
        let start_step = newest_copy(dir.path()).and_then(|(e, _)| e.step);
        let (mut child, lines) = spawn_child(dir.path());
        // The first round may die while loading; later ones once training has begun.
        let mut last_step = None;
        if round > 0 {
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line == "DONE" => {
                    child.wait().expect("child exits");
                    break;
                }
                Ok(line) => {
                    let step: usize = line[5..].parse().expect("step number");
                    // Resume continues right after the newest saved copy.
                    let expected = start_step.map_or(1, |s| s as usize + 1);
                    assert_eq!(step, expected, "round {round}: first step after resume");
                    resumed_from.push(expected - 1);
                    last_step = Some(step);
                }
                Err(e) => panic!("round {round}: the child printed no step: {e}"),
            }
        }
        // Round 0 dies at a random time, loading or early in training. Later rounds let
        // 0 to 3 more steps finish, then kill 0 to 400 ms into the next one (a save, a
        // preview or a CSV write is often under way): a number of kills that does not
        // depend on the machine's speed. After 30 rounds the run may finish.
        let mut done = false;
        if round >= 30 {
            done = wait_for_done(&lines, &mut last_step);
        } else if round == 0 {
            std::thread::sleep(Duration::from_millis(next_below(&mut rng, 1500)));
        } else {
            for _ in 0..next_below(&mut rng, 4) {
                match lines.recv_timeout(Duration::from_secs(120)) {
                    Ok(line) if line == "DONE" => {
                        done = true;
                        break;
                    }
                    Ok(line) => last_step = Some(line[5..].parse().expect("step number")),
                    Err(e) => panic!("round {round}: the child stopped stepping: {e}"),
                }
            }
            if !done {
                std::thread::sleep(Duration::from_millis(next_below(&mut rng, 400)));
            }
        }
        if done {
            child.wait().expect("child exits");
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
        // Steps the child printed before it died (the reader ends at the pipe's end).
        while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
            if let Some(step) = line.strip_prefix("STEP ") {
                last_step = Some(step.parse().expect("step number"));
            }
        }
        assert_every_file_is_whole(dir.path());
        // Progress lost is at most one save interval.
        if let Some(step) = last_step {
            let saved = newest_copy(dir.path())
                .and_then(|(e, _)| e.step)
                .unwrap_or(0) as usize;
            assert!(
                step <= saved + SAVE_EVERY,
                "round {round}: reached step {step}, newest copy at {saved}"
            );
        }
    }
    eprintln!("{kills} kills; resumed from steps {resumed_from:?}");
    assert!(kills >= 8, "only {kills} kills before the run finished");

    // The last child finished: the final embedding is complete, no litter remains.
    let (final_embedding, _) =
        read_file(&dir.path().join("embeddings").join(format!("{NAME}.pt"))).expect("final file");
    assert_eq!(final_embedding.step, Some(STEPS as i64));
    assert_every_file_is_whole(dir.path());
    let litter: Vec<_> = files(&dir.path().join("logs"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| is_temporary(&n.to_string_lossy()))
        })
        .collect();
    assert!(litter.is_empty(), "temporaries left: {litter:?}");
}
