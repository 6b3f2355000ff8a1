//! Fuzz targets for every parser of the workspace that sees user input.
//!
//! Each target is a `pub fn <target>(data: &[u8])` that feeds the bytes to one parser and
//! checks what DESIGN.md section 7 promises: the call returns (`Ok` or a typed `Err`) and never
//! panics, and nothing it allocates is sized by a number in the input rather than by the input
//! itself. Where it is cheap a target also checks a round trip ("what the writer writes, the
//! reader reads back equal"). A target panics only when such a check fails, which is how a
//! fuzzer reports a bug.
//!
//! The same functions serve two drivers:
//! - `fuzz/` at the repository root, a cargo-fuzz project (nightly, libFuzzer), one binary per
//!   target, for long runs (`cargo +nightly fuzz run <target>`); see `fuzz/README.md`;
//! - `tests/short_fuzz.rs` of this crate, the CI short mode on stable: every corpus and
//!   regression file of each target, then a fixed, deterministic mutation loop.
//!
//! Targets never write files. Labels in error messages use made-up paths (`fuzz.pt`, ...)
//! that are never opened.
//!
//! | target | parser |
//! |---|---|
//! | [`prompt`] | `sd_prompt`: `AND` split, subprompt parser, schedules, emphasis |
//! | [`pickle`] | `sd_torch_file::unpickle`, and the pickle writer |
//! | [`torch_zip`] | `sd_torch_file::TorchFile::from_bytes` (zip and legacy), tensors, `.pt` embeddings |
//! | [`safetensors_header`] | safetensors files as embeddings, and `TorchFile::to_safetensors` output |
//! | [`embedding_png_text`] | PNG embeddings: the `sd-ti-embedding` text chunk |
//! | [`embedding_png_pixels`] | PNG embeddings: A1111's pixel data blocks |
//! | [`infotext()`] | `sd_infotext`: the infotext parser and the PNG text chunks |
//! | [`lr_schedule`] | `sd_textual_inversion::dataset::schedule`: learning-rate and clip-grad schedules |
//! | [`preprocess_image`] | image decoding of `sd_textual_inversion::preprocess::load` |
//! | [`tokenizer`] | `sd_clip::normalize` (ftfy's `fix_text`, `html.unescape`, the A1111 front-ends) and `ClipTokenizer::encode` |

use std::path::Path;

use sd_core::embeddings::{
    self, Embedding,
    formats::png_pixels::{self, RgbImage},
};
use sd_infotext::{self as infotext, GenerationParameters};
use sd_prompt::{Ast, Node, Prompt, Steps, parse_attention, split_and};
use sd_textual_inversion::dataset::schedule::{ClipGrad, LearnRateSchedule};
use sd_torch_file::{PickleValue, TorchFile, TorchWriter, WriteOptions};

/// Largest tensor (bytes) whose data a target reads back. Reading is bounded by the input's
/// own size anyway (except expanded views, which the reader caps at 256 MiB); the cap keeps
/// each execution fast.
const MAX_TENSOR_BYTES: usize = 1 << 20;

/// Largest picture (pixels) a target builds from its input.
const MAX_PIXELS: usize = 1 << 16;

/// Splits the first byte off as a selector (0 for empty input).
fn selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (first, rest),
        None => (0, data),
    }
}

/// Checks that every span of an [`Ast`] is a valid, in-bounds slice of `source`.
fn check_spans(source: &str, nodes: &[Node]) {
    for node in nodes {
        let span = node.span();
        assert!(
            span.start <= span.end && source.get(span.start..span.end).is_some(),
            "span {span:?} is not a slice of a {}-byte prompt",
            source.len()
        );
        match node {
            Node::Text(_) => {}
            Node::Group { body, weight, .. } => {
                check_spans(source, body);
                if let Some(w) = weight {
                    check_spans(source, w);
                }
            }
            Node::Edit { from, to, when, .. } => {
                if let Some(f) = from {
                    check_spans(source, f);
                }
                check_spans(source, to);
                assert!(source.get(when.span.start..when.span.end).is_some());
            }
            Node::Alternate { options, .. } => {
                for o in options {
                    check_spans(source, o);
                }
            }
        }
    }
}

