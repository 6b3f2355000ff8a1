//! Embedding files in every layout and the embeddings folder, against what the real libraries
//! wrote and what A1111's own loader made of them (`tools/embedding_reference.py`, output in
//! `fixtures/embeddings/expected.json`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use sd_core::embeddings::{
    Embedding, EmbeddingDatabase, EmbeddingError, EmbeddingFormat, SkipReason, Vectors,
    formats::{png_image, png_pixels},
    read_file, to_bytes,
};

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/embeddings"
    ))
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("json")
}

fn values_sha(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn find_file(name: &str) -> PathBuf {
    let dir = fixtures().join("dir");
    for p in [dir.join(name), dir.join("diffusers").join(name)] {
        if p.exists() {
            return p;
        }
    }
    panic!("no fixture {name}");
}

/// Every file A1111 loaded (or skipped for its width): same name, shape, values (sha256 of the
/// f32 values: exact), checksum and metadata.
#[test]
fn files_read_as_a1111_reads_them() {
    let exp = expected();
    let mut seen = 0;
    for group in ["loaded", "skipped"] {
        for e in exp[group].as_array().expect("list") {
            let file = e["file"].as_str().expect("file");
            let (emb, format) =
                read_file(&find_file(file)).unwrap_or_else(|err| panic!("{file}: {err}"));
            assert_eq!(emb.name, e["name"].as_str().expect("name"), "{file}");
            assert_eq!(
                emb.vectors.n as u64,
                e["vectors"].as_u64().expect("n"),
                "{file}"
            );
            assert_eq!(
                emb.shape() as u64,
                e["shape"].as_u64().expect("shape"),
                "{file}"
            );
            assert_eq!(emb.step, e["step"].as_i64(), "{file}");
            assert_eq!(
                emb.sd_checkpoint.as_deref(),
                e["sd_checkpoint"].as_str(),
                "{file}"
            );
            assert_eq!(
                emb.sd_checkpoint_name.as_deref(),
                e["sd_checkpoint_name"].as_str(),
                "{file}"
            );
            assert_eq!(emb.checksum().as_deref(), e["checksum"].as_str(), "{file}");
            match &e["values_sha256"] {
                Value::String(sha) => assert_eq!(&values_sha(&emb.vectors.data), sha, "{file}"),
                Value::Object(parts) => {
                    assert_eq!(format, EmbeddingFormat::Sdxl);
                    assert_eq!(values_sha(&emb.vectors.data), parts["clip_l"], "{file}");
                    let g = emb.clip_g.as_ref().expect("clip_g");
                    assert_eq!(values_sha(&g.data), parts["clip_g"], "{file}");
                }
                other => panic!("{other}"),
            }
            let want_format = match file {
                "image-text.png" => EmbeddingFormat::PngText,
                "image-pixels.png" => EmbeddingFormat::PngPixels,
                "learned_embeds.safetensors" => EmbeddingFormat::DiffusersSafetensors,
                "kohya-bf16.safetensors" => EmbeddingFormat::KohyaSafetensors,
                "old-token.bin" => EmbeddingFormat::DiffusersTorch,
                "sdxl-emb.safetensors" => EmbeddingFormat::Sdxl,
                _ => EmbeddingFormat::A1111Torch,
            };
            assert_eq!(format, want_format, "{file}");
            seen += 1;
        }
    }
    assert_eq!(seen, 11);
    // The trained file keeps torch's requires_grad (A1111 trains with vec.requires_grad=True).
    let (trained, _) = read_file(&find_file("realbenny-t1.pt")).expect("read");
    assert!(trained.requires_grad);
}

/// The folder as A1111's EmbeddingDatabase sees it for a 768-wide model: the same names in
/// the same (case-insensitive) order, the same width skips, the same failures — plus the
/// files A1111 passes over silently, each with its reason.
#[test]
fn database_matches_a1111() {
    let exp = expected();
    let db = EmbeddingDatabase::load_dirs(&[fixtures().join("dir")], Some(768));
    let names = |k: &str| -> Vec<String> {
        exp[k]
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["name"].as_str().expect("name").to_string())
            .collect()
    };
    // One deliberate difference: A1111 skips an SDXL file on an SD 1.x model (its width is
    // 768 + 1280); we use its `clip_l` half, which is SD 1.x's own text encoder's width.
    let mut want_loaded = names("loaded");
    want_loaded.push("sdxl-emb".into());
    assert_eq!(db.names(), want_loaded);
    for e in exp["loaded"].as_array().expect("list") {
        let loaded = db.get(e["name"].as_str().expect("name")).expect("loaded");
        assert_eq!(loaded.sha256, e["sha256"].as_str().expect("sha"));
        assert_eq!(
            loaded.shorthash(),
            &e["sha256"].as_str().expect("sha")[..12]
        );
    }
    let skipped_for_width: Vec<String> = db
        .skipped()
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::WrongWidth { .. }))
        .map(|s| s.name.clone().expect("name"))
        .collect();
    let want: Vec<String> = names("skipped")
        .into_iter()
        .filter(|n| n != "sdxl-emb")
        .collect();
    assert_eq!(skipped_for_width, want);
    let reason_of = |file: &str| {
        db.skipped()
            .iter()
            .find(|s| s.path.file_name().is_some_and(|n| n == file))
            .map(|s| s.reason.to_string())
            .unwrap_or_else(|| panic!("{file} not skipped"))
    };
    assert_eq!(
        reason_of("sd2-wide.pt"),
        "trained for a 1024-wide text encoder; this model's is 768"
    );
    assert_eq!(reason_of("empty.pt"), "empty file");
    assert_eq!(reason_of("realbenny-t1.preview.png"), "a preview image");
    assert_eq!(reason_of("plain.png"), "an image without embedding data");
    for file in exp["errors"].as_array().expect("list") {
        let file = file.as_str().expect("file");
        assert!(
            matches!(
                db.skipped()
                    .iter()
                    .find(|s| s.path.file_name().is_some_and(|n| n == file))
                    .map(|s| &s.reason),
                Some(SkipReason::Error(_))
            ),
            "{file}"
        );
    }
    assert!(
        db.skipped()
            .iter()
            .all(|s| s.path.extension().is_none_or(|x| x != "txt"))
    );
    assert!(
        db.summary()
            .starts_with("Textual inversion embeddings loaded(10): Half-F16, img-pixels-name")
    );
    // The lookup carries each file's shorthash, for the `TI hashes` infotext entry.
    let tokenizer = sd_clip::ClipTokenizer::standard().expect("vocabulary");
    let lookup = db.lookup(&tokenizer).expect("lookup");
    let id = lookup.id_of("realbenny-t1").expect("registered");
    assert_eq!(
        lookup.get(id).and_then(|e| e.shorthash.as_deref()),
        Some(&db.get("realbenny-t1").expect("e").sha256[..12])
    );

    // An SD 2.x model: only the 1024-wide file fits.
    let mut db2 = EmbeddingDatabase::load_dirs(&[fixtures().join("dir")], Some(1024));
    assert_eq!(db2.names(), ["sd2-wide"]);
    db2.reload();
    assert_eq!(db2.names(), ["sd2-wide"]);
}

