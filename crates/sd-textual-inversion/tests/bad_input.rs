//! The bad-input table of `sd-textual-inversion`: hostile or odd pictures through
//! preprocessing, broken training folders and captions, and garbage learning-rate schedules.
//! Each row builds its input in a temporary folder, calls the public API and asserts the exact
//! error variant and that the message names the file; rows without a file (schedule strings)
//! assert the variant only and say so. `sd-core/tests/bad_input.rs` holds the rows of the
//! engine (checkpoints, embeddings, infotext, prompts).
//!
//! The training rows check a [`TrainConfig`] with [`TrainConfig::preflight`] (the checks
//! `train_embedding` makes before the model loads, with the standard CLIP vocabulary); the
//! two rows that need the networks load the tiny model of `fixtures/tiny-sd1`.

use std::path::{Path, PathBuf};

use sd_textual_inversion::dataset::DatasetError;
use sd_textual_inversion::dataset::caption::caption_for;
use sd_textual_inversion::dataset::learn_rate_schedule::LearnRateSchedule;
use sd_textual_inversion::dataset::listing::list_candidates;
use sd_textual_inversion::preprocess::{PreprocessError, PreprocessOptions, load, preprocess};
use sd_textual_inversion::sd_core::sd_clip::ClipTokenizer;
use sd_textual_inversion::train::{LossRow, RunFolder, RunLock, TrainConfig};
use sd_textual_inversion::{TrainError, create};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The bundled sample set (four 64×64 pictures captioned `a red disc`).
fn sample_set() -> PathBuf {
    PathBuf::from(format!("{ROOT}/crates/sdti/assets/sample-set"))
}

/// A short run on the sample set, its outputs under `dir`.
fn train_config(dir: &Path) -> TrainConfig {
    TrainConfig {
        data_dir: sample_set(),
        log_dir: dir.join("logs"),
        embeddings_dir: dir.join("embeddings"),
        template: "subject_filewords".into(),
        steps: 10,
        width: 64,
        height: 64,
        ..TrainConfig::default()
    }
}

/// The error `preflight` returns for embedding `name` (a new one, step 0).
fn preflight_err(config: &TrainConfig, name: &str) -> TrainError {
    let tokenizer = ClipTokenizer::standard().expect("bundled vocabulary");
    match config.preflight(name, 0, &tokenizer) {
        Ok(()) => panic!("{name}: accepted"),
        Err(e) => e,
    }
}

/// Asserts that `message` mentions `what` (a setting or a file's text).
fn mentions(message: &str, what: &str) {
    assert!(
        message.contains(what),
        "message does not mention {what:?}: {message}"
    );
}

/// A folder with one picture and `caption` in its sidecar.
fn one_picture_set(dir: &Path, caption: &[u8]) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    put(&data, "00000-0-disc.png", &png(64, 64));
    let sidecar = put(&data, "00000-0-disc.txt", caption);
    (data, sidecar)
}

/// The tiny SD 1.x model on the autodiff device.
fn tiny_model() -> sd_textual_inversion::sd_core::StableDiffusion {
    use sd_textual_inversion::sd_core::burn::tensor::Device;
    sd_textual_inversion::sd_core::StableDiffusion::load(
        format!("{ROOT}/fixtures/tiny-sd1"),
        &Device::default().autodiff(),
    )
    .expect("tiny model")
}

/// Asserts that `message` names `path`'s file (lossily for non-UTF-8 names).
fn names_file(message: &str, path: &Path) {
    let name = path.file_name().expect("file name").to_string_lossy();
    assert!(
        message.contains(name.as_ref()),
        "message does not name {name}: {message}"
    );
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write input");
    path
}

/// A real PNG of `w`×`h` grey-blue pixels, written by the `image` crate.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([90, 100, 140]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

/// CRC-32 (ISO-HDLC, PNG's), bit by bit: the test crate has no crc dependency.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header declares `width`×`height` 8-bit grey pixels, followed by one IDAT of a
/// single stored zlib block of zeros: about 100 bytes, however large the declared picture
/// (20000×20000 is 400 MB decoded as grey, 1.2 GB as RGB).
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
    };
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib header, one final stored block of 16 zero bytes, Adler-32 of 16 zeros.
    let mut idat = vec![0x78, 0x01, 0x01, 16, 0, !16, 0xFF];
    idat.extend_from_slice(&[0; 16]);
    idat.extend_from_slice(&0x0010_0001u32.to_be_bytes());
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn load_err(path: &Path) -> PreprocessError {
    match load::load_rgb(path) {
        Ok(img) => panic!(
            "{} decoded as {}×{}",
            path.display(),
            img.width(),
            img.height()
        ),
        Err(e) => e,
    }
}

