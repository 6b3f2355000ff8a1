//! The training programs (`train_embedding`, `create_embedding`) run on hostile flags and
//! files, as a user would run them (issue 22): each must exit 1 with a message naming the flag
//! or file at fault, never panic, silently train nothing, overwrite a trained embedding or
//! throw a finished run away. Every run uses the bundled tiny model and sample set (64×64) in
//! a temporary folder as its working directory; refusals come before the model loads, the
//! few runs that train take 2 steps.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_refused, run};

/// The bundled sample set: four pictures captioned `a red disc`.
fn sample_set() -> PathBuf {
    Path::new(common::ROOT).join("crates/sdti/assets/sample-set")
}

/// `train_embedding --steps 2 --name disc-ti` plus `extra`, which may set its own `--steps`
/// and `--name` (clap refuses a flag given twice).
fn train(dir: &Path, extra: &[&str]) -> Output {
    let mut args = Vec::new();
    if !extra.contains(&"--steps") {
        args.extend_from_slice(&["--steps", "2"]);
    }
    if !extra.contains(&"--name") && !extra.contains(&"--embedding") {
        args.extend_from_slice(&["--name", "disc-ti"]);
    }
    args.extend_from_slice(extra);
    run("train_embedding", &args, dir)
}

fn temp() -> common::TempDir {
    common::temp_dir("hostile-training")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: expected success, got {:?}; stderr: {}",
        out.status,
        stderr(out)
    );
}

/// A data folder with a copy of one sample picture and `caption` as its sidecar.
fn one_picture_set(dir: &Path, caption: &[u8]) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::copy(
        sample_set().join("00000-0-disc.png"),
        data.join("00000-0-disc.png"),
    )
    .expect("copy picture");
    std::fs::write(data.join("00000-0-disc.txt"), caption).expect("caption");
    data
}

#[test]
fn prompts_without_the_embedding_are_refused_before_training() {
    let dir = temp();
    let d = dir.path();
    let out = train(d, &["--template", "none"]);
    assert_refused(
        &out,
        "--template none",
        &["--template", "template none line 1"],
    );

    let plain = d.join("plain.txt");
    std::fs::write(&plain, "a photo of [filewords]\n").expect("template");
    let out = train(d, &["--template", plain.to_str().expect("UTF-8")]);
    assert_refused(
        &out,
        "template without [name]",
        &["--template", "plain.txt"],
    );

    let mixed = d.join("mixed.txt");
    std::fs::write(&mixed, "photo of [name]\n[name], [filewords]\na painting\n").expect("t");
    let out = train(d, &["--template", mixed.to_str().expect("UTF-8")]);
    assert_refused(&out, "one line without [name]", &["mixed.txt line 3"]);

    // CLIP merges the name's final punctuation with the template's comma.
    for name in ["cat.", "my_", "x-"] {
        let out = train(d, &["--name", name]);
        let quoted = format!("{name:?}");
        assert_refused(&out, name, &["--template", &quoted, "00000-0-disc.txt"]);
    }

    // `filewords`: the name must come from each caption.
    let data = one_picture_set(d, b"a red disc");
    let data = data.to_str().expect("UTF-8");
    let out = train(d, &["--template", "filewords", "--data", data]);
    assert_refused(&out, "caption without the name", &["00000-0-disc.txt"]);
    // Nothing was trained, nothing written.
    assert!(!d.join("embeddings/disc-ti.pt").exists());
}

#[test]
fn a_prompt_that_loses_the_name_mid_run_is_refused() {
    let dir = temp();
    let d = dir.path();
    let data = one_picture_set(d, b"disc-ti, red");
    let out = train(
        d,
        &[
            "--template",
            "filewords",
            "--data",
            data.to_str().expect("UTF-8"),
            "--tag-dropout",
            "1",
        ],
    );
    assert_refused(&out, "all tags dropped", &["00000-0-disc.txt", "disc-ti"]);
}

#[test]
fn schedules_that_are_negative_or_nan_are_refused() {
    let dir = temp();
    let d = dir.path();
    for clip in ["value:-1", "value:nan", "norm:nan", "value:1:1, -1"] {
        let out = train(d, &["--clip-grad", clip]);
        assert_refused(&out, clip, &["--clip-grad", "clip_grad"]);
    }
    let out = train(d, &["--learn-rate", "0.005:1, -1"]);
    assert_refused(&out, "negative later rate", &["--learn-rate"]);
    let out = train(d, &["--tag-dropout", "NaN"]);
    assert_refused(&out, "--tag-dropout NaN", &["--tag-dropout"]);
}