/// The prompt language (`sd_prompt`): the input, read as UTF-8 (lossily), is parsed as a
/// positive prompt, a negative prompt and a bare subprompt, then evaluated for step settings
/// taken from the first byte (0–63 steps, hires fix and old timelines on or off).
///
/// Asserts: parsing never fails or panics (the parser promises unparseable text is literal);
/// every span is an in-bounds slice of the prompt; a prompt has at least one `AND` part;
/// every evaluated schedule is non-empty with its last entry ending at the final step
/// (`Steps::total`); emphasis never panics.
pub fn prompt(data: &[u8]) {
    let (sel, rest) = selector(data);
    let text = String::from_utf8_lossy(rest);
    let steps = Steps {
        steps: u32::from(sel & 0x3F),
        hires_steps: (sel & 0x40 != 0).then_some(u32::from(sel & 0x0F) + 1),
        old_scheduling: sel & 0x80 != 0,
    };

    for part in split_and(&text) {
        assert!(text.get(part.text.start..part.text.end).is_some());
    }
    let ast = Ast::parse(&text);
    check_spans(&text, &ast.nodes);

    for prompt in [Prompt::parse(&text), Prompt::parse_negative(&text)] {
        assert!(
            !prompt.subprompts().is_empty(),
            "a prompt has one part at least"
        );
        for sub in prompt.subprompts() {
            check_spans(&text, &sub.ast().nodes);
        }
        let cond = prompt.evaluate(&steps);
        assert_eq!(cond.subprompts.len(), prompt.subprompts().len());
        for sub in &cond.subprompts {
            let last = sub
                .schedule
                .last()
                .expect("a schedule has one entry at least");
            assert_eq!(
                last.end_at_step,
                steps.total(),
                "the last entry ends at the final step"
            );
            let _ = sub.at(0);
        }
    }
    let _ = parse_attention(&text);
}

/// The pickle machine (`sd_torch_file::unpickle`): the input is one pickle stream.
///
/// Asserts: it returns `Ok` or a typed error, never panics (hostile opcodes, memo indices,
/// lengths claiming gigabytes, deep nesting are all errors). Round trip: when the value is
/// plain data (no tensor, storage, global or object) and the writer ([`TorchWriter`]) accepts
/// it, the archive it writes reads back to the same value.
pub fn pickle(data: &[u8]) {
    let label = Path::new("fuzz.pkl");
    let Ok(value) = sd_torch_file::unpickle(data, label) else {
        return;
    };
    if !is_plain(&value) {
        return;
    }
    let Ok(bytes) = TorchWriter::new().finish(&value, &WriteOptions::default()) else {
        return;
    };
    let back = TorchFile::from_bytes("fuzz.pt", bytes).expect("the writer's archive reads back");
    // Debug text compares floats bit for bit in effect (NaN equals NaN there).
    assert_eq!(
        format!("{:?}", back.root()),
        format!("{value:?}"),
        "pickle round trip"
    );
}

/// Data the pickle writer may write without a registered tensor.
fn is_plain(v: &PickleValue) -> bool {
    match v {
        PickleValue::None
        | PickleValue::Bool(_)
        | PickleValue::Int(_)
        | PickleValue::BigInt(_)
        | PickleValue::Float(_)
        | PickleValue::String(_)
        | PickleValue::Bytes(_) => true,
        PickleValue::List(items) | PickleValue::Tuple(items) | PickleValue::Set(items) => {
            items.iter().all(is_plain)
        }
        PickleValue::Dict(items) => items.iter().all(|(k, v)| is_plain(k) && is_plain(v)),
        _ => false,
    }
}

