//! The generation programs (`txt2img`, `img2img`, `prompt`, `png_info`, `embedding`) run on
//! hostile flags and files, as a user would run them (issue 22): each must exit 1 with a
//! message naming the flag or file at fault, never panic, abort, hang, allocate gigabytes or
//! write a black picture with exit 0. Every run uses the bundled tiny model at 64×64 and 2
//! steps, in a temporary folder as its working directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_refused, run};

/// The flags that keep a run to about a second.
const SMALL: [&str; 6] = ["--steps", "2", "--width", "64", "--height", "64"];

/// `SMALL` without the flags `extra` gives (a flag may appear once), then `extra`.
fn with_small<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args: Vec<&str> = SMALL
        .chunks(2)
        .filter(|pair| !extra.contains(&pair[0]))
        .flatten()
        .copied()
        .collect();
    args.extend_from_slice(extra);
    args
}

fn txt2img(dir: &Path, extra: &[&str]) -> Output {
    run("txt2img", &with_small(extra), dir)
}

/// img2img of `init` (with `extra` flags) at the small settings.
fn img2img(dir: &Path, init: &Path, extra: &[&str]) -> Output {
    let init = init.to_str().expect("UTF-8 temp path");
    let mut args = with_small(extra);
    args.extend_from_slice(&["--init-image", init]);
    run("img2img", &args, dir)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp() -> common::TempDir {
    common::temp_dir("hostile-generation")
}

/// A `width`×`height` gradient JPEG, with an EXIF orientation tag when given.
fn jpeg(width: u32, height: u32, orientation: Option<u16>) -> Vec<u8> {
    use image::ImageEncoder as _;
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
    });
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
    if let Some(o) = orientation {
        // Little-endian TIFF header, one IFD of one entry: Orientation (0x0112), SHORT, 1, o.
        let mut tiff = b"II*\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes());
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&0x0112u16.to_le_bytes());
        tiff.extend_from_slice(&3u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&o.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
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

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

/// A PNG header declaring `width`×`height` grey pixels and no pixel data worth the name.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = !0u32;
        for &b in kind.iter().chain(data) {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        out.extend_from_slice(&(!crc).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib: one final stored block of 16 zero bytes.
    let mut idat = vec![0x78, 0x01, 0x01, 16, 0, !16, 0xFF];
    idat.extend_from_slice(&[0; 16]);
    idat.extend_from_slice(&0x0010_0001u32.to_be_bytes());
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The bundled model (and its config folder) in `dir`, every value of tensor `key` (f16)
/// set to NaN.
fn nan_checkpoint(dir: &Path, key: &str) -> PathBuf {
    let path = sd_textual_inversion::sd_core::bundled::TINY_SD1
        .extract_to(dir.join("models"))
        .expect("bundled model");
    let mut bytes = std::fs::read(&path).expect("read");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + header_len]).expect("header");
    let offsets = header[key]["data_offsets"].as_array().expect(key);
    let start = 8 + header_len + offsets[0].as_u64().expect("start") as usize;
    let end = 8 + header_len + offsets[1].as_u64().expect("end") as usize;
    for value in bytes[start..end].chunks_exact_mut(2) {
        value.copy_from_slice(&[0x00, 0x7E]); // f16 NaN, little-endian
    }
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn numeric_flags_have_upper_bounds() {
    let dir = temp();
    let d = dir.path();
    for (what, flags, mentions) in [
        (
            "--steps u64::MAX (capacity overflow before)",
            &["--steps", "18446744073709551615"][..],
            &["steps", "max_steps"][..],
        ),
        (
            "--steps 10^9 (4 GB of schedule before)",
            &["--steps", "1000000000"],
            &["steps", "1000"],
        ),
        (
            "--width 16384 --height 16384",
            &["--width", "16384", "--height", "16384"],
            &["width × height", "max_generation_pixels"],
        ),
        (
            "--batch-size u64::MAX",
            &["--batch-size", "18446744073709551615"],
            &["batch_size", "max_batch_size"],
        ),
        (
            "--seed-resize-from 4294967295²",
            &[
                "--seed-resize-from-w",
                "4294967295",
                "--seed-resize-from-h",
                "4294967295",
            ],
            &["seed resize"],
        ),
    ] {
        let out = txt2img(d, flags);
        assert_refused(&out, what, mentions);
    }
    assert!(!d.join("output.png").exists(), "nothing written");
}

#[test]
fn non_finite_settings_are_refused() {
    let dir = temp();
    let d = dir.path();
    for (what, flags, field) in [
        (
            "--subseed-strength nan",
            &["--subseed-strength", "nan"][..],
            "subseed_strength",
        ),
        ("--cfg-scale inf", &["--cfg-scale", "inf"], "cfg_scale"),
        ("--eta NaN", &["--eta", "NaN"], "eta"),
    ] {
        let out = txt2img(d, flags);
        assert_refused(&out, what, &[field]);
    }
}

#[test]
fn emphasis_that_overflows_f32_is_refused_not_black() {
    let dir = temp();
    let d = dir.path();
    let huge = format!("a (cat:1{}) on a mat", "0".repeat(40));
    let out = txt2img(d, &["--prompt", &huge]);
    assert_refused(&out, "(cat:1e40) in digits", &["emphasis weight", "cat"]);
    let nested = format!("{}cat{}", "(".repeat(1000), ")".repeat(1000));
    let out = txt2img(d, &["--negative-prompt", &nested]);
    assert_refused(&out, "1000 nested brackets", &["emphasis weight"]);
    assert!(!d.join("output.png").exists(), "no black picture");
    // `(cat:1e40)` is literal text in A1111's syntax (weights are digits and dots).
    let out = txt2img(d, &["--prompt", "(cat:1e40)", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn nan_weights_in_a_checkpoint_are_an_error_naming_the_network() {
    let dir = temp();
    let d = dir.path();
    for (key, stage) in [
        ("model.diffusion_model.out.2.bias", "UNet"),
        ("first_stage_model.decoder.conv_out.bias", "VAE"),
        (
            "cond_stage_model.transformer.text_model.final_layer_norm.bias",
            "conditioning",
        ),
    ] {
        let model = nan_checkpoint(d, key);
        let out = txt2img(
            d,
            &["--model", model.to_str().expect("UTF-8"), "--seed", "1"],
        );
        assert_refused(&out, key, &["NaN", stage]);
        assert!(!d.join("output.png").exists(), "{key}: no black picture");
    }
}

#[test]
fn seeds_and_output_files() {
    let dir = temp();
    let d = dir.path();
    let out = txt2img(d, &["--seed", "9223372036854775807", "--batch-size", "2"]);
    assert_refused(
        &out,
        "--seed i64::MAX --batch-size 2",
        &["seed", "9223372036854775807"],
    );
    let out = txt2img(d, &["--seed", "1", "--output", "o.jpg"]);
    assert_refused(&out, "--output o.jpg", &["o.jpg", ".png"]);
    assert!(!d.join("o.jpg").exists());
    let out = txt2img(
        d,
        &[
            "--seed",
            "1",
            "--output",
            "o.png",
            "--save-latents",
            "./o.png",
        ],
    );
    assert_refused(&out, "--save-latents = --output", &["o.png", "latents"]);
    assert!(!d.join("o.png").exists());
}

#[test]
fn unreadable_embeddings_are_named() {
    let dir = temp();
    let d = dir.path();
    let folder = d.join("embeddings");
    std::fs::create_dir(&folder).expect("mkdir");
    put(&folder, "broken.safetensors", &[1, 2, 3]);
    put(
        &folder,
        "evil.pt",
        b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00echo\x85R.",
    );
    let out = txt2img(d, &["--seed", "1", "--embeddings-dir", "embeddings"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("broken.safetensors"), "{err}");
    assert!(err.contains("evil.pt"), "{err}");
}

#[test]
fn img2img_pictures_go_through_the_one_loader() {
    let dir = temp();
    let d = dir.path();
    let whole = jpeg(64, 48, None);
    let half = put(d, "half.jpg", &whole[..whole.len() / 2]);
    let out = img2img(d, &half, &[]);
    assert_refused(&out, "--init-image cut in half", &["half.jpg", "truncated"]);

    let init = put(d, "init.jpg", &whole);
    let mask = put(d, "mask.jpg", &whole[..whole.len() - 1]);
    let out = img2img(d, &init, &["--mask", mask.to_str().expect("UTF-8")]);
    assert_refused(&out, "--mask missing its EOI", &["mask.jpg", "truncated"]);

    let bomb = put(d, "bomb.png", &png_declaring(20_000, 20_000));
    let out = img2img(d, &bomb, &[]);
    assert_refused(
        &out,
        "--init-image 20000²",
        &["bomb.png", "max_image_pixels"],
    );

    let out = img2img(d, &init, &["--denoising-strength", "nan"]);
    assert_refused(&out, "--denoising-strength nan", &["denoising_strength"]);
    let out = img2img(d, &init, &["--mask-blur", "4294967295"]);
    assert_refused(
        &out,
        "--mask-blur u32::MAX",
        &["mask_blur", "max_mask_blur"],
    );
    assert!(!d.join("output.png").exists());
}

#[test]
fn img2img_honours_the_exif_orientation() {
    // Stored 64 wide × 48 high with orientation 6 (rotate 90° clockwise to view): upright it
    // is 48 × 64. An all-black mask keeps every pixel, so the output is the upright picture
    // pasted back (A1111's overlay), whatever the tiny model paints.
    let dir = temp();
    let d = dir.path();
    let init = put(d, "phone.jpg", &jpeg(64, 48, Some(6)));
    let mut black = Vec::new();
    image::GrayImage::new(48, 64)
        .write_to(
            &mut std::io::Cursor::new(&mut black),
            image::ImageFormat::Png,
        )
        .expect("png");
    let mask = put(d, "keep.png", &black);
    let out = run(
        "img2img",
        &[
            "--steps",
            "2",
            "--width",
            "48",
            "--height",
            "64",
            "--seed",
            "1",
            "--init-image",
            init.to_str().expect("UTF-8"),
            "--mask",
            mask.to_str().expect("UTF-8"),
            "--mask-blur",
            "0",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result = image::open(d.join("output.png")).expect("output").to_rgb8();
    let upright = image::imageops::rotate90(
        &image::load_from_memory(&jpeg(64, 48, None))
            .expect("decode")
            .to_rgb8(),
    );
    assert_eq!(result.dimensions(), upright.dimensions());
    let worst = result
        .pixels()
        .zip(upright.pixels())
        .flat_map(|(a, b)| (0..3).map(move |c| a.0[c].abs_diff(b.0[c])))
        .max()
        .unwrap_or(0);
    // The overlay pastes the kept pixels back exactly; 2 levels for float rounding.
    assert!(
        worst <= 2,
        "output differs from the upright picture by {worst}"
    );
}

#[test]
fn prompt_steps_are_bounded() {
    let dir = temp();
    let d = dir.path();
    let out = run("prompt", &["--steps", "1000000000", "--prompt", "a"], d);
    assert_refused(&out, "prompt --steps 10^9", &["--steps", "max_steps"]);
    let out = run(
        "prompt",
        &[
            "--steps",
            "2",
            "--hires-steps",
            "4294967295",
            "--prompt",
            "a",
        ],
        d,
    );
    assert_refused(&out, "prompt --hires-steps u32::MAX", &["--hires-steps"]);
}

#[test]
fn png_info_and_embedding_name_the_file() {
    let dir = temp();
    let d = dir.path();
    let png = png_declaring(4, 4);
    put(d, "cut.png", &png[..png.len() - 20]);
    let out = run("png_info", &["cut.png"], d);
    assert_refused(&out, "png_info on a cut PNG", &["cut.png"]);
    put(d, "photo.jpg", &jpeg(8, 8, None));
    let out = run("png_info", &["photo.jpg"], d);
    assert_refused(&out, "png_info on a JPEG", &["photo.jpg"]);
    put(d, "empty.pt", &[]);
    let out = run("embedding", &["inspect", "empty.pt"], d);
    assert_refused(&out, "embedding inspect of an empty .pt", &["empty.pt"]);
}
