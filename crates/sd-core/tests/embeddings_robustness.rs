//! Bad input never panics: every fixture cut at many lengths and with bit flips, zero-byte,
//! wrong-type, NaN-containing and hostile files — each is an embedding or a typed error.
//! (A deterministic stand-in for fuzzing: a fixed xorshift stream picks the positions, so a
//! failure reproduces.)

use std::path::{Path, PathBuf};

use sd_core::embeddings::{EmbeddingError, read_bytes};

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/embeddings/dir"
    ))
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fixtures() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in [dir(), dir().join("diffusers")] {
        for e in std::fs::read_dir(sub).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_file() && p.extension().is_some_and(|x| x != "txt") {
                let bytes = std::fs::read(&p).expect("read");
                if !bytes.is_empty() {
                    out.push((p, bytes));
                }
            }
        }
    }
    out
}

/// Truncations at 64 lengths and 200 single/multi bit flips per fixture file (15 files, about
/// 4000 decodes); the result may be Ok or Err, never a panic.
#[test]
fn truncations_and_bit_flips_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0;
    for (path, bytes) in fixtures() {
        let name = PathBuf::from(path.file_name().expect("name"));
        for i in 0..64 {
            let cut = (bytes.len() * i / 64).max(1);
            let _ = read_bytes(&name, bytes[..cut].to_vec());
            runs += 1;
        }
        for _ in 0..200 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() % b.len() as u64) as usize;
                b[at] ^= 1 << (rng.next() % 8);
            }
            let _ = read_bytes(&name, b);
            runs += 1;
        }
    }
    assert!(runs > 3000, "{runs}");
}

#[test]
fn zero_byte_and_wrong_type_files_are_typed_errors() {
    for ext in ["pt", "bin", "safetensors", "png"] {
        let r = read_bytes(Path::new(&format!("x.{ext}")), Vec::new());
        assert!(r.is_err(), "{ext}");
    }
    // A PNG named .pt, a .pt named .safetensors, a text file named .png.
    let png = std::fs::read(dir().join("plain.png")).expect("png");
    assert!(matches!(
        read_bytes(Path::new("x.pt"), png),
        Err(EmbeddingError::TorchFile(_))
    ));
    let pt = std::fs::read(dir().join("legacy.pt")).expect("pt");
    assert!(matches!(
        read_bytes(Path::new("x.safetensors"), pt),
        Err(EmbeddingError::Safetensors { .. })
    ));
    assert!(matches!(
        read_bytes(Path::new("x.png"), b"hello".to_vec()),
        Err(EmbeddingError::Image { .. })
    ));
    assert!(matches!(
        read_bytes(Path::new("x.txt"), b"hello".to_vec()),
        Err(EmbeddingError::UnknownExtension { .. })
    ));
}

fn safetensors_with(name: &str, values: &[f32], shape: &[usize]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &data)
        .expect("view");
    safetensors::serialize([(name, view)], None).expect("serialize")
}

#[test]
fn nan_and_bad_shapes_are_typed_errors() {
    let nan = safetensors_with("emb_params", &[0.1, f32::NAN, 0.3, 0.4], &[2, 2]);
    match read_bytes(Path::new("n.safetensors"), nan) {
        Err(EmbeddingError::NonFinite { key, index, .. }) => {
            assert_eq!((key.as_str(), index), ("emb_params", 1))
        }
        other => panic!("{other:?}"),
    }
    let inf = safetensors_with("t", &[f32::INFINITY], &[1]);
    assert!(matches!(
        read_bytes(Path::new("n.safetensors"), inf),
        Err(EmbeddingError::NonFinite { .. })
    ));
    let cube = safetensors_with("t", &[0.0; 8], &[2, 2, 2]);
    assert!(matches!(
        read_bytes(Path::new("c.safetensors"), cube),
        Err(EmbeddingError::Shape { .. })
    ));
    let empty = safetensors_with("t", &[], &[0, 768]);
    assert!(matches!(
        read_bytes(Path::new("e.safetensors"), empty),
        Err(EmbeddingError::Shape { .. })
    ));
    // A pickle that names os.system: refused by the safe reader, never run.
    let hostile = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00echo\x85R.".to_vec();
    assert!(matches!(
        read_bytes(Path::new("h.pt"), hostile),
        Err(EmbeddingError::TorchFile(_))
    ));
    // The embedding JSON of an image with NaN (Python's json.dumps writes it; serde refuses).
    let png = sd_core::infotext::encode_png_rgb8(
        1,
        1,
        &[1, 2, 3],
        &[(
            "sd-ti-embedding",
            &base64_of(br#"{"string_to_param": {"*": {"TORCHTENSOR": [[NaN]]}}}"#),
        )],
    )
    .expect("png");
    assert!(matches!(
        read_bytes(Path::new("n.png"), png),
        Err(EmbeddingError::Image { .. })
    ));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn writers_refuse_inconsistent_embeddings() {
    use sd_core::embeddings::{Embedding, Vectors};
    let bad = Embedding::new(
        "bad",
        Vectors {
            n: 2,
            dim: 768,
            data: vec![0.0; 10],
        },
    );
    let empty = Embedding::new(
        "empty",
        Vectors {
            n: 0,
            dim: 768,
            data: Vec::new(),
        },
    );
    for e in [&bad, &empty] {
        for ext in ["pt", "bin", "safetensors", "png"] {
            let r = sd_core::embeddings::to_bytes(Path::new(&format!("x.{ext}")), e);
            assert!(matches!(r, Err(EmbeddingError::Invalid { .. })), "{ext}");
        }
    }
}