/// Torch files (`TorchFile::from_bytes`: the zip archive of torch >= 1.6 and the legacy
/// pickle stream), the same bytes as an A1111 `.pt` / diffusers `.bin` embedding
/// (`embeddings::read_bytes`), and the file's conversion to safetensors.
///
/// Asserts: opening, `state_dict`, reading tensors and converting them return `Ok` or a
/// typed error, never panic; a tensor read has all its elements and is no larger than the
/// input (views that expand past it are skipped when between 1 and 256 MiB: allowed, but slow);
/// when the conversion succeeds, the bytes of `TorchFile::to_safetensors` are a valid
/// safetensors file (the `safetensors` crate reads it) holding each tensor's `tensor_bytes`,
/// and read back as an embedding file without panicking.
pub fn torch_zip(data: &[u8]) {
    let _ = embeddings::read_bytes(Path::new("fuzz.pt"), data.to_vec());
    let _ = embeddings::read_bytes(Path::new("fuzz.bin"), data.to_vec());
    let Ok(file) = TorchFile::from_bytes("fuzz.ckpt", data.to_vec()) else {
        return;
    };
    let Ok(tensors) = file.state_dict() else {
        return;
    };
    // Tensors cheap to read: small ones, and ones past the reader's cap on expanded views
    // (refused before any allocation, or backed by the input's own bytes). In between, a
    // stride-0 view may legitimately expand to 256 MiB: correct, but slow to fuzz.
    let cheap: Vec<_> = tensors
        .iter()
        .filter(|(_, t)| {
            let bytes = t
                .shape
                .iter()
                .try_fold(t.dtype.size(), |n, &d| n.checked_mul(d));
            bytes.is_none_or(|n| n <= MAX_TENSOR_BYTES || n > EXPANDED_CAP)
        })
        .cloned()
        .collect();
    for (_, t) in &cheap {
        if let Ok(b) = file.tensor_bytes(t) {
            assert!(b.len() <= data.len().max(MAX_TENSOR_BYTES));
            let n: usize = t.shape.iter().product();
            assert_eq!(
                b.len(),
                n * t.dtype.size(),
                "tensor_bytes returns every element"
            );
            let f = file
                .tensor_f32(t)
                .expect("tensor_f32 reads what tensor_bytes read");
            assert_eq!(f.len(), n);
        }
    }
    let Ok(st) = file.to_safetensors(&cheap) else {
        return;
    };
    let parsed = safetensors::SafeTensors::deserialize(&st).expect("valid safetensors");
    for (name, t) in &cheap {
        let view = parsed.tensor(name).expect("every tensor is written");
        assert_eq!(view.shape(), t.shape.as_slice());
        let expected = file.tensor_bytes(t).expect("read above");
        assert!(view.data() == expected.as_slice(), "tensor `{name}` data");
    }
    let _ = embeddings::read_bytes(Path::new("fuzz.safetensors"), st);
}

/// The torch reader's cap on the bytes of an expanded (stride-0) view.
const EXPANDED_CAP: usize = 256 << 20;

/// Safetensors files: the input is read as a `.safetensors` embedding
/// (`embeddings::read_bytes`, which validates the header — length prefix, JSON, dtypes,
/// shapes against byte ranges — and decodes the tensors).
///
/// Asserts: `Ok` or a typed error, never a panic or an allocation sized by the header. Round
/// trip: an embedding that reads back is written again as safetensors
/// (`embeddings::to_bytes`) and reads back with the same vectors.
///
/// `sd_core::checkpoint::SafetensorsHeader` reads only from a path; targets do not write
/// files, so it is not reached here (its JSON step is the same validation).
pub fn safetensors_header(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    if let Ok((emb, _)) = embeddings::read_bytes(path, data.to_vec()) {
        check_rewrite(&emb);
    }
}

/// Writes `emb` as safetensors and reads it back: the vectors must match bit for bit.
fn check_rewrite(emb: &Embedding) {
    let path = Path::new("fuzz-rewrite.safetensors");
    let bytes = embeddings::to_bytes(path, emb).expect("a read embedding can be written");
    let (back, _) = embeddings::read_bytes(path, bytes).expect("the written embedding reads back");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(back.vectors.n, emb.vectors.n);
    assert_eq!(back.vectors.dim, emb.vectors.dim);
    assert_eq!(bits(&back.vectors.data), bits(&emb.vectors.data));
}

/// Standard base64 (RFC 4648, padded) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// CRC-32 (PNG's, the zlib polynomial), bitwise: inputs are small.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

