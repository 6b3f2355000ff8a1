//! `sd-infotext` against A1111's own infotext code.
//!
//! The fixtures come from `tools/infotext_reference.py`, which runs A1111's real
//! `parse_generation_parameters`, `quote` and `unquote` (`modules/infotext_utils.py`, v1.10)
//! and `create_infotext`'s formatting, and writes PNGs with PIL as A1111 does. Everything here
//! is text or bytes: comparisons are exact.

use sd_infotext::{
    GenerationParameters, InfotextError, InfotextValue, PARAMETERS_KEY, TextChunkKind,
    encode_png_rgb8, parse_generation_parameters, read_png_parameters, read_png_parameters_file,
    read_png_text, set_png_text,
};
use serde::Deserialize;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/infotext");

fn load<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{DIR}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(Deserialize)]
struct ParseCase {
    name: String,
    text: String,
    /// `parse_generation_parameters(text)`, as `[key, value]` pairs in dict order.
    a1111: Vec<(String, InfotextValue)>,
    /// `create_infotext`'s formatting applied to what A1111 parsed (prompt, negative prompt,
    /// last-line pairs in order); null where the parser changed the prompt (`Hypernet`).
    rewrite: Option<String>,
    /// `rewrite == text`.
    round_trips: bool,
}

#[test]
fn parse_matches_a1111_for_every_case() {
    let cases: Vec<ParseCase> = load("parse.json");
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let ours = parse_generation_parameters(&case.text);
        if ours != case.a1111 {
            failures.push(format!(
                "{}:\n  ours  {ours:?}\n  a1111 {:?}",
                case.name, case.a1111
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn typed_parse_agrees_with_a1111_map() {
    // Every key A1111 read from the text is either a typed field or an extra, with the same
    // value; sizes are split the same way.
    let cases: Vec<ParseCase> = load("parse.json");
    for case in &cases {
        let p = GenerationParameters::parse(&case.text);
        let a = |key: &str| {
            case.a1111
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_text())
        };
        if !case.text.contains("Hypernet") {
            assert_eq!(Some(p.prompt.clone()), a("Prompt"), "{}", case.name);
        }
        assert_eq!(
            Some(p.negative_prompt.clone()),
            a("Negative prompt"),
            "{}",
            case.name
        );
        if let Some(steps) = p.steps {
            assert_eq!(a("Steps"), Some(steps.to_string()), "{}", case.name);
        }
        if let Some(sampler) = &p.sampler {
            assert_eq!(a("Sampler").as_ref(), Some(sampler), "{}", case.name);
        }
        if let (Some(w), Some(h)) = (p.width, p.height)
            && a("First pass size-1").is_none()
        {
            assert_eq!(a("Size-1"), Some(w.to_string()), "{}", case.name);
            assert_eq!(a("Size-2"), Some(h.to_string()), "{}", case.name);
        }
        for (k, v) in &p.extra {
            if !matches!(k.as_str(), "Size" | "Hypernet") && !k.ends_with("size") {
                assert_eq!(a(k).as_ref(), Some(v), "{}: extra {k}", case.name);
            }
        }
    }
}

#[test]
fn write_of_parse_reproduces_a1111_formatting() {
    let cases: Vec<ParseCase> = load("parse.json");
    let mut round_trips = 0;
    for case in &cases {
        let p = GenerationParameters::parse(&case.text);
        let ours = p.to_infotext();
        if let Some(rewrite) = &case.rewrite {
            assert_eq!(&ours, rewrite, "{}: ours vs A1111's formatting", case.name);
        }
        if case.round_trips {
            assert_eq!(ours, case.text, "{}: round trip", case.name);
            round_trips += 1;
        }
        // Parsing our text again gives the same parameters (a fixed point).
        let again = GenerationParameters::parse(&ours);
        assert_eq!(again.to_infotext(), ours, "{}: second round", case.name);
    }
    assert!(round_trips >= 40, "{round_trips} cases round trip");
}

#[derive(Deserialize)]
struct WriteCase {
    name: String,
    /// The values create_infotext wrote, as `GenerationParameters` JSON.
    params: GenerationParameters,
    /// `create_infotext`'s text for them.
    text: String,
    /// `parse_generation_parameters(text)`.
    a1111: Vec<(String, InfotextValue)>,
}

#[test]
fn to_infotext_matches_create_infotext() {
    let cases: Vec<WriteCase> = load("write.json");
    for case in &cases {
        assert_eq!(case.params.to_infotext(), case.text, "{}", case.name);
        assert_eq!(
            parse_generation_parameters(&case.text),
            case.a1111,
            "{}",
            case.name
        );
    }
}

#[test]
fn edited_parameters_keep_order_and_place_new_keys() {
    let text = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 1, Size: 512x512, Lora hashes: \"x: 0123\", Version: v1.10.1";
    let mut p = GenerationParameters::parse(text);
    assert_eq!(
        p.hash_list("Lora hashes"),
        [("x".to_string(), "0123".to_string())]
    );
    // Unchanged CFG keeps `7.0`; a changed one is printed as A1111's UI prints it.
    assert_eq!(p.to_infotext(), text);
    p.cfg_scale = Some(8.0);
    p.schedule_type = Some("Karras".into());
    p.denoising_strength = Some(0.5);
    p.seed = None;
    assert_eq!(
        p.to_infotext(),
        "a cat\nSteps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 8, Size: 512x512, Denoising strength: 0.5, Lora hashes: \"x: 0123\", Version: v1.10.1"
    );
    // serde keeps the layout, so a JSON round trip writes the same text.
    let json = serde_json::to_string(&p).expect("serialize");
    let back: GenerationParameters = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back.to_infotext(), p.to_infotext());
}

#[derive(Deserialize)]
struct PngCase {
    file: String,
    /// PIL's `Image.open(file).info.get("parameters")`.
    parameters: Option<String>,
    pixels: Vec<[u8; 3]>,
    size: [u32; 2],
}

#[test]
fn reads_pil_written_pngs() {
    let cases: Vec<PngCase> = load("png.json");
    let mut kinds = Vec::new();
    for case in &cases {
        let path = std::path::PathBuf::from(format!("{DIR}/{}", case.file));
        assert_eq!(
            read_png_parameters_file(&path).expect("read"),
            case.parameters,
            "{}",
            case.file
        );
        let bytes = std::fs::read(&path).expect("read");
        kinds.extend(
            read_png_text(&bytes)
                .expect("text")
                .into_iter()
                .filter(|t| t.keyword == PARAMETERS_KEY)
                .map(|t| t.kind),
        );
        // Re-encoding the same pixels with the same text as PIL's add_text gives the same
        // text chunk, read back the same way.
        let pixels: Vec<u8> = case.pixels.iter().flatten().copied().collect();
        if let Some(text) = &case.parameters {
            let ours = encode_png_rgb8(
                case.size[0],
                case.size[1],
                &pixels,
                &[(PARAMETERS_KEY, text)],
            )
            .expect("encode");
            assert_eq!(
                read_png_parameters(&ours).expect("read").as_ref(),
                Some(text)
            );
        }
    }
    // The fixtures cover every chunk type A1111 (through PIL) can write.
    for kind in [
        TextChunkKind::Text,
        TextChunkKind::CompressedText,
        TextChunkKind::International { compressed: false },
        TextChunkKind::International { compressed: true },
    ] {
        assert!(kinds.contains(&kind), "{kind:?}");
    }
}

#[test]
fn our_chunks_are_the_chunks_pil_writes() {
    // pil_text.png / pil_itxt.png hold exactly one text chunk each, made by PngInfo.add_text;
    // ours for the same text must be byte-identical (tEXt for Latin-1, iTXt otherwise).
    for (file, kind) in [("pil_text.png", *b"tEXt"), ("pil_itxt.png", *b"iTXt")] {
        let bytes = std::fs::read(format!("{DIR}/{file}")).expect("read");
        let text = read_png_parameters(&bytes)
            .expect("read")
            .expect("parameters");
        let (ours_kind, data) = sd_infotext::text_chunk(PARAMETERS_KEY, &text).expect("chunk");
        assert_eq!(ours_kind, kind);
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(&kind);
        chunk.extend_from_slice(&data);
        assert!(
            bytes.windows(chunk.len()).any(|w| w == chunk),
            "{file}: PIL's chunk differs"
        );
    }
}

/// Replacing the text keeps every other chunk, PIL's included. (Writing a file and reading
/// it back is `sd-core`'s `infotext::write_png_rgb8` test.)
#[test]
fn png_replace_keeps_every_other_chunk() {
    let pil = std::fs::read(format!("{DIR}/pil_ztxt.png")).expect("read");
    let replaced = set_png_text(&pil, PARAMETERS_KEY, "new text").expect("set");
    let texts = read_png_text(&replaced).expect("text");
    let summary: Vec<_> = texts
        .iter()
        .map(|t| (t.keyword.as_str(), t.text.as_str()))
        .collect();
    assert_eq!(summary, [("Software", "x"), ("parameters", "new text")]);
    assert_eq!(
        replaced.len(),
        pil.len() - chunk_len(&pil, b"zTXt", "parameters") + 12 + "parameters\0new text".len()
    );
    // The image decodes to the same pixels.
    let decode = |b: &[u8]| {
        let mut reader = png::Decoder::new(std::io::Cursor::new(b.to_vec()))
            .read_info()
            .expect("png");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        reader.next_frame(&mut buf).expect("frame");
        buf
    };
    assert_eq!(decode(&replaced), decode(&pil));
}

/// The length of the `kind` chunk whose keyword is `key` (whole chunk, header and CRC).
fn chunk_len(png: &[u8], kind: &[u8; 4], key: &str) -> usize {
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes")) as usize;
        let data = &png[at + 8..at + 8 + len];
        if &png[at + 4..at + 8] == kind && data.starts_with(key.as_bytes()) {
            return len + 12;
        }
        at += len + 12;
    }
    panic!("no {key} chunk");
}

#[test]
fn hostile_pngs_are_errors_not_panics() {
    let good = std::fs::read(format!("{DIR}/pil_text.png")).expect("read");
    assert!(matches!(
        read_png_text(b"GIF89a"),
        Err(InfotextError::NotPng)
    ));
    for cut in [9, 20, 40, good.len() - 1] {
        assert!(
            matches!(
                read_png_text(&good[..cut]),
                Err(InfotextError::Truncated { .. })
            ),
            "cut {cut}"
        );
    }
    // Flip a byte inside the tEXt chunk's text: PIL refuses it (bad CRC), so do we.
    let at = good.windows(4).position(|w| w == b"tEXt").expect("tEXt") + 10;
    let mut bad = good.clone();
    bad[at] ^= 1;
    assert!(matches!(
        read_png_text(&bad),
        Err(InfotextError::BadCrc { .. })
    ));
    // A huge declared length is a truncation, not an allocation.
    let mut huge = good[..8].to_vec();
    huge.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    huge.extend_from_slice(b"tEXt");
    assert!(matches!(
        read_png_text(&huge),
        Err(InfotextError::Truncated { .. })
    ));
    // A zip bomb in zTXt is refused.
    let bomb_text = "a".repeat(sd_infotext::MAX_TEXT_CHUNK + 1);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, bomb_text.as_bytes()).expect("compress");
    let mut data = b"parameters\0\0".to_vec();
    data.extend(z.finish().expect("finish"));
    let bomb = with_chunk(&good, *b"zTXt", &data);
    assert!(matches!(
        read_png_text(&bomb),
        Err(InfotextError::TextTooLarge { .. })
    ));
    // Malformed iTXt is skipped, as PIL skips it.
    let skipped = with_chunk(&good, *b"iTXt", b"parameters\0\x01\x00\0\0not zlib");
    assert_eq!(
        read_png_parameters(&skipped).expect("read"),
        read_png_parameters(&good).expect("read")
    );
    assert!(matches!(
        encode_png_rgb8(2, 2, &[0; 11], &[]),
        Err(InfotextError::PixelBuffer {
            expected: 12,
            actual: 11,
            ..
        })
    ));
    assert!(matches!(
        encode_png_rgb8(1, 1, &[0; 3], &[("bad\0key", "x")]),
        Err(InfotextError::InvalidKeyword { .. })
    ));
}

/// `png` with one more chunk appended after all the others' text (before IEND).
fn with_chunk(png: &[u8], kind: [u8; 4], data: &[u8]) -> Vec<u8> {
    let iend = png.len() - 12;
    let mut out = png[..iend].to_vec();
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&kind);
    out.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(&kind);
    h.update(data);
    out.extend_from_slice(&h.finalize().to_be_bytes());
    out.extend_from_slice(&png[iend..]);
    out
}

#[test]
fn parser_never_panics_on_odd_text() {
    let long = "word, ".repeat(50_000);
    for text in [
        "",
        "\n\n\n",
        "Negative prompt:",
        "\"",
        "a: \"",
        "a: \"\\",
        "ab: \"\\u12\", cd: 1, ef: 2",
        "ab: \"\\ud800\", cd: 1, ef: 2",
        long.as_str(),
        "ab: 1, First pass size: 0x0, Size: 0x0, Steps: 1",
        "ab: 1, First pass size: 0x0, Size: 99999999999x99999999999, Steps: 1",
    ] {
        let _ = parse_generation_parameters(text);
        let p = GenerationParameters::parse(text);
        let _ = p.to_infotext();
    }
}
