//! The bad-input table: hostile or broken input through every public entry point of
//! `sd-core` that takes a user's file, folder, picture or prompt. Each row builds its input in
//! a temporary folder, calls the public API, and asserts the exact error variant and that the
//! message names the file. Rows without a file (prompts, infotext strings) assert the
//! variant (or the literal fallback) only and say so.
//!
//! `embeddings_robustness.rs` already cuts and bit-flips every embedding fixture through
//! `read_bytes`; the rows here go through the file-level APIs (`read_file`,
//! `EmbeddingDatabase::load_dirs`, `StableDiffusion::load`, `TorchFile::open`,
//! `SafetensorsHeader::read`, `read_png_parameters_file`) instead, so file names reach the
//! messages.
//!
//! The generation rows (issue 22) feed `GenerationRequest::validate`, `Img2ImgInput::open` /
//! `open_mask` (the one picture loader, `sd_core::image_file`), `pipeline::output_paths`,
//! and txt2img on the bundled tiny model with prompts or weights that overflow to NaN.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sd_core::checkpoint::SafetensorsHeader;
use sd_core::conditioning::{ConditioningError, EmbeddingLookup};
use sd_core::embeddings::{EmbeddingDatabase, EmbeddingError, SkipReason, read_file};
use sd_core::image_file::{self, ImageFileError};
use sd_core::infotext::{InfotextError, parse_generation_parameters, read_png_parameters_file};
use sd_core::limits::{LimitExceeded, Limits};
use sd_core::pipeline::output_paths;
use sd_core::sd_prompt::{self, IssueKind, Prompt, Steps};
use sd_core::torch_file::{TorchFile, TorchFileError};
use sd_core::{
    CoreError, DeviceChoice, GenerationRequest, Img2ImgInput, LoadOptions, StableDiffusion,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn bundled_checkpoint() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/tiny-sd1.safetensors"
    ))
}

fn embedding_fixture(name: &str) -> PathBuf {
    Path::new(ROOT).join("fixtures/embeddings/dir").join(name)
}

fn torch_fixture(name: &str) -> PathBuf {
    Path::new(ROOT).join("fixtures/torch_file").join(name)
}

/// Writes `bytes` to `dir/name`.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write input");
    path
}

/// Asserts that `message` names `path`'s file (lossily for non-UTF-8 names, as
/// `Path::display` writes it).
fn names_file(message: &str, path: &Path) {
    let name = path.file_name().expect("file name").to_string_lossy();
    assert!(
        message.contains(name.as_ref()),
        "message does not name {name}: {message}"
    );
}

fn load(path: &Path) -> CoreError {
    let device = DeviceChoice::Cpu.device().expect("cpu device");
    match StableDiffusion::load(path, &device) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

fn load_limited(path: &Path, limits: &Limits) -> CoreError {
    let device = DeviceChoice::Cpu.device().expect("cpu device");
    match StableDiffusion::load_with_limits(path, &LoadOptions::default(), limits, &device) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

fn embedding_err(path: &Path) -> EmbeddingError {
    match read_file(path) {
        Ok((e, _)) => panic!("{} read as embedding {}", path.display(), e.name),
        Err(e) => e,
    }
}

/// A safetensors file: 8-byte header length, `json`, `data` zero bytes.
fn safetensors_raw(json: &str, data: usize) -> Vec<u8> {
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.resize(bytes.len() + data, 0);
    bytes
}

fn safetensors_f32(name: &str, values: &[f32], shape: &[usize]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &data)
        .expect("view");
    safetensors::serialize([(name, view)], None).expect("serialize")
}

/// A protocol-2 pickle of `depth` nested lists: `depth` EMPTY_LISTs, then APPENDs folding each
/// into the one below. The machine is a loop, so building it needs no recursion; a legacy
/// torch file starts with such a pickle.
fn nested_pickle(depth: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x02];
    p.extend(std::iter::repeat_n(b']', depth));
    p.extend(std::iter::repeat_n(b'a', depth - 1));
    p.push(b'.');
    p
}

/// `posix.system("echo")`: what a hostile checkpoint's pickle does.
const OS_SYSTEM_PICKLE: &[u8] = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00echo\x85R.";

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    out.extend_from_slice(&h.finalize().to_be_bytes());
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).expect("deflate");
    z.finish().expect("deflate")
}