/// Runs preprocessing of `input` into a sibling folder with `options`.
fn run(
    input: &Path,
    options: &PreprocessOptions,
) -> sd_textual_inversion::preprocess::PreprocessReport {
    let out = input.with_file_name("out");
    preprocess(input, &out, options).expect("the run itself succeeds")
}

/// `head` + a byte that is not UTF-8 + `tail`.
fn non_utf8(head: &str, tail: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt as _;
    let mut bytes = head.as_bytes().to_vec();
    bytes.push(0xFF);
    bytes.extend_from_slice(tail.as_bytes());
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

struct Row {
    name: &'static str,
    run: fn(&Path),
}

fn schedule_err(text: &str) -> DatasetError {
    LearnRateSchedule::parse(text, 1000, 0).expect_err(text)
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "1×1 picture: preprocessed to the 512×512 target",
            run: |dir| {
                let input = dir.join("in");
                std::fs::create_dir(&input).expect("mkdir");
                put(&input, "dot.png", &png(1, 1));
                let report = run(&input, &PreprocessOptions::default());
                assert!(report.skipped.is_empty(), "{:?}", report.skipped);
                assert_eq!(report.written.len(), 1);
                let out = image::open(&report.written[0]).expect("output");
                assert_eq!((out.width(), out.height()), (512, 512));
            },
        },
        Row {
            name: "20000×20000 PNG header: refused before decoding",
            run: |dir| {
                let p = put(dir, "bomb.png", &png_declaring(20_000, 20_000));
                let e = load_err(&p);
                assert!(
                    matches!(
                        e,
                        PreprocessError::TooLarge {
                            width: 20_000,
                            height: 20_000,
                            ..
                        }
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "20000×20000 PNG in a preprocessing folder: skipped, the others written",
            run: |dir| {
                let input = dir.join("in");
                std::fs::create_dir(&input).expect("mkdir");
                let bomb = put(&input, "a-bomb.png", &png_declaring(20_000, 20_000));
                put(&input, "b-fine.png", &png(8, 8));
                let report = run(&input, &PreprocessOptions::default());
                assert_eq!(report.written.len(), 1);
                let [skipped] = report.skipped.as_slice() else {
                    panic!("{:?}", report.skipped)
                };
                assert_eq!(skipped.path.file_name(), bomb.file_name());
                assert!(
                    matches!(skipped.error, PreprocessError::TooLarge { .. }),
                    "{:?}",
                    skipped.error
                );
                names_file(&skipped.error.to_string(), &bomb);
            },
        },
        Row {
            name: "an input whose output name is too long for the file system: skipped, the others written",
            run: |dir| {
                let input = dir.join("in");
                std::fs::create_dir(&input).expect("mkdir");
                // 250 bytes: a legal name, but `00000-0-<stem>.png` is 258.
                let long = format!("{}.png", "l".repeat(246));
                let long = put(&input, &long, &png(8, 8));
                put(&input, "b-fine.png", &png(8, 8));
                let report = run(&input, &PreprocessOptions::default());
                assert_eq!(report.written.len(), 1, "{:?}", report.skipped);
                let [skipped] = report.skipped.as_slice() else {
                    panic!("{:?}", report.skipped)
                };
                assert_eq!(skipped.path.file_name(), long.file_name());
            },
        },
        Row {
            name: "max_pixels configured down to 100: a 64×64 picture is refused",
            run: |dir| {
                let p = put(dir, "small.png", &png(64, 64));
                let e = load::load_rgb_limited(&p, 100).expect_err("over the cap");
                assert!(
                    matches!(e, PreprocessError::TooLarge { limit: 100, .. }),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "1×1 picture to a 20000×20000 target: the intermediate is refused",
            run: |dir| {
                let input = dir.join("in");
                std::fs::create_dir(&input).expect("mkdir");
                let p = put(&input, "dot.png", &png(1, 1));
                let options = PreprocessOptions {
                    width: 20_000,
                    height: 20_000,
                    ..PreprocessOptions::default()
                };
                let report = run(&input, &options);
                assert!(report.written.is_empty());
                let [skipped] = report.skipped.as_slice() else {
                    panic!("{:?}", report.skipped)
                };
                assert!(
                    matches!(skipped.error, PreprocessError::TooLarge { .. }),
                    "{:?}",
                    skipped.error
                );
                names_file(&skipped.error.to_string(), &p);
            },
        },
        Row {
            name: "zero-byte .png picture",
            run: |dir| {
                let p = put(dir, "zero.png", &[]);
                let e = load_err(&p);
                assert!(matches!(e, PreprocessError::Decode { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "PNG truncated in the middle of its pixel data",
            run: |dir| {
                let bytes = png(64, 64);
                let p = put(dir, "cut.png", &bytes[..bytes.len() / 2]);
                let e = load_err(&p);
                assert!(matches!(e, PreprocessError::Decode { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "wrong magic: text named .jpg",
            run: |dir| {
                let p = put(dir, "notes.jpg", b"this is not a picture");
                let e = load_err(&p);
                assert!(matches!(e, PreprocessError::Decode { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "non-UTF-8 picture name in a preprocessing folder: written under a lossy name",
            run: |dir| {
                let input = dir.join("in");
                std::fs::create_dir(&input).expect("mkdir");
                std::fs::write(input.join(non_utf8("pic-", ".png")), png(8, 8)).expect("write");
                let junk = input.join(non_utf8("junk-", ".png"));
                std::fs::write(&junk, b"junk").expect("write");
                let report = run(&input, &PreprocessOptions::default());
                assert_eq!(report.written.len(), 1, "{:?}", report.skipped);
                let [skipped] = report.skipped.as_slice() else {
                    panic!("{:?}", report.skipped)
                };
                assert!(
                    matches!(skipped.error, PreprocessError::Decode { .. }),
                    "{:?}",
                    skipped.error
                );
                names_file(&skipped.error.to_string(), &junk);
            },
        },
        Row {
            name: "caption sidecar that is not UTF-8",
            run: |dir| {
                let picture = put(dir, "cat.png", &png(2, 2));
                let sidecar = put(dir, "cat.txt", b"a \xff\xfe cat");
                let e = caption_for(&picture).expect_err("not UTF-8");
                assert!(matches!(e, DatasetError::Io { .. }), "{e:?}");
                names_file(&e.to_string(), &sidecar);
            },
        },
        Row {
            name: "training folder that does not exist",
            run: |dir| {
                let p = dir.join("nowhere");
                let e = list_candidates(&p).expect_err("missing");
                assert!(matches!(e, DatasetError::NotADirectory(_)), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "empty training folder",
            run: |dir| {
                let p = dir.join("empty");
                std::fs::create_dir(&p).expect("mkdir");
                let e = list_candidates(&p).expect_err("empty");
                assert!(matches!(e, DatasetError::EmptyDirectory(_)), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "schedule \"0.005:abc, ,:\" (no file: variant only)",
            run: |_| {
                let e = schedule_err("0.005:abc, ,:");
                assert!(
                    matches!(&e, DatasetError::InvalidLearnRateSchedule { entry, .. } if entry == "0.005:abc"),
                    "{e:?}"
                );
            },
        },
        Row {
            name: "schedules \"\", \":::\", \"abc\", \"0.1:1e3\" (no file: variant only)",
            run: |_| {
                for text in ["", " , ,", ":::", "abc", "0.1:1e3"] {
                    let e = schedule_err(text);
                    assert!(
                        matches!(e, DatasetError::InvalidLearnRateSchedule { .. }),
                        "{text}: {e:?}"
                    );
                }
            },
        },
        Row {
            name: "schedules \"1e999\", \"-1\", a 60-digit step (no file): accepted as A1111 does",
            run: |_| {
                // A1111's LearnRateScheduleIterator takes float("1e999") = inf and -1.0 without a
                // word; the trainer's non-finite guard stops a run that diverges.
                let inf = LearnRateSchedule::parse("1e999", 1000, 0).expect("python float");
                assert_eq!(inf.entries()[0].rate, f64::INFINITY);
                let neg = LearnRateSchedule::parse("-1", 1000, 0).expect("python float");
                assert_eq!(neg.entries()[0].rate, -1.0);
                // Python's int() has no size limit: a 60-digit step is the end of training.
                let far = format!("0.1:{}", "9".repeat(60));
                let far = LearnRateSchedule::parse(&far, 1000, 0).expect("python int");
                assert_eq!(far.entries()[0].end_step, 1000);
            },
        },
        Row {
            name: "template `none`: its line never holds the embedding",
            run: |dir| {
                let config = TrainConfig {
                    template: "none".into(),
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(&e, TrainError::EmbeddingNotInPrompt { site, .. } if site.template == "none" && site.line == 1),
                    "{e:?}"
                );
                mentions(&e.to_string(), "template none line 1");
                assert_eq!(e.setting(), Some("template"));
            },
        },
        Row {
            name: "template file without [name]",
            run: |dir| {
                let file = put(dir, "plain.txt", b"a photo of [filewords]\n");
                let config = TrainConfig {
                    template: file.display().to_string(),
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(e, TrainError::EmbeddingNotInPrompt { .. }),
                    "{e:?}"
                );
                names_file(&e.to_string(), &file);
                // The caption of the first picture filled the line.
                mentions(&e.to_string(), "00000-0-disc.txt");
            },
        },
        Row {
            name: "template file where only line 3 lacks [name]",
            run: |dir| {
                let file = put(
                    dir,
                    "mixed.txt",
                    b"photo of [name]\n[name], [filewords]\na painting\n",
                );
                let config = TrainConfig {
                    template: file.display().to_string(),
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(&e, TrainError::EmbeddingNotInPrompt { site, .. } if site.line == 3),
                    "{e:?}"
                );
                mentions(&e.to_string(), "line 3 (\"a painting\")");
                names_file(&e.to_string(), &file);
            },
        },
        Row {
            name: "names `cat.`, `my_`, `x-` with the default template: `.,` is one CLIP token",
            run: |dir| {
                for name in ["cat.", "my_", "x-"] {
                    let e = preflight_err(&train_config(dir), name);
                    assert!(
                        matches!(&e, TrainError::EmbeddingNotInPrompt { name: n, site, .. } if n == name && site.line == 1),
                        "{name}: {e:?}"
                    );
                    mentions(&e.to_string(), &format!("{name:?}"));
                    mentions(&e.to_string(), "00000-0-disc.txt");
                }
                // The same names are fine where the line ends with them.
                let file = put(dir, "ends.txt", b"a photo of [name]\n");
                let config = TrainConfig {
                    template: file.display().to_string(),
                    ..train_config(dir)
                };
                let tokenizer = ClipTokenizer::standard().expect("vocabulary");
                config
                    .preflight("cat.", 0, &tokenizer)
                    .expect("`cat.` at the end fires");
            },
        },
        Row {
            name: "template `filewords` with a caption that lacks the name",
            run: |dir| {
                let (data, sidecar) = one_picture_set(dir, b"a red disc");
                let config = TrainConfig {
                    data_dir: data,
                    template: "filewords".into(),
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(&e, TrainError::EmbeddingNotInPrompt { site, .. } if site.caption.as_deref() == Some(sidecar.as_path())),
                    "{e:?}"
                );
                names_file(&e.to_string(), &sidecar);
            },
        },
        Row {
            name: "1.2 MB caption sidecar: over the prompt cap, refused before the model",
            run: |dir| {
                let (data, sidecar) = one_picture_set(dir, &vec![b'a'; 1_200_000]);
                let config = TrainConfig {
                    data_dir: data,
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(
                        e,
                        TrainError::Dataset(DatasetError::CaptionTooLong {
                            chars: 1_200_000,
                            limit: 1_000_000,
                            ..
                        })
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &sidecar);
            },
        },
        Row {
            name: "caption sidecar over a lowered cap: refused by its size, unread",
            run: |dir| {
                let (_, sidecar) = one_picture_set(dir, &vec![b'a'; 1000]);
                let picture = sidecar.with_extension("png");
                let e = sd_textual_inversion::dataset::caption::caption_for_limited(&picture, 100)
                    .expect_err("over 4 × 100 bytes");
                assert!(
                    matches!(e, DatasetError::CaptionTooLong { limit: 100, .. }),
                    "{e:?}"
                );
                names_file(&e.to_string(), &sidecar);
            },
        },
        Row {
            name: "--clip-grad value:-1, value:nan, norm:nan, value:1:5, -1 (negative mid-run)",
            run: |dir| {
                for text in [
                    "value:-1",
                    "value:nan",
                    "norm:nan",
                    "norm:inf",
                    "value:1:5, -1",
                ] {
                    let config = TrainConfig {
                        clip_grad: Some(text.into()),
                        ..train_config(dir)
                    };
                    let e = preflight_err(&config, "disc-ti");
                    assert!(
                        matches!(
                            e,
                            TrainError::InvalidConfig {
                                name: "clip_grad",
                                ..
                            }
                        ),
                        "{text}: {e:?}"
                    );
                    mentions(&e.to_string(), "clip_grad");
                }
            },
        },
        Row {
            name: "--learn-rate that turns negative after step 5",
            run: |dir| {
                let config = TrainConfig {
                    learn_rate: "0.005:5, -0.1".into(),
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(
                        e,
                        TrainError::InvalidConfig {
                            name: "learn_rate",
                            ..
                        }
                    ),
                    "{e:?}"
                );
                mentions(&e.to_string(), "-0.1");
            },
        },
        Row {
            name: "--embeddings-dir is a file",
            run: |dir| {
                let file = put(dir, "embeddings-file", b"not a folder");
                let config = TrainConfig {
                    embeddings_dir: file.join("sub"),
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(
                        e,
                        TrainError::OutputDir {
                            setting: "embeddings_dir",
                            ..
                        }
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &file);
            },
        },
        Row {
            name: "--embeddings-dir that cannot be created (under /proc, read-only even to root)",
            run: |dir| {
                let config = TrainConfig {
                    embeddings_dir: PathBuf::from("/proc/sd-ti-no-such-dir/embeddings"),
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(
                        e,
                        TrainError::OutputDir {
                            setting: "embeddings_dir",
                            ..
                        }
                    ),
                    "{e:?}"
                );
                mentions(&e.to_string(), "sd-ti-no-such-dir");
            },
        },
        Row {
            name: "--log-dir is a file",
            run: |dir| {
                let file = put(dir, "logs-file", b"not a folder");
                let config = TrainConfig {
                    log_dir: file.clone(),
                    ..train_config(dir)
                };
                let e = preflight_err(&config, "disc-ti");
                assert!(
                    matches!(
                        e,
                        TrainError::OutputDir {
                            setting: "log_dir",
                            ..
                        }
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &file);
            },
        },
        Row {
            name: "a trained <name>.pt or its .optim.json exists: refused unless overwrite or resume",
            run: |dir| {
                let config = train_config(dir);
                std::fs::create_dir_all(&config.embeddings_dir).expect("mkdir");
                let optim = put(&config.embeddings_dir, "disc-ti.pt.optim.json", b"{}");
                let e = preflight_err(&config, "disc-ti");
                assert!(matches!(e, TrainError::WouldOverwrite { .. }), "{e:?}");
                names_file(&e.to_string(), &optim);
                let pt = put(&config.embeddings_dir, "disc-ti.pt", b"trained");
                let e = preflight_err(&config, "disc-ti");
                assert!(matches!(e, TrainError::WouldOverwrite { .. }), "{e:?}");
                names_file(&e.to_string(), &pt);
                let tokenizer = ClipTokenizer::standard().expect("vocabulary");
                let overwrite = TrainConfig {
                    overwrite: true,
                    ..config.clone()
                };
                overwrite
                    .preflight("disc-ti", 0, &tokenizer)
                    .expect("--overwrite");
                let resume = TrainConfig {
                    resume_from: Some(pt.clone()),
                    ..config
                };
                resume
                    .preflight("disc-ti", 0, &tokenizer)
                    .expect("resuming it");
                // An untrained file (step 0, as create_embedding writes it) may be replaced.
                use sd_textual_inversion::sd_core::embeddings::{Embedding, Vectors, write_file};
                let mut created =
                    Embedding::new("fresh", Vectors::new(1, 4, vec![0.0; 4]).expect("vectors"));
                created.step = Some(0);
                let config = train_config(dir);
                write_file(&config.embeddings_dir.join("fresh.pt"), &created).expect("write");
                config
                    .preflight("fresh", 0, &tokenizer)
                    .expect("an untrained file");
                created.step = Some(3);
                write_file(&config.embeddings_dir.join("fresh.pt"), &created).expect("write");
                let e = preflight_err(&config, "fresh");
                assert!(matches!(e, TrainError::WouldOverwrite { .. }), "{e:?}");
            },
        },
        Row {
            name: "a second run of the same embedding while the first holds its lock",
            run: |dir| {
                let config = train_config(dir);
                let first = RunLock::acquire(&config, "disc-ti").expect("first run");
                let e = preflight_err(&config, "disc-ti");
                assert!(matches!(e, TrainError::Locked { .. }), "{e:?}");
                mentions(&e.to_string(), ".disc-ti.pt.lock");
                drop(first);
                let tokenizer = ClipTokenizer::standard().expect("vocabulary");
                config
                    .preflight("disc-ti", 0, &tokenizer)
                    .expect("free again");
            },
        },
        Row {
            name: "another live process's temporary survives the stale sweep",
            run: |dir| {
                let mut live = std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .expect("sleep");
                let live_tmp = put(dir, &format!(".disc-ti-2.pt.{}.tmp", live.id()), b"x");
                let mut done = std::process::Command::new("true").spawn().expect("true");
                let dead = done.id();
                done.wait().expect("wait");
                let dead_tmp = put(dir, &format!(".disc-ti-4.pt.{dead}.tmp"), b"x");
                let removed = sd_textual_inversion::sd_core::fs::remove_stale_temporaries(dir)
                    .expect("sweep");
                let _ = live.kill();
                let _ = live.wait();
                assert!(live_tmp.exists(), "a live writer's temporary was removed");
                assert_eq!(removed, 1);
                assert!(!dead_tmp.exists());
            },
        },
        Row {
            name: "--steps 0, --width 100000, --height 12, huge --steps, --batch-size, --gradient-accumulation",
            run: |dir| {
                let base = train_config(dir);
                let cases: [(TrainConfig, &str); 6] = [
                    (
                        TrainConfig {
                            steps: 0,
                            ..base.clone()
                        },
                        "steps",
                    ),
                    (
                        TrainConfig {
                            width: 100_000,
                            ..base.clone()
                        },
                        "width",
                    ),
                    (
                        TrainConfig {
                            height: 12,
                            ..base.clone()
                        },
                        "height",
                    ),
                    (
                        TrainConfig {
                            steps: usize::MAX,
                            ..base.clone()
                        },
                        "steps",
                    ),
                    (
                        TrainConfig {
                            batch_size: 1 << 40,
                            ..base.clone()
                        },
                        "batch_size",
                    ),
                    (
                        TrainConfig {
                            gradient_accumulation: usize::MAX,
                            ..base.clone()
                        },
                        "gradient_accumulation",
                    ),
                ];
                for (config, setting) in cases {
                    let e = config.validate().expect_err(setting);
                    assert!(
                        matches!(
                            &e,
                            TrainError::InvalidConfig { name, .. } | TrainError::OverLimit { setting: name, .. }
                                if *name == setting
                        ),
                        "{setting}: {e:?}"
                    );
                    assert_eq!(e.setting(), Some(setting));
                    mentions(&e.to_string(), setting);
                }
                let e = TrainConfig {
                    width: 100_000,
                    ..base
                }
                .validate()
                .expect_err("wide");
                assert!(
                    matches!(
                        e,
                        TrainError::OverLimit {
                            value: 100_000,
                            limit: 2048,
                            ..
                        }
                    ),
                    "{e:?}"
                );
                mentions(&e.to_string(), "2048");
            },
        },
        Row {
            name: "--vectors 0 and 1000000",
            run: |_| {
                let e = create::check_vectors(1_000_000).expect_err("huge");
                assert!(
                    matches!(
                        e,
                        TrainError::OverLimit {
                            setting: "vectors",
                            limit: 75,
                            ..
                        }
                    ),
                    "{e:?}"
                );
                mentions(&e.to_string(), "vectors");
                let e = create::check_vectors(0).expect_err("zero");
                assert!(
                    matches!(
                        e,
                        TrainError::InvalidConfig {
                            name: "vectors",
                            ..
                        }
                    ),
                    "{e:?}"
                );
            },
        },
        Row {
            name: "embedding names `.`, `..`, ` . `, `a/b` (stored in a PNG embedding)",
            run: |dir| {
                for name in [".", "..", " . ", "a/b", "..\\x"] {
                    let e = preflight_err(&train_config(dir), name);
                    assert!(
                        matches!(e, TrainError::InvalidEmbeddingName { .. }),
                        "{name}: {e:?}"
                    );
                    mentions(&e.to_string(), &format!("{name:?}"));
                }
                let e = create::sanitized_name("..").expect_err("dots");
                assert!(
                    matches!(e, TrainError::InvalidEmbeddingName { .. }),
                    "{e:?}"
                );
                // Nothing may have been created for them.
                assert!(!dir.join("logs").exists());
            },
        },
        Row {
            name: "--tag-dropout NaN and 2",
            run: |dir| {
                for p in [f32::NAN, 2.0, -0.5] {
                    let config = TrainConfig {
                        tag_dropout: p,
                        ..train_config(dir)
                    };
                    let e = config.validate().expect_err("not a probability");
                    assert!(
                        matches!(
                            e,
                            TrainError::InvalidConfig {
                                name: "tag_dropout",
                                ..
                            }
                        ),
                        "{p}: {e:?}"
                    );
                }
            },
        },
        Row {
            name: "a rerun in the same run folder keeps the loss CSV's earlier rows (A1111 appends)",
            run: |dir| {
                let row = |step| LossRow {
                    step,
                    epoch: 0,
                    epoch_step: step - 1,
                    loss: 0.5,
                    learn_rate: 0.005,
                    validation_loss: None,
                    mean_loss: None,
                };
                let mut first = RunFolder::new(dir, "disc-ti");
                first.write_loss(row(1)).expect("write");
                first.write_loss(row(2)).expect("write");
                let mut second = RunFolder::new(dir, "disc-ti");
                second.write_loss(row(1)).expect("write");
                let csv = std::fs::read_to_string(second.loss_csv()).expect("csv");
                let steps: Vec<&str> = csv
                    .lines()
                    .map(|l| l.split(',').next().unwrap_or(""))
                    .collect();
                assert_eq!(steps, ["step", "1", "2", "1"], "{csv}");
            },
        },
        Row {
            name: "mid-run: tag drop-out empties a `filewords` prompt that held the name",
            run: |dir| {
                use sd_textual_inversion::train::{CancelToken, Trainer};
                let (data, sidecar) = one_picture_set(dir, b"disc-ti, red");
                let model = tiny_model();
                let embedding =
                    create::create_embedding(&model, "disc-ti", "disc", 1).expect("create");
                let config = TrainConfig {
                    data_dir: data,
                    template: "filewords".into(),
                    tag_dropout: 1.0,
                    preview_every: 0,
                    save_every: 0,
                    ..train_config(dir)
                };
                let e = Trainer::new(model, embedding, config)
                    .expect("trainer")
                    .run(&mut |_| {}, &CancelToken::new())
                    .expect_err("the first prompt has no tags left");
                assert!(
                    matches!(&e, TrainError::EmbeddingNotInPrompt { site, .. } if site.caption.as_deref() == Some(sidecar.as_path())),
                    "{e:?}"
                );
                names_file(&e.to_string(), &sidecar);
            },
        },
        Row {
            name: "loss_and_grad on prompts without the embedding: NoGradient, no panic",
            run: |_| {
                use sd_textual_inversion::sd_core::burn::tensor::{Tensor, TensorData};
                use sd_textual_inversion::sd_core::conditioning::{
                    EmbeddingLookup, TextualInversionVectors,
                };
                use sd_textual_inversion::train::{StepBatch, loss_and_grad};
                let model = sd_textual_inversion::train::freeze(tiny_model());
                let dim = model.architecture().text_encoder.hidden_size;
                let mut lookup = EmbeddingLookup::new();
                let id = lookup
                    .register(
                        TextualInversionVectors::new("disc-ti", vec![0.1; dim], 1, dim)
                            .expect("vectors"),
                        &model.tokenizer,
                    )
                    .expect("register");
                let device = model.device();
                let zeros = || {
                    Tensor::<4>::from_data(
                        TensorData::new(vec![0.0f32; 4 * 8 * 8], [1, 4, 8, 8]),
                        device,
                    )
                };
                let batch = StepBatch {
                    texts: vec!["a red disc".into()],
                    latents: zeros(),
                    noise: zeros(),
                    timesteps: vec![500],
                    weight: None,
                };
                let e = loss_and_grad(&model, &lookup, id, &vec![0.1; dim], 1, &batch)
                    .expect_err("nothing to learn");
                assert!(matches!(e, TrainError::NoGradient), "{e:?}");
            },
        },
    ]
}

#[test]
fn bad_input_table() {
    let rows = rows();
    let mut failed = Vec::new();
    for row in &rows {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Err(panic) = std::panic::catch_unwind(|| (row.run)(dir.path())) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {message}", row.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} rows failed:\n{}",
        failed.len(),
        rows.len(),
        failed.join("\n")
    );
}