/// Rewrites the CRC of every complete chunk of a PNG so mutations reach the chunk parsers
/// behind the CRC check (a fuzzer cannot compute CRCs). Stops at the first chunk whose
/// length runs past the end.
fn fix_png_crcs(png: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= png.len()) else {
            return;
        };
        let crc = crc32(&[&png[at + 4..end]]);
        png[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

/// The PNG embedding reader (`embeddings::read_bytes` of a `.png`) through its text chunk.
/// The first byte picks what the rest is:
/// - `0 mod 4`: a whole PNG file, as is;
/// - `1 mod 4`: a whole PNG file whose chunk CRCs the harness fixes first;
/// - `2 mod 4`: the text of the `sd-ti-embedding` chunk (base64 of JSON) of a 1×1 PNG;
/// - `3 mod 4`: the JSON itself, base64-encoded by the harness into that chunk.
///
/// Asserts: `Ok` or a typed error, never a panic (bad base64, bad JSON, wrong shapes, odd
/// numbers, huge claimed sizes). Round trip: an embedding that reads is written as
/// safetensors and reads back with the same vectors.
pub fn embedding_png_text(data: &[u8]) {
    let (sel, rest) = selector(data);
    let png = match sel % 4 {
        0 => rest.to_vec(),
        1 => {
            let mut png = rest.to_vec();
            fix_png_crcs(&mut png);
            png
        }
        mode => {
            let text = if mode == 2 {
                String::from_utf8_lossy(rest).into_owned()
            } else {
                base64(rest)
            };
            let Ok(png) =
                infotext::encode_png_rgb8(1, 1, &[9, 9, 9], &[("sd-ti-embedding", &text)])
            else {
                return;
            };
            png
        }
    };
    if let Ok((emb, _)) = embeddings::read_bytes(Path::new("fuzz.png"), png) {
        check_rewrite(&emb);
    }
}

/// A1111's pixel encoding of embeddings. The first byte gives the width (1–64), the rest
/// is RGB pixels (rows of `3 * width` bytes; a partial last row is dropped). The picture goes
/// to `png_pixels::extract_data` (black-border crop, block split, nibble join, XOR, zlib
/// inflate with its size cap) and, encoded as a PNG without text chunk, through the whole
/// reader (`embeddings::read_bytes`: PNG decode, pixel data, JSON, layout rules).
///
/// Asserts: `Ok` or a typed error, never a panic. Round trips: what `insert_data` writes
/// around a picture (the input's bytes as the compressed stream), `extract_blocks` finds
/// again (cycled to fill the blocks) whenever the layout is unambiguous (see
/// `clean_layout`); an embedding that reads is written as safetensors and reads back with
/// the same vectors.
pub fn embedding_png_pixels(data: &[u8]) {
    let (sel, rest) = selector(data);
    let width = usize::from(sel % 64) + 1;
    let height = (rest.len() / (3 * width)).min(MAX_PIXELS / width);
    if height == 0 {
        return;
    }
    let img = RgbImage {
        width,
        height,
        pixels: rest[..width * height * 3].to_vec(),
    };
    let _ = png_pixels::extract_data(&img);
    if let Ok(png) = infotext::encode_png_rgb8(width as u32, height as u32, &img.pixels, &[])
        && let Ok((emb, _)) = embeddings::read_bytes(Path::new("fuzz.png"), png)
    {
        check_rewrite(&emb);
    }

    // Writer → reader: the input's bytes as the compressed stream, around a picture whose
    // pixels are non-black in every channel's low nibble (so no column of it reads as a
    // separator).
    let h = height.min(8);
    let picture = RgbImage {
        width: 2,
        height: h,
        pixels: vec![0x11; 2 * h * 3],
    };
    let payload = &rest[..rest.len().min(256)];
    let style = png_pixels::edge_style(&[0.5, -1.0, 0.25]);
    let out = png_pixels::insert_data(&picture, payload, &style);
    let bw = (out.width - picture.width - 2) / 2;
    assert_eq!(out.width, picture.width + 2 * bw + 2);
    assert!(
        bw * h * 3 >= payload.len(),
        "the blocks hold the whole stream"
    );
    // The data blocks can themselves hold a black column, or a border column of pixels each
    // with a zero channel (A1111's writer has the same weakness); only a clean layout is
    // required to read back.
    if !payload.is_empty() && clean_layout(&out) {
        let blocks = png_pixels::extract_blocks(&out).expect("a clean layout reads back");
        assert_eq!(blocks.len(), bw * h * 3);
        let cycled: Vec<u8> = payload.iter().cycle().take(blocks.len()).copied().collect();
        assert!(blocks == cycled, "insert_data / extract_blocks round trip");
    }
}

/// Whether A1111's reader sees exactly the layout the writer made: the first and last
/// columns each hold a pixel with three non-zero channels (so `crop_black` keeps the whole
/// picture) and exactly two columns have every low nibble zero (the separators).
fn clean_layout(img: &RgbImage) -> bool {
    let px = |x: usize, y: usize| &img.pixels[(y * img.width + x) * 3..(y * img.width + x) * 3 + 3];
    let lit = |x: usize| (0..img.height).any(|y| px(x, y).iter().all(|&c| c > 0));
    let black = |x: usize| (0..img.height).all(|y| px(x, y).iter().all(|&c| c & 0x0F == 0));
    img.width >= 2
        && lit(0)
        && lit(img.width - 1)
        && (0..img.width).filter(|&x| black(x)).count() == 2
}

/// Infotexts (`sd_infotext`). Even first byte: the rest, read as UTF-8 (lossily), is an
/// infotext for `parse_generation_parameters` and `GenerationParameters::parse` /
/// `to_infotext`. Odd first byte: the rest is a PNG (CRCs fixed by the harness when the
/// byte is `1 mod 4`) for `read_png_text` and `read_png_parameters`.
///
/// Asserts: never a panic (the text parser never fails; the PNG reader returns `Ok` or a
/// typed error). Round trip: `set_png_text` on a PNG that reads, with the input as the text,
/// reads back that text. (`to_infotext ∘ parse` is not checked for stability: A1111's is not
/// stable either, see the body.)
pub fn infotext(data: &[u8]) {
    let (sel, rest) = selector(data);
    if sel % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let _ = infotext::parse_generation_parameters(&text);
        // No round-trip property here: A1111's own reader and writer are not stable under
        // repetition (fuzzing found a text where `create_infotext ∘ parse` changes on the
        // second and third pass in A1111 1.10 too, and ours agrees with A1111 on every pass;
        // `fuzz/regressions/infotext/`). Agreement with A1111 is the golden test's job.
        let once = GenerationParameters::parse(&text).to_infotext();
        let _ = GenerationParameters::parse(&once).to_infotext();
        return;
    }
    let mut png = rest.to_vec();
    if sel % 4 == 1 {
        fix_png_crcs(&mut png);
    }
    if infotext::read_png_text(&png).is_err() {
        return;
    }
    let _ = infotext::read_png_parameters(&png);
    let text = String::from_utf8_lossy(&rest[..rest.len().min(64)]).into_owned();
    if let Ok(out) = infotext::set_png_text(&png, infotext::PARAMETERS_KEY, &text) {
        let back = infotext::read_png_parameters(&out).expect("the written PNG reads back");
        assert_eq!(
            back.as_deref(),
            Some(text.as_str()),
            "set_png_text round trip"
        );
    }
}