#[test]
fn database_registers_with_the_tokenizer() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut e = Embedding::new(
        "realbenny-t2",
        Vectors::new(2, 768, vec![0.25; 1536]).expect("v"),
    );
    e.step = Some(1);
    sd_core::embeddings::write_file(&dir.path().join("realbenny-t2.pt"), &e).expect("write");
    e.name = "realbenny".into();
    sd_core::embeddings::write_file(&dir.path().join("sub/RealBenny.safetensors"), &e)
        .expect("write");
    let db = EmbeddingDatabase::load_dirs(&[dir.path().to_path_buf()], Some(768));
    assert_eq!(db.names(), ["RealBenny", "realbenny-t2"]);
    let tokenizer = sd_clip::ClipTokenizer::standard().expect("tokenizer");
    let lookup = db.lookup(&tokenizer).expect("lookup");
    let ids = tokenizer.encode("a realbenny-t2 photo").expect("ids");
    let (id, len) = lookup.find_at(&ids, 1).expect("match");
    assert_eq!(lookup.get(id).expect("e").name, "realbenny-t2");
    assert_eq!(len, tokenizer.encode("realbenny-t2").expect("ids").len());
}

#[test]
fn lcg_matches_a1111() {
    let exp = expected();
    let want: Vec<u8> = exp["lcg_first"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_u64().expect("n") as u8)
        .collect();
    let got: Vec<u8> = png_pixels::Lcg::new().take(want.len()).collect();
    assert_eq!(got, want);
    assert_eq!(&got[..8], [253, 242, 127, 44, 157, 27, 239, 133]);
}