#[test]
fn numbers_over_their_caps_are_refused_before_loading() {
    let dir = temp();
    let d = dir.path();
    let cases: [(&[&str], &[&str]); 8] = [
        (&["--width", "100000"], &["--width", "2048"]),
        (&["--height", "100"], &["--height", "multiple of 8"]),
        (&["--batch-size", "1000000000000"], &["--batch-size", "64"]),
        (
            &["--gradient-accumulation", "18446744073709551615"],
            &["--gradient-accumulation", "10000"],
        ),
        (&["--vectors", "1000"], &["--vectors", "75"]),
        (&["--name", "."], &["\".\""]),
        (&["--name", ".."], &["\"..\""]),
        (&["--name", "../.."], &["\"....\""]),
    ];
    for (flags, mentions) in cases {
        let out = train(d, flags);
        assert_refused(&out, &flags.join(" "), mentions);
    }
    // Steps: 0 (A1111: "Max steps is empty or 0") and huge.
    for steps in ["0", "100000000000"] {
        let out = run(
            "train_embedding",
            &["--name", "disc-ti", "--steps", steps],
            d,
        );
        assert_refused(&out, &format!("--steps {steps}"), &["--steps"]);
    }
    assert!(!d.join("embeddings/disc-ti.pt").exists());
    // create_embedding checks its name and vectors before loading too.
    let out = run(
        "create_embedding",
        &["--name", "..", "--output-dir", "e"],
        d,
    );
    assert_refused(&out, "create_embedding --name ..", &["--name"]);
    let out = run("create_embedding", &["--name", "x", "--vectors", "1000"], d);
    assert_refused(
        &out,
        "create_embedding --vectors 1000",
        &["--vectors", "75"],
    );
}

#[test]
fn unwritable_output_folders_are_refused_before_training() {
    let dir = temp();
    let d = dir.path();
    let file = d.join("a-file");
    std::fs::write(&file, "in the way").expect("file");
    let file = file.to_str().expect("UTF-8");
    let out = train(d, &["--embeddings-dir", file]);
    assert_refused(
        &out,
        "--embeddings-dir FILE",
        &["--embeddings-dir", "a-file"],
    );
    // Under /proc no folder can be made, not even by root.
    let out = train(d, &["--embeddings-dir", "/proc/sd-ti-nowhere"]);
    assert_refused(
        &out,
        "--embeddings-dir /proc/..",
        &["--embeddings-dir", "/proc/sd-ti-nowhere"],
    );
    let out = train(d, &["--log-dir", file]);
    assert_refused(&out, "--log-dir FILE", &["--log-dir", "a-file"]);
}

#[test]
fn huge_captions_are_refused_naming_the_file() {
    let dir = temp();
    let d = dir.path();
    let data = one_picture_set(d, &vec![b'a'; 1_200_000]);
    let out = train(d, &["--data", data.to_str().expect("UTF-8")]);
    assert_refused(&out, "1.2 MB caption", &["00000-0-disc.txt", "1000000"]);
}

#[test]
fn a_trained_embedding_is_kept_unless_overwrite_or_resume() {
    let dir = temp();
    let d = dir.path();
    let csv_every = ["--csv-every", "1"];
    assert_ok(&train(d, &csv_every), "first run");
    let pt = d.join("embeddings/disc-ti.pt");
    let before = std::fs::read(&pt).expect("trained file");
    let out = train(d, &csv_every);
    assert_refused(
        &out,
        "second run, same name",
        &["--overwrite", "disc-ti.pt"],
    );
    assert_eq!(std::fs::read(&pt).expect("still there"), before);
    let out = train(d, &["--csv-every", "1", "--overwrite", "--seed", "5"]);
    assert_ok(&out, "--overwrite");
    // Resuming the file continues it, without --overwrite.
    let pt_arg = pt.to_str().expect("UTF-8");
    let out = run(
        "train_embedding",
        &["--embedding", pt_arg, "--steps", "3", "--csv-every", "1"],
        d,
    );
    assert_ok(&out, "resume with --embedding");
    // A1111 appends to the loss CSV: 2 + 2 + 1 rows under one header.
    let csv = std::fs::read_dir(d.join("textual_inversion"))
        .expect("log dir")
        .flatten()
        .map(|date| date.path().join("disc-ti/textual_inversion_loss.csv"))
        .find(|p| p.exists())
        .expect("loss csv");
    let text = std::fs::read_to_string(&csv).expect("csv");
    let steps: Vec<&str> = text
        .lines()
        .map(|l| l.split(',').next().unwrap_or(""))
        .collect();
    assert_eq!(steps, ["step", "1", "2", "1", "2", "3"], "{text}");
}

#[test]
fn a_second_run_of_a_locked_embedding_fails_at_once() {
    let dir = temp();
    let d = dir.path();
    let embeddings = d.join("embeddings");
    std::fs::create_dir_all(&embeddings).expect("mkdir");
    // The lock a running `train_embedding --name disc-ti` holds.
    let lock = std::fs::File::create(embeddings.join(".disc-ti.pt.lock")).expect("lock file");
    lock.try_lock().expect("lock");
    let out = train(d, &[]);
    assert_refused(
        &out,
        "locked",
        &[".disc-ti.pt.lock", "another training run"],
    );
    drop(lock);
}

#[test]
fn an_overflowing_update_stops_with_an_error_not_a_nan_blame() {
    let dir = temp();
    let d = dir.path();
    let out = train(d, &["--learn-rate", "1e38", "--steps", "4"]);
    assert_refused(&out, "learning rate 1e38", &["training stopped at step"]);
    let text = stderr(&out);
    assert!(
        text.contains("overflowed") || text.contains("loss is NaN"),
        "{text}"
    );
}