/// Learning-rate and gradient-clipping schedules
/// (`sd_textual_inversion::dataset::schedule`). The first two bytes give `max_steps` (0–255)
/// and the starting step (0–255); the rest, read as UTF-8 (lossily), is the schedule for
/// `LearnRateSchedule::parse` and, behind `value:` / `norm:`, for `ClipGrad`.
///
/// Asserts: `Ok` or a typed error, never a panic; a parsed schedule has entries whose ends do
/// not pass `max_steps`; running the stateful scheduler over every step to `max_steps`
/// never panics and always has a rate.
pub fn lr_schedule(data: &[u8]) {
    let (max, rest) = selector(data);
    let (cur, rest) = selector(rest);
    let (max, cur) = (u64::from(max), u64::from(cur));
    let text = String::from_utf8_lossy(rest);
    if let Ok(schedule) = LearnRateSchedule::parse(&text, max, cur) {
        assert!(!schedule.entries().is_empty());
        for e in schedule.entries() {
            assert!(e.end_step <= max, "an entry ends past max_steps");
        }
        let _ = schedule.rate_at(cur);
        let mut scheduler = schedule.scheduler();
        for step in cur..=max {
            let _ = scheduler.learn_rate();
            scheduler.step(step);
            if scheduler.finished() {
                break;
            }
        }
    }
    for prefix in ["value:", "norm:"] {
        let clip = format!("{prefix}{text}");
        match clip.parse::<ClipGrad>() {
            Ok(c) => {
                let _ = c.scheduler(max, cur);
            }
            Err(e) => panic!("`{prefix}` always names a mode: {e}"),
        }
    }
    let _ = text.parse::<ClipGrad>();
}