/// A PNG whose header declares `width`×`height` 8-bit grey pixels, with `extra` chunks before
/// a small IDAT (a few rows of zeros: enough for a decoder to start, far from the whole
/// picture). A 20000×20000 one is about 100 bytes here and 400 MB decoded.
fn png_declaring(width: u32, height: u32, extra: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale, deflate, no interlace
    png_chunk(&mut png, b"IHDR", &ihdr);
    for (kind, data) in extra {
        png_chunk(&mut png, kind, data);
    }
    let row = width.min(64) as usize + 1;
    png_chunk(&mut png, b"IDAT", &zlib(&vec![0u8; row * 4]));
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// One row: what it feeds, and the check (which panics on failure).
struct Row {
    name: &'static str,
    run: fn(&Path),
}

fn rows() -> Vec<Row> {
    vec![
        // ---------------------------------------------------------------- checkpoints
        Row {
            name: "zero-byte .safetensors checkpoint",
            run: |dir| {
                let p = put(dir, "empty.safetensors", &[]);
                let e = load(&p);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "zero-byte .ckpt checkpoint",
            run: |dir| {
                let p = put(dir, "empty.ckpt", &[]);
                let e = load(&p);
                assert!(
                    matches!(e, CoreError::TorchFile(TorchFileError::Truncated { .. })),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "safetensors checkpoint truncated inside the header length (4 bytes)",
            run: |dir| truncated_safetensors(dir, |_| 4),
        },
        Row {
            name: "safetensors checkpoint truncated inside the header JSON",
            run: |dir| truncated_safetensors(dir, |header_end| header_end / 2),
        },
        Row {
            name: "safetensors checkpoint truncated right after the header",
            run: |dir| truncated_safetensors(dir, |header_end| header_end),
        },
        Row {
            name: "safetensors checkpoint missing its last byte",
            run: |dir| truncated_safetensors(dir, |_| usize::MAX),
        },
        Row {
            name: ".ckpt truncated to its first 2 bytes (zip signature cut)",
            run: |dir| truncated_ckpt(dir, |_| 2),
        },
        Row {
            name: ".ckpt truncated in the middle (no central directory)",
            run: |dir| truncated_ckpt(dir, |len| len / 2),
        },
        Row {
            name: ".ckpt missing its last byte (end-of-central-directory cut)",
            run: |dir| truncated_ckpt(dir, |len| len - 1),
        },
        Row {
            name: "wrong magic: a GIF named .ckpt",
            run: |dir| {
                let p = put(dir, "gif.ckpt", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
                let e = load(&p);
                assert!(
                    matches!(e, CoreError::TorchFile(TorchFileError::NotTorchFile { .. })),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "wrong magic: a PNG named .safetensors (header length from PNG bytes)",
            run: |dir| {
                let p = put(dir, "png.safetensors", &png_declaring(1, 1, &[]));
                let e = load(&p);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "safetensors with an unknown dtype",
            run: |dir| {
                let p = put(
                    dir,
                    "q4.safetensors",
                    &safetensors_raw(
                        r#"{"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,1]}}"#,
                        1,
                    ),
                );
                let e = load(&p);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                assert!(e.to_string().contains("Q4_K"), "{e}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "safetensors whose shape's byte size disagrees with its offsets",
            run: |dir| {
                let p = put(
                    dir,
                    "shape.safetensors",
                    &safetensors_raw(
                        r#"{"w":{"dtype":"F32","shape":[4,4],"data_offsets":[0,16]}}"#,
                        16,
                    ),
                );
                let e = load(&p);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "safetensors declaring a 2^60-byte header (must not allocate it)",
            run: |dir| {
                let mut bytes = (1u64 << 60).to_le_bytes().to_vec();
                bytes.extend_from_slice(b"{}");
                let p = put(dir, "huge-header.safetensors", &bytes);
                let e = load(&p);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
                // The header reader on its own, too.
                let e = SafetensorsHeader::read(&p).expect_err("refused");
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
            },
        },
        Row {
            name: "safetensors declaring a 2^60-element tensor whose offsets lie past EOF",
            run: |dir| {
                let p = put(
                    dir,
                    "past-eof.safetensors",
                    &safetensors_raw(
                        r#"{"w":{"dtype":"U8","shape":[1152921504606846976],"data_offsets":[0,1152921504606846976]}}"#,
                        8,
                    ),
                );
                let e = load(&p);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "safetensors whose shape overflows u64 (2^32 · 2^32 · 16 elements)",
            run: |dir| {
                let p = put(
                    dir,
                    "overflow.safetensors",
                    &safetensors_raw(
                        r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#,
                        16,
                    ),
                );
                let e = load(&p);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "valid safetensors holding no Stable Diffusion keys",
            run: |dir| {
                let p = put(
                    dir,
                    "lora.safetensors",
                    &safetensors_f32("lora_up.weight", &[0.0; 4], &[2, 2]),
                );
                let e = load(&p);
                assert!(
                    matches!(e, CoreError::UnrecognisedCheckpoint { .. }),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "max_tensor_bytes: a real checkpoint under a 1 KiB tensor cap",
            run: |_| {
                let mut limits = Limits::default();
                limits.max_tensor_bytes = 1024;
                let p = bundled_checkpoint();
                let e = load_limited(&p, &limits);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                assert!(e.to_string().contains("max_tensor_bytes"), "{e}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "max_tensor_bytes: a .ckpt state dict under a 4-byte tensor cap",
            run: |_| {
                let mut limits = Limits::default();
                limits.max_tensor_bytes = 4;
                let p = torch_fixture("state_dict.ckpt");
                let e = TorchFile::open_with_limits(&p, &limits).expect_err("over the cap");
                assert!(matches!(e, TorchFileError::Tensor { .. }), "{e:?}");
                assert!(e.to_string().contains("max_tensor_bytes"), "{e}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "pickle nested 100000 lists deep as a .ckpt",
            run: |dir| {
                let p = put(dir, "deep.ckpt", &nested_pickle(100_000));
                let e = load(&p);
                assert!(
                    matches!(
                        e,
                        CoreError::TorchFile(TorchFileError::LimitExceeded { .. })
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "max_pickle_depth: a real embedding .pt under a depth cap of 1",
            run: |_| {
                let mut limits = Limits::default();
                // The A1111 dict: root (0) → `string_to_param` (1) → tensor (2).
                limits.max_pickle_depth = 1;
                let p = embedding_fixture("realbenny-t1.pt");
                let e = TorchFile::open_with_limits(&p, &limits).expect_err("too deep");
                assert!(
                    matches!(e, TorchFileError::LimitExceeded { limit: 1, .. }),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
                // The default limits open it.
                TorchFile::open_with_limits(&p, &Limits::default()).expect("default limits");
            },
        },
        Row {
            name: "pickle calling os.system as a .ckpt",
            run: |dir| {
                let p = put(dir, "evil.ckpt", OS_SYSTEM_PICKLE);
                let e = load(&p);
                assert!(
                    matches!(
                        &e,
                        CoreError::TorchFile(TorchFileError::ForbiddenGlobal { module, name, .. })
                            if module == "posix" && name == "system"
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "non-UTF-8 checkpoint file name (zero bytes)",
            run: |dir| {
                let p = dir.join(non_utf8("model-\u{1}.safetensors"));
                std::fs::write(&p, []).expect("write");
                let e = load(&p);
                assert!(matches!(e, CoreError::InvalidSafetensors { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "missing checkpoint file",
            run: |dir| {
                let p = dir.join("nowhere.safetensors");
                let e = load(&p);
                assert!(matches!(e, CoreError::Io { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        // ----------------------------------------------------------------- embeddings
        Row {
            name: "zero-byte .pt embedding",
            run: |dir| {
                let p = put(dir, "zero.pt", &[]);
                let e = embedding_err(&p);
                assert!(
                    matches!(
                        e,
                        EmbeddingError::TorchFile(TorchFileError::Truncated { .. })
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "zero-byte .bin embedding",
            run: |dir| {
                let p = put(dir, "zero.bin", &[]);
                let e = embedding_err(&p);
                assert!(
                    matches!(
                        e,
                        EmbeddingError::TorchFile(TorchFileError::Truncated { .. })
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "zero-byte .safetensors embedding",
            run: |dir| {
                let p = put(dir, "zero.safetensors", &[]);
                let e = embedding_err(&p);
                assert!(matches!(e, EmbeddingError::Safetensors { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "zero-byte .png embedding",
            run: |dir| {
                let p = put(dir, "zero.png", &[]);
                let e = embedding_err(&p);
                assert!(matches!(e, EmbeddingError::Image { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "embedding with a NaN (refused: A1111 loads it, then its checksum fails)",
            run: |dir| {
                let p = put(
                    dir,
                    "nan.safetensors",
                    &safetensors_f32("emb_params", &[0.5, f32::NAN], &[1, 2]),
                );
                let e = embedding_err(&p);
                assert!(
                    matches!(e, EmbeddingError::NonFinite { index: 1, .. }),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "embedding with -inf",
            run: |dir| {
                let p = put(
                    dir,
                    "inf.safetensors",
                    &safetensors_f32("emb_params", &[f32::NEG_INFINITY], &[1, 1]),
                );
                let e = embedding_err(&p);
                assert!(
                    matches!(e, EmbeddingError::NonFinite { index: 0, .. }),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "embedding tensor of 3 dimensions",
            run: |dir| {
                let p = put(
                    dir,
                    "cube.safetensors",
                    &safetensors_f32("emb_params", &[0.0; 8], &[2, 2, 2]),
                );
                let e = embedding_err(&p);
                assert!(matches!(e, EmbeddingError::Shape { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "embedding tensor of 1 dimension with no values",
            run: |dir| {
                let p = put(
                    dir,
                    "hollow.safetensors",
                    &safetensors_f32("emb_params", &[], &[0]),
                );
                let e = embedding_err(&p);
                assert!(matches!(e, EmbeddingError::Shape { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "embedding of width 1024 in a folder loaded for a 768-wide model: skipped",
            run: |dir| {
                let folder = dir.join("embeddings");
                std::fs::create_dir(&folder).expect("mkdir");
                let p = put(
                    &folder,
                    "wide.safetensors",
                    &safetensors_f32("emb_params", &vec![0.1; 1024], &[1, 1024]),
                );
                let db = EmbeddingDatabase::load_dirs(&[folder], Some(768));
                assert!(db.embeddings().is_empty());
                let [skipped] = db.skipped() else {
                    panic!("{:?}", db.skipped())
                };
                assert_eq!(skipped.path, p);
                assert!(
                    matches!(
                        skipped.reason,
                        SkipReason::WrongWidth {
                            embedding: 1024,
                            model: 768
                        }
                    ),
                    "{:?}",
                    skipped.reason
                );
            },
        },
        Row {
            name: "embedding file over 64 MiB (a checkpoint in the wrong folder; sparse, never read)",
            run: |dir| {
                let p = dir.join("model.safetensors");
                let f = std::fs::File::create(&p).expect("create");
                f.set_len(sd_core::embeddings::MAX_EMBEDDING_FILE_BYTES + 1)
                    .expect("set_len");
                let e = embedding_err(&p);
                assert!(matches!(e, EmbeddingError::TooLarge { .. }), "{e:?}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "embedding .pt calling os.system",
            run: |dir| {
                let p = put(dir, "evil.pt", OS_SYSTEM_PICKLE);
                let e = embedding_err(&p);
                assert!(
                    matches!(
                        e,
                        EmbeddingError::TorchFile(TorchFileError::ForbiddenGlobal { .. })
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "embedding .pt holding a pickle nested 100000 deep",
            run: |dir| {
                let p = put(dir, "deep.pt", &nested_pickle(100_000));
                let e = embedding_err(&p);
                assert!(
                    matches!(
                        e,
                        EmbeddingError::TorchFile(TorchFileError::LimitExceeded { .. })
                    ),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "embedding PNG declaring 20000×20000 pixels (refused from its header)",
            run: |dir| {
                let p = put(dir, "bomb.png", &png_declaring(20_000, 20_000, &[]));
                let e = embedding_err(&p);
                assert!(matches!(e, EmbeddingError::Image { .. }), "{e:?}");
                assert!(e.to_string().contains("max_image_pixels"), "{e}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "1×1 PNG without embedding data",
            run: |dir| {
                let p = put(dir, "dot.png", &png_declaring(1, 1, &[]));
                let e = embedding_err(&p);
                assert!(
                    matches!(e, EmbeddingError::NoEmbeddingInImage { .. }),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "non-UTF-8 names in an embeddings folder: loaded under a lossy name, or skipped",
            run: |dir| {
                let folder = dir.join("embeddings");
                std::fs::create_dir(&folder).expect("mkdir");
                let good = folder.join(non_utf8("good-\u{1}.pt"));
                std::fs::copy(embedding_fixture("realbenny-t1.pt"), &good).expect("copy");
                let empty = folder.join(non_utf8("empty-\u{1}.pt"));
                std::fs::write(&empty, []).expect("write");
                let sub = folder.join(non_utf8("sub-\u{1}"));
                std::fs::create_dir(&sub).expect("mkdir");
                let broken = sub.join(non_utf8("cut-\u{1}.safetensors"));
                std::fs::write(&broken, [1, 2, 3]).expect("write");
                let db = EmbeddingDatabase::load_dirs(&[folder], None);
                let names = db.names();
                assert_eq!(names, ["good-\u{FFFD}"], "{}", db.summary());
                assert_eq!(db.skipped().len(), 2, "{:?}", db.skipped());
                for s in db.skipped() {
                    if s.path == empty {
                        assert!(matches!(s.reason, SkipReason::Empty), "{:?}", s.reason);
                    } else {
                        assert_eq!(s.path, broken);
                        assert!(
                            matches!(
                                s.reason,
                                SkipReason::Error(EmbeddingError::Safetensors { .. })
                            ),
                            "{:?}",
                            s.reason
                        );
                        names_file(&s.reason.to_string(), &broken);
                    }
                }
            },
        },
        // ------------------------------------------------------------------- infotext
        Row {
            name: "infotext of a file that is not a PNG",
            run: |dir| {
                let p = put(dir, "garbage.png", b"\x00\xffgarbage\x01\x02");
                let e = read_png_parameters_file(&p).expect_err("not a png");
                assert!(
                    matches!(&e, InfotextError::InFile { source, .. } if matches!(**source, InfotextError::NotPng)),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "infotext of a PNG cut inside a chunk",
            run: |dir| {
                let png = png_declaring(4, 4, &[(b"tEXt", b"parameters\0a cat".to_vec())]);
                let p = put(dir, "cut.png", &png[..png.len() - 20]);
                let e = read_png_parameters_file(&p).expect_err("truncated");
                assert!(
                    matches!(&e, InfotextError::InFile { source, .. } if matches!(**source, InfotextError::Truncated { .. })),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "infotext zTXt chunk inflating to 17 MiB (a zip bomb)",
            run: |dir| {
                let mut chunk = b"parameters\0\0".to_vec();
                chunk.extend(zlib(&vec![b'a'; 17 << 20]));
                let p = put(
                    dir,
                    "ztxt-bomb.png",
                    &png_declaring(4, 4, &[(b"zTXt", chunk)]),
                );
                let e = read_png_parameters_file(&p).expect_err("bomb");
                assert!(
                    matches!(&e, InfotextError::InFile { source, .. } if matches!(**source, InfotextError::TextTooLarge { .. })),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "infotext text of garbage (no file: never fails, becomes the prompt)",
            run: |_| {
                let garbage: String = (0..20_000u32)
                    .map(|i| char::from_u32(i * 7919 % 0x2FFFF).unwrap_or(':'))
                    .chain(
                        "\nSteps: abc, Size: -1x99999999999999999999, Seed: nan, :::,\n\n".chars(),
                    )
                    .collect();
                let params = parse_generation_parameters(&garbage);
                assert!(params.iter().any(|(k, _)| k == "Prompt"), "{params:?}");
            },
        },
        // -------------------------------------------------------------------- prompts
        Row {
            name: "prompt of 100k characters (no file: parses, under the default cap)",
            run: |_| {
                let text = "a (red:1.2) cat, [dog|fox], ".repeat(100_000 / 28 + 1);
                Limits::default()
                    .check_prompt(&text)
                    .expect("under the cap");
                let p = Prompt::parse_limited(&text, sd_prompt::DEFAULT_MAX_PROMPT_CHARS)
                    .expect("under the cap");
                assert!(!p.evaluate(&Steps::new(20)).subprompts.is_empty());
            },
        },
        Row {
            name: "prompt over max_prompt_chars (no file: variant only)",
            run: |_| {
                let text = "é".repeat(1001);
                let e = Prompt::parse_limited(&text, 1000).expect_err("over");
                assert_eq!((e.chars, e.limit), (1001, 1000));
                let mut limits = Limits::default();
                limits.max_prompt_chars = 1000;
                let e: LimitExceeded = limits.check_prompt(&text).expect_err("over");
                assert_eq!(
                    (e.field, e.value, e.limit),
                    ("max_prompt_chars", 1001, 1000)
                );
            },
        },
        Row {
            name: "prompt of 10k nested '(' and of 10k nested schedules (no file: literal text)",
            run: |_| {
                // Rust's default 2 MiB thread stack, not the test harness's: a caller's worker
                // thread is what the parser must fit in.
                std::thread::Builder::new()
                    .stack_size(2 << 20)
                    .spawn(|| {
                        for text in [
                            "(".repeat(10_000),
                            format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000)),
                            format!("{}x{}", "[a:".repeat(10_000), ":5]".repeat(2_000)),
                        ] {
                            let p = Prompt::parse(&text);
                            let _ = p.evaluate(&Steps::new(20));
                            let _ = sd_prompt::parse_attention(&text);
                            if text.contains('x') {
                                let issue = p.subprompts()[0].ast().issue.clone();
                                assert!(
                                    issue.is_some_and(|i| i.kind == IssueKind::NestingLimit),
                                    "nesting beyond {} is literal",
                                    sd_prompt::MAX_NESTING
                                );
                            }
                        }
                    })
                    .expect("spawn")
                    .join()
                    .expect("no panic, no stack overflow");
            },
        },
        // ------------------------------------------------- generation requests (issue 22)
        Row {
            name: "steps = usize::MAX (no file: refused by validation, names steps and its cap)",
            run: |_| {
                let e = invalid_params(|p| p.steps = usize::MAX);
                assert_limit(&e, "max_steps", 1000);
                assert!(e.to_string().contains("steps"), "{e}");
            },
        },
        Row {
            name: "steps = 10^9 (no file: over max_steps before any schedule is allocated)",
            run: |_| {
                let e = invalid_params(|p| p.steps = 1_000_000_000);
                assert_limit(&e, "max_steps", 1000);
            },
        },
        Row {
            name: "16384×16384 picture (no file: over max_generation_pixels)",
            run: |_| {
                let e = invalid_params(|p| {
                    p.width = 16_384;
                    p.height = 16_384;
                });
                assert_limit(&e, "max_generation_pixels", 4096 * 4096);
                assert!(e.to_string().contains("width × height"), "{e}");
            },
        },
        Row {
            name: "batch size = usize::MAX (no file: over max_batch_size)",
            run: |_| {
                let e = invalid_params(|p| p.batch_size = usize::MAX);
                assert_limit(&e, "max_batch_size", 64);
                assert!(e.to_string().contains("batch_size"), "{e}");
            },
        },
        Row {
            name: "seed resize from 4294967295×4294967295 (no file: over max_generation_pixels)",
            run: |_| {
                let e = invalid_params(|p| {
                    p.seed_resize_from = Some(sd_core::noise::SeedResize {
                        width: u32::MAX,
                        height: u32::MAX,
                    })
                });
                assert_limit(&e, "max_generation_pixels", 4096 * 4096);
                assert!(e.to_string().contains("seed resize"), "{e}");
            },
        },
        Row {
            name: "subseed strength NaN (no file: a non-finite setting, named)",
            run: |_| {
                let e = invalid_params(|p| p.subseed_strength = f32::NAN);
                assert_invalid(&e, "subseed_strength");
            },
        },
        Row {
            name: "CFG scale +inf and eta NaN / -inf (no file: non-finite settings, named)",
            run: |_| {
                assert_invalid(
                    &invalid_params(|p| p.cfg_scale = f32::INFINITY),
                    "cfg_scale",
                );
                assert_invalid(&invalid_params(|p| p.eta = Some(f64::NAN)), "eta");
                assert_invalid(&invalid_params(|p| p.eta = Some(f64::NEG_INFINITY)), "eta");
            },
        },
        Row {
            name: "seed i64::MAX with a batch of 2 (no file: the second seed would wrap to -2^63)",
            run: |_| {
                let e = invalid_params(|p| {
                    p.seed = i64::MAX;
                    p.batch_size = 2;
                });
                assert_invalid(&e, "seed");
                let e = invalid_params(|p| {
                    p.subseed = i64::MAX - 1;
                    p.batch_size = 3;
                });
                assert_invalid(&e, "subseed");
                // The last seed that fits is fine.
                small_params(|p| {
                    p.seed = i64::MAX - 1;
                    p.batch_size = 2;
                })
                .validate()
                .expect("fits");
            },
        },
        Row {
            name: "denoising strength NaN and mask blur u32::MAX (no file: img2img validation)",
            run: |_| {
                let mut input = Img2ImgInput::new(image::RgbImage::new(8, 8), f32::NAN);
                let e = input.validate().expect_err("NaN strength");
                assert_invalid(&e, "denoising_strength");
                input.denoising_strength = 0.5;
                input.mask_blur = u32::MAX;
                let e = input.validate().expect_err("huge blur");
                assert_limit(&e, "max_mask_blur", 256);
                assert!(e.to_string().contains("mask_blur"), "{e}");
            },
        },
        Row {
            name: "output named .jpg (PNG bytes would be written): refused, names the file",
            run: |dir| {
                let out = dir.join("picture.jpg");
                let e = output_paths(&out, 1, None).expect_err("not .png");
                assert!(matches!(e, CoreError::OutputPath { .. }), "{e:?}");
                names_file(&e.to_string(), &out);
            },
        },
        Row {
            name: "latents file equal to a picture of the batch: refused, names the file",
            run: |dir| {
                let out = dir.join("o.png");
                let e = output_paths(&out, 2, Some(&dir.join("./o-1.png"))).expect_err("same");
                assert!(matches!(e, CoreError::OutputPath { .. }), "{e:?}");
                assert!(e.to_string().contains("o-1.png"), "{e}");
                output_paths(&out, 2, Some(&dir.join("o.safetensors"))).expect("apart");
            },
        },
        Row {
            name: "emphasis weight of 41 digits (1e40, inf as f32): refused before sampling",
            run: |_| {
                let prompt = format!("a (cat:1{}) on a mat", "0".repeat(40));
                let e = generate_err(&bundled_checkpoint(), |p| p.prompt = prompt);
                assert!(
                    matches!(
                        &e,
                        CoreError::Conditioning(ConditioningError::WeightOutOfRange { text, .. })
                            if text == "cat"
                    ),
                    "{e:?}"
                );
                assert!(e.to_string().contains("cat"), "{e}");
            },
        },
        Row {
            name: "1000 nested brackets in the negative prompt (1.1^1000 = inf as f32): refused",
            run: |_| {
                let negative = format!("{}cat{}", "(".repeat(1000), ")".repeat(1000));
                let e = generate_err(&bundled_checkpoint(), |p| p.negative_prompt = negative);
                assert!(
                    matches!(
                        e,
                        CoreError::Conditioning(ConditioningError::WeightOutOfRange { .. })
                    ),
                    "{e:?}"
                );
                // `(cat:1e40)` is literal text in A1111's emphasis syntax (weights are digits
                // and dots), so it generates.
                generate_ok(|p| p.prompt = "(cat:1e40)".into());
            },
        },
        Row {
            name: "checkpoint with NaN UNet weights: NonFinite in the UNet, not a black picture",
            run: |dir| {
                let p = poisoned_checkpoint(dir, "model.diffusion_model.out.2.bias");
                let e = generate_err(&p, |_| {});
                assert!(
                    matches!(e, CoreError::NonFinite { stage } if stage.contains("UNet")),
                    "{e:?}"
                );
            },
        },
        Row {
            name: "checkpoint with NaN text-encoder weights: NonFinite in the conditioning",
            run: |dir| {
                let p = poisoned_checkpoint(
                    dir,
                    "cond_stage_model.transformer.text_model.final_layer_norm.bias",
                );
                let e = generate_err(&p, |_| {});
                assert!(
                    matches!(e, CoreError::NonFinite { stage } if stage.contains("conditioning")),
                    "{e:?}"
                );
            },
        },
        Row {
            name: "checkpoint with NaN VAE decoder weights: NonFinite in the VAE",
            run: |dir| {
                let p = poisoned_checkpoint(dir, "first_stage_model.decoder.conv_out.bias");
                let e = generate_err(&p, |_| {});
                assert!(
                    matches!(e, CoreError::NonFinite { stage } if stage.contains("VAE")),
                    "{e:?}"
                );
            },
        },
        // ------------------------------------------------------ pictures (image_file)
        Row {
            name: "init image: a real JPEG cut in half (truncated, not grey rows)",
            run: |dir| {
                let jpeg = jpeg_bytes(64, 48, None);
                let p = put(dir, "half.jpg", &jpeg[..jpeg.len() / 2]);
                let e = Img2ImgInput::open(&p, 0.5).expect_err("truncated");
                assert!(
                    matches!(e, CoreError::Image(ImageFileError::Truncated { .. })),
                    "{e:?}"
                );
                assert!(e.to_string().contains("truncated"), "{e}");
                names_file(&e.to_string(), &p);
                // The whole file opens.
                let whole = put(dir, "whole.jpg", &jpeg);
                Img2ImgInput::open(&whole, 0.5).expect("whole");
            },
        },
        Row {
            name: "mask: a JPEG missing only its last byte (the EOI marker cut)",
            run: |dir| {
                let jpeg = jpeg_bytes(32, 32, None);
                let p = put(dir, "mask.jpg", &jpeg[..jpeg.len() - 1]);
                let mut input = Img2ImgInput::new(image::RgbImage::new(8, 8), 0.5);
                let e = input.open_mask(&p).expect_err("truncated");
                assert!(
                    matches!(e, CoreError::Image(ImageFileError::Truncated { .. })),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
                // The same check on bytes in memory.
                let e = image_file::open_limited_bytes(&jpeg[..jpeg.len() - 1], &p, 1 << 20)
                    .expect_err("truncated");
                assert!(matches!(e, ImageFileError::Truncated { .. }), "{e:?}");
            },
        },
        Row {
            name: "init image with EXIF orientation 6 (a phone photo): opened upright",
            run: |dir| {
                // Stored 64 wide, 48 high; orientation 6 = rotate 90° clockwise to view.
                let p = put(dir, "phone.jpg", &jpeg_bytes(64, 48, Some(6)));
                let input = Img2ImgInput::open(&p, 0.5).expect("opens");
                assert_eq!(
                    (input.init_image.width(), input.init_image.height()),
                    (48, 64)
                );
                let mut input = input;
                input.open_mask(&p).expect("mask opens");
                let mask = input.mask.expect("mask");
                assert_eq!((mask.width(), mask.height()), (48, 64));
            },
        },
        Row {
            name: "init image PNG declaring 20000×20000 pixels: refused from its header",
            run: |dir| {
                let p = put(dir, "bomb.png", &png_declaring(20_000, 20_000, &[]));
                let e = Img2ImgInput::open(&p, 0.5).expect_err("bomb");
                assert!(
                    matches!(
                        e,
                        CoreError::Image(ImageFileError::TooLarge {
                            width: 20_000,
                            height: 20_000,
                            ..
                        })
                    ),
                    "{e:?}"
                );
                assert!(e.to_string().contains("max_image_pixels"), "{e}");
                names_file(&e.to_string(), &p);
            },
        },
        Row {
            name: "mask that is not a picture, and a missing init image",
            run: |dir| {
                let p = put(dir, "mask.png", b"not a picture at all");
                let mut input = Img2ImgInput::new(image::RgbImage::new(8, 8), 0.5);
                let e = input.open_mask(&p).expect_err("garbage");
                assert!(
                    matches!(e, CoreError::Image(ImageFileError::Decode { .. })),
                    "{e:?}"
                );
                names_file(&e.to_string(), &p);
                let missing = dir.join("nowhere.png");
                let e = Img2ImgInput::open(&missing, 0.5).expect_err("missing");
                assert!(
                    matches!(e, CoreError::Image(ImageFileError::Io { .. })),
                    "{e:?}"
                );
                names_file(&e.to_string(), &missing);
            },
        },
        // --------------------------------------------------------------------- limits
        Row {
            name: "Limits config with an unknown field (no file: serde error)",
            run: |_| {
                let e =
                    serde_json::from_str::<Limits>(r#"{"max_pixels": 1}"#).expect_err("unknown");
                assert!(e.to_string().contains("max_pixels"), "{e}");
            },
        },
    ]
}

/// Small, valid settings for the tiny model, changed by `edit`.
fn small_params(edit: impl FnOnce(&mut GenerationRequest)) -> GenerationRequest {
    let mut p = GenerationRequest {
        prompt: "a cat".into(),
        steps: 2,
        width: 64,
        height: 64,
        seed: 1,
        subseed: 1,
        ..GenerationRequest::default()
    };
    edit(&mut p);
    p
}

/// `small_params` edited, which validation must refuse.
fn invalid_params(edit: impl FnOnce(&mut GenerationRequest)) -> CoreError {
    small_params(|_| {})
        .validate()
        .expect("the base settings are valid");
    small_params(edit).validate().expect_err("refused")
}

fn assert_invalid(e: &CoreError, field: &str) {
    assert!(
        matches!(e, CoreError::InvalidRequest { name, .. } if *name == field),
        "{e:?}"
    );
    assert!(e.to_string().contains(field), "{e}");
}

fn assert_limit(e: &CoreError, field: &str, limit: u64) {
    assert!(
        matches!(e, CoreError::Limit(l) if l.field == field && l.limit == limit),
        "{e:?}"
    );
    assert!(e.to_string().contains(field), "{e}");
}

/// txt2img of `small_params` edited, on the checkpoint `path`: the error.
fn generate_err(path: &Path, edit: impl FnOnce(&mut GenerationRequest)) -> CoreError {
    let device = DeviceChoice::Cpu.device().expect("cpu device");
    let model = StableDiffusion::load(path, &device).expect("loads");
    let params = small_params(edit);
    match model.txt2img(&params, &EmbeddingLookup::new(), &mut |_| {
        std::ops::ControlFlow::Continue(())
    }) {
        Ok(_) => panic!("{} generated", path.display()),
        Err(e) => e,
    }
}

/// txt2img of `small_params` edited, on the bundled model: must succeed.
fn generate_ok(edit: impl FnOnce(&mut GenerationRequest)) {
    let device = DeviceChoice::Cpu.device().expect("cpu device");
    let model = StableDiffusion::load(bundled_checkpoint(), &device).expect("loads");
    model
        .txt2img(&small_params(edit), &EmbeddingLookup::new(), &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .expect("generates");
}

/// The bundled checkpoint (with its config folder) written into `dir`, with every value of
/// tensor `key` (f16) set to NaN.
fn poisoned_checkpoint(dir: &Path, key: &str) -> PathBuf {
    let path = sd_core::bundled::TINY_SD1
        .extract_to(dir)
        .expect("bundled model");
    let mut bytes = std::fs::read(&path).expect("bundled checkpoint");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + header_len]).expect("header");
    let entry = &header[key];
    assert_eq!(entry["dtype"], "F16", "{key}");
    let offsets = entry["data_offsets"].as_array().expect("offsets");
    let (start, end) = (
        8 + header_len + offsets[0].as_u64().expect("start") as usize,
        8 + header_len + offsets[1].as_u64().expect("end") as usize,
    );
    for value in bytes[start..end].chunks_exact_mut(2) {
        value.copy_from_slice(&half::f16::NAN.to_le_bytes());
    }
    std::fs::write(&path, &bytes).expect("write");
    path
}

/// A `width`×`height` JPEG of a gradient, with an EXIF orientation tag when given.
fn jpeg_bytes(width: u32, height: u32, orientation: Option<u16>) -> Vec<u8> {
    use image::ImageEncoder as _;
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
    });
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    if let Some(o) = orientation {
        // A little-endian TIFF header and one IFD with one entry: Orientation (0x0112),
        // SHORT, count 1, value `o`.
        let mut tiff = b"II*\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes());
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&0x0112u16.to_le_bytes());
        tiff.extend_from_slice(&3u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&o.to_le_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        encoder.set_exif_metadata(tiff).expect("exif");
    }
    encoder
        .write_image(
            picture.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encode");
    out
}

/// `prefix` + a byte that is not UTF-8 + the rest: Linux file names are bytes.
fn non_utf8(name: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt as _;
    let (head, tail) = name.split_once('\u{1}').expect("marker");
    let mut bytes = head.as_bytes().to_vec();
    bytes.push(0xFF);
    bytes.extend_from_slice(tail.as_bytes());
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// The bundled checkpoint cut at `at(end of its header)` bytes (`usize::MAX`: its length − 1).
fn truncated_safetensors(dir: &Path, at: fn(usize) -> usize) {
    let bytes = std::fs::read(bundled_checkpoint()).expect("bundled checkpoint");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let cut = at(8 + header_len).min(bytes.len() - 1);
    let p = put(dir, &format!("cut-{cut}.safetensors"), &bytes[..cut]);
    let e = load(&p);
    assert!(
        matches!(e, CoreError::InvalidSafetensors { .. }),
        "cut at {cut}: {e:?}"
    );
    names_file(&e.to_string(), &p);
}

/// `state_dict.ckpt` (written by `torch.save`) cut at `at(length)` bytes.
fn truncated_ckpt(dir: &Path, at: fn(usize) -> usize) {
    let bytes = std::fs::read(torch_fixture("state_dict.ckpt")).expect("ckpt fixture");
    let cut = at(bytes.len());
    let p = put(dir, &format!("cut-{cut}.ckpt"), &bytes[..cut]);
    let e = load(&p);
    assert!(
        matches!(e, CoreError::TorchFile(TorchFileError::Truncated { .. })),
        "cut at {cut}: {e:?}"
    );
    names_file(&e.to_string(), &p);
}

#[test]
fn bad_input_table() {
    let rows = rows();
    assert!(rows.len() >= 30, "{} rows", rows.len());
    let mut failed = Vec::new();
    for row in &rows {
        let dir = tempfile::tempdir().expect("temp dir");
        let result = std::panic::catch_unwind(|| (row.run)(dir.path()));
        if let Err(panic) = result {
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
