//! The bad-input table of `sd-textual-inversion`: hostile or odd pictures through
//! preprocessing, broken training folders and captions, and garbage learning-rate schedules.
//! Each row builds its input in a temporary folder, calls the public API and asserts the exact
//! error variant and that the message names the file; rows without a file (schedule strings)
//! assert the variant only and say so. `sd-core/tests/bad_input.rs` holds the rows of the
//! engine (checkpoints, embeddings, infotext, prompts).

use std::path::{Path, PathBuf};

use sd_textual_inversion::dataset::DatasetError;
use sd_textual_inversion::dataset::caption::caption_for;
use sd_textual_inversion::dataset::listing::list_candidates;
use sd_textual_inversion::dataset::schedule::LearnRateSchedule;
use sd_textual_inversion::preprocess::{PreprocessError, PreprocessOptions, load, preprocess};

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
                    matches!(&e, DatasetError::InvalidSchedule { entry, .. } if entry == "0.005:abc"),
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
                        matches!(e, DatasetError::InvalidSchedule { .. }),
                        "{text}: {e:?}"
                    );
                }
            },
        },
        Row {
            name: "schedules \"1e999\", \"-1\", a 60-digit step (no file): accepted as A1111 does",
            run: |_| {
                // A1111's LearnScheduleIterator takes float("1e999") = inf and -1.0 without a
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