/// Largest picture (pixels) the image target lets the decoder allocate for: the library's cap
/// is a parameter (`max_pixels`); a small one keeps each execution fast and runs the same
/// code.
const MAX_IMAGE_PIXELS: u64 = 1 << 20;

/// Image decoding for preprocessing: `sd_textual_inversion::preprocess::load::open_limited_bytes`
/// (the same code as `open_limited` on a path: format guessed from the content, the header's
/// pixel count checked against `max_image_pixels` = 2^20 here, the decoder limited, EXIF
/// orientation applied), then `load::to_rgb8` (`convert("RGB")`).
///
/// Asserts: `Ok` or a typed error, never a panic; a decoded picture has no more pixels than
/// the cap and `width * height * 3` bytes.
pub fn preprocess_image(data: &[u8]) {
    use sd_textual_inversion::preprocess::load;
    let path = Path::new("fuzz.img");
    let Ok(img) = load::open_limited_bytes(data, path, MAX_IMAGE_PIXELS) else {
        return;
    };
    if let Ok(rgb) = load::to_rgb8(img, path) {
        let pixels = u64::from(rgb.width()) * u64::from(rgb.height());
        assert!(
            pixels <= MAX_IMAGE_PIXELS,
            "the decoder kept to the pixel cap"
        );
        assert_eq!(rgb.as_raw().len() as u64, pixels * 3);
    }
}

/// The CLIP tokenizer's text normalisation and encoding (`sd_clip`). The first byte picks the
/// normalisation (A1111 SD 1.x, OpenCLIP, transformers 5) and the vocabulary (bit 2: the
/// 8192-token cut instead of the full one); the rest, read as UTF-8 (lossily), is the text.
///
/// Asserts: nothing panics or fails; `fix_text` and `html_unescape` return; a cleaned text has
/// no whitespace at its ends and no whitespace run; every id is below the vocabulary size and
/// `encode_padded` gives exactly 77 ids starting with BOS.
pub fn tokenizer(data: &[u8]) {
    use sd_clip::{ClipTokenizer, TextNormalization, normalize};
    use std::sync::OnceLock;

    // Built once per vocabulary and normalisation: a clone copies the whole vocabulary.
    static TOKENIZERS: [OnceLock<ClipTokenizer>; 6] = [const { OnceLock::new() }; 6];
    let (sel, rest) = selector(data);
    let text = String::from_utf8_lossy(rest);
    let normalization = match sel % 3 {
        0 => TextNormalization::A1111Sd1,
        1 => TextNormalization::OpenClip,
        _ => TextNormalization::Transformers5,
    };
    let cut = sel & 4 != 0;
    let tokenizer = TOKENIZERS[usize::from(sel % 3) + 3 * usize::from(cut)].get_or_init(|| {
        let base = if cut {
            ClipTokenizer::for_vocab_size(8192).expect("bundled cut")
        } else {
            ClipTokenizer::standard().expect("bundled vocabulary")
        };
        base.with_normalization(normalization)
    });

    let _ = normalize::fix_text(&text);
    let _ = normalize::html_unescape(&text);
    if normalization != TextNormalization::Transformers5 {
        let clean = normalization.clean(&text);
        assert!(
            !clean.starts_with(char::is_whitespace) && !clean.ends_with(char::is_whitespace),
            "cleaned text keeps whitespace at an end: {clean:?}"
        );
        assert!(
            !clean
                .chars()
                .zip(clean.chars().skip(1))
                .any(|(a, b)| a.is_whitespace() && b.is_whitespace()),
            "cleaned text keeps a whitespace run: {clean:?}"
        );
    }
    let ids = tokenizer.encode(&text).expect("encoding never fails");
    let size = tokenizer.vocab_size();
    assert!(
        ids.iter().all(|&id| (id as usize) < size),
        "id out of range"
    );
    let padded = tokenizer
        .encode_padded(&text, 77)
        .expect("encoding never fails");
    assert_eq!(padded.len(), 77);
    assert_eq!(padded[0], tokenizer.bos_id());
}