/// Our `insert_data` on A1111's own inputs (the captioned picture and compressed stream,
/// recovered from A1111's image) reproduces A1111's image pixel for pixel: layout, dot
/// pattern (PIL's ellipse), LCG XOR.
#[test]
fn pixel_encoding_is_a1111s_exactly() {
    let path = find_file("image-pixels.png");
    let img = png_image::decode_rgb(&path, &std::fs::read(&path).expect("read")).expect("decode");
    let blocks = png_pixels::extract_blocks(&img).expect("blocks");
    // The compressed stream's own length: what zlib consumed.
    let mut d = flate2::Decompress::new(true);
    let mut out = vec![0u8; 1 << 20];
    d.decompress(&blocks, &mut out, flate2::FlushDecompress::Finish)
        .expect("zlib");
    let compressed = &blocks[..d.total_in() as usize];
    let (emb, _) = read_file(&path).expect("read");
    let (w, h) = (img.width, img.height);
    let bw = (w - 128 - 2) / 2;
    let mut picture = png_pixels::RgbImage {
        width: 128,
        height: h,
        pixels: Vec::new(),
    };
    for y in 0..h {
        let at = (y * w + bw + 1) * 3;
        picture
            .pixels
            .extend_from_slice(&img.pixels[at..at + 128 * 3]);
    }
    let style = png_pixels::edge_style(emb.vectors.row(0));
    let ours = png_pixels::insert_data(&picture, compressed, &style);
    assert_eq!((ours.width, ours.height), (w, h));
    let diff = ours
        .pixels
        .iter()
        .zip(&img.pixels)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(diff, 0, "pixels differ from A1111's");
}

/// The caption gradient equals A1111's `caption_image_overlay` without its text (exact).
#[test]
fn caption_gradient_is_a1111s() {
    let path = fixtures().join("caption_gradient.png");
    let want = png_image::decode_rgb(&path, &std::fs::read(&path).expect("read")).expect("decode");
    let (w, h) = (64usize, 48usize);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            pixels.extend_from_slice(&[
                ((x * 7 + y * 3) % 256) as u8,
                ((x * y) % 256) as u8,
                ((255 + 256 * 4 - x * 4) % 256) as u8,
            ]);
        }
    }
    let mut img = png_pixels::RgbImage {
        width: w,
        height: h,
        pixels,
    };
    png_image::caption_gradient(&mut img);
    assert_eq!(img, want);
}

fn sample(name: &str, n: usize, dim: usize) -> Embedding {
    let data = (0..n * dim)
        .map(|i| ((i as f32) * 0.37).sin() * 0.03 - 1e-7 * i as f32)
        .collect();
    let mut e = Embedding::new(name, Vectors::new(n, dim, data).expect("v"));
    e.step = Some(500);
    e.sd_checkpoint = Some("a1b2c3d4e5f6".into());
    e.sd_checkpoint_name = Some("sd15-tiny".into());
    e.requires_grad = true;
    e
}

#[test]
fn every_written_format_reads_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = sample("round-trip", 3, 768);
    for (file, format) in [
        ("round-trip.pt", EmbeddingFormat::A1111Torch),
        ("round-trip.bin", EmbeddingFormat::DiffusersTorch),
        (
            "round-trip.safetensors",
            EmbeddingFormat::DiffusersSafetensors,
        ),
        ("round-trip.png", EmbeddingFormat::PngText),
    ] {
        let path = dir.path().join(file);
        sd_core::embeddings::write_file(&path, &e).expect("write");
        let (back, f) = read_file(&path).expect("read");
        assert_eq!(f, format, "{file}");
        assert!(back.vectors == e.vectors, "{file}: values differ");
        assert_eq!(back.checksum(), e.checksum(), "{file}");
        if matches!(
            format,
            EmbeddingFormat::A1111Torch | EmbeddingFormat::PngText
        ) {
            assert_eq!(back.name, e.name, "{file}");
            assert_eq!(
                (back.step, &back.sd_checkpoint, &back.sd_checkpoint_name),
                (e.step, &e.sd_checkpoint, &e.sd_checkpoint_name),
                "{file}"
            );
        }
        // Only torch files carry requires_grad.
        assert_eq!(
            back.requires_grad,
            format == EmbeddingFormat::A1111Torch,
            "{file}"
        );
    }
    // The PNG's pixel data alone holds the same embedding.
    let path = dir.path().join("round-trip.png");
    let img = png_image::decode_rgb(&path, &std::fs::read(&path).expect("read")).expect("decode");
    let json = png_pixels::extract_data(&img).expect("pixels");
    let text = sd_core::embeddings::formats::png_text::to_json(&path, &e).expect("json");
    assert_eq!(json, text.as_bytes());
    // kohya layout.
    let bytes = sd_core::embeddings::formats::safetensors::write(
        &path,
        &e,
        sd_core::embeddings::SafetensorsLayout::Kohya,
    )
    .expect("kohya");
    let (back, f) =
        sd_core::embeddings::read_bytes(Path::new("k.safetensors"), bytes).expect("read");
    assert_eq!(
        (f, back.name.as_str()),
        (EmbeddingFormat::KohyaSafetensors, "k")
    );
    // SDXL round trip through safetensors; no .pt or .png form.
    let (sdxl, _) = read_file(&find_file("sdxl-emb.safetensors")).expect("sdxl");
    let bytes = to_bytes(Path::new("x.safetensors"), &sdxl).expect("write");
    let (back, f) =
        sd_core::embeddings::read_bytes(Path::new("x.safetensors"), bytes).expect("read");
    assert_eq!(
        (f, &back.vectors, &back.clip_g),
        (EmbeddingFormat::Sdxl, &sdxl.vectors, &sdxl.clip_g)
    );
    assert!(matches!(
        to_bytes(Path::new("x.pt"), &sdxl),
        Err(EmbeddingError::Write { .. })
    ));
}

/// The files under fixtures/embeddings/written_by_rust/ (checked by the reference tool's
/// `--verify`) are what the writer produces today, byte for byte.
const WRITTEN: [(&str, usize, usize); 5] = [
    ("rust-a1111.pt", 3, 768),
    ("rust-tiny.pt", 2, 32),
    ("rust-tiny-diffusers.safetensors", 2, 32),
    ("rust-tiny-bin.bin", 2, 32),
    ("rust-image.png", 1, 32),
];

fn written(file: &str, n: usize, dim: usize) -> (Embedding, Vec<u8>) {
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("stem");
    let e = sample(stem, n, dim);
    let bytes = to_bytes(Path::new(file), &e).expect("write");
    (e, bytes)
}

#[test]
fn written_fixtures_are_current() {
    let dir = fixtures().join("written_by_rust");
    for (file, n, dim) in WRITTEN {
        let (_, bytes) = written(file, n, dim);
        let committed = std::fs::read(dir.join(file)).expect("committed file");
        assert!(
            committed == bytes,
            "{file} differs from the writer's output: rerun write_rust_fixtures and --verify"
        );
    }
    // What the verify run found (its output is committed).
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("verify.json")).expect("verify.json"),
    )
    .expect("json");
    for (file, _, dim) in WRITTEN {
        let r = &report[file];
        assert!(r.get("error").is_none(), "{file}: {r}");
        assert_eq!(r["a1111_loader"]["matches_rust_claim"], true, "{file}: {r}");
        if file.ends_with(".pt") {
            assert_eq!(r["torch_load_weights_only"], "ok");
            assert_eq!(r["a1111_safe_check_pt"], "ok");
        }
        if file.ends_with(".png") {
            assert_eq!(
                r["a1111_extract_image_data_embed"]["matches_rust_claim"], true,
                "{file}: {r}"
            );
            assert_eq!(
                r["a1111_embedding_from_b64"]["matches_rust_claim"], true,
                "{file}: {r}"
            );
        }
        if dim == 32 && !file.ends_with(".png") {
            assert_eq!(
                r["diffusers_load_textual_inversion"]["matches_rust_claim"], true,
                "{file}: {r}"
            );
        }
    }
}

/// Writes fixtures/embeddings/written_by_rust/ and claims.json, for the reference tool's
/// `--verify`: `cargo test -p sd-core --test embeddings -- --ignored write_rust_fixtures`.
#[test]
#[ignore = "rewrites committed fixtures"]
fn write_rust_fixtures() {
    let dir = fixtures().join("written_by_rust");
    let mut claims = serde_json::Map::new();
    for (file, n, dim) in WRITTEN {
        let (e, bytes) = written(file, n, dim);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(file), bytes).expect("write");
        let name = if file.ends_with(".png") {
            e.name.clone()
        } else {
            Path::new(file)
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("stem")
                .to_string()
        };
        claims.insert(
            file.into(),
            serde_json::json!({
                "name": name, "vectors": n, "dim": dim,
                "values_sha256": values_sha(&e.vectors.data), "checksum": e.checksum(),
            }),
        );
    }
    let text = serde_json::to_string_pretty(&Value::Object(claims)).expect("json");
    std::fs::write(dir.join("claims.json"), text + "\n").expect("write");
}

/// The JSON we embed is byte for byte what A1111's `json.dumps(data, cls=EmbeddingEncoder)`
/// wrote into its own image (key order, separators, float spelling).
#[test]
fn embedded_json_is_a1111s_byte_for_byte() {
    use base64::Engine as _;
    let path = find_file("image-text.png");
    let bytes = std::fs::read(&path).expect("read");
    let text = sd_core::infotext::read_png_text(&bytes)
        .expect("chunks")
        .into_iter()
        .find(|t| t.keyword == "sd-ti-embedding")
        .expect("chunk")
        .text;
    let theirs = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("b64");
    let (e, _) = read_file(&path).expect("read");
    let ours = sd_core::embeddings::formats::png_text::to_json(&path, &e).expect("json");
    assert_eq!(ours, String::from_utf8(theirs).expect("utf8"));
    // The pixel copy holds the same JSON.
    let img = png_image::decode_rgb(&path, &bytes).expect("decode");
    assert_eq!(
        png_pixels::extract_data(&img).expect("pixels"),
        ours.as_bytes()
    );
}
