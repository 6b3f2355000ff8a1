//! Preprocessing against A1111's own code: fixtures/preprocess/ is written by
//! `tools/preprocess_reference.py`, which runs A1111's `preprocess_work`, `split_pic`,
//! `autocrop.crop_image` and `images.resize_image` (Pillow) on the pictures in `input/`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use image::RgbImage;
use sd_textual_inversion::preprocess::{
    CaptionAction, CropMode, FocalWeights, PreprocessError, PreprocessOptions, focal, gray, load,
    preprocess, preprocess_with_progress,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/preprocess");

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

fn read_json(rel: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(rel)).expect("fixture JSON");
    serde_json::from_str(&text).expect("valid JSON")
}

/// The Rust options equivalent to a case's options in the reference script (face weight 0,
/// edges weight 0: OpenCV is absent from the reference, see the script).
fn options_of(case: &serde_json::Value) -> PreprocessOptions {
    let o = &case["options"];
    let n = |k: &str| o[k].as_u64().expect("number") as u32;
    let b = |k: &str| o[k].as_bool().expect("bool");
    PreprocessOptions {
        width: n("width"),
        height: n("height"),
        crop: if b("focal") {
            CropMode::Focal
        } else {
            CropMode::Center
        },
        focal_weights: FocalWeights {
            edges: 0.0,
            entropy: 0.3,
        },
        split_oversized: b("split"),
        split_threshold: o["threshold"].as_f64().unwrap_or(0.5),
        overlap_ratio: o["overlap"].as_f64().unwrap_or(0.2),
        flip: b("flip"),
        caption_action: o["txt"].as_str().expect("txt").parse().expect("action"),
        ..PreprocessOptions::default()
    }
}

fn load_rgb8(path: &Path) -> RgbImage {
    image::open(path).expect("decodable").to_rgb8()
}

fn run_case(name: &str) {
    let case = read_json(&format!("expected/{name}.json"));
    let options = options_of(&case);
    let out = tempfile::tempdir().expect("tempdir");
    let report = preprocess(&fixture("input"), out.path(), &options).expect("preprocess");

    // Names: exactly A1111's, index counting every folder entry (captions, broken files).
    let mut got: Vec<String> = std::fs::read_dir(out.path())
        .expect("read output")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    let expected: Vec<String> = case["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f.as_str().expect("name").to_owned())
        .collect();
    assert_eq!(got, expected, "{name}: output names");
    assert_eq!(
        report.written.len() + report.captions.len(),
        expected.len(),
        "{name}"
    );

    // The corrupt file is listed, never a panic.
    let skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|s| {
            s.path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(skipped, ["f_broken.png"], "{name}: skipped");
    assert!(matches!(
        report.skipped[0].error,
        PreprocessError::Decode { .. }
    ));

    let captions = case["captions"].as_object().expect("captions");
    let (mut worst_mean, mut worst_max) = (0.0f64, 0u32);
    for file in &expected {
        let ours = out.path().join(file);
        let theirs = fixture(&format!("expected/{name}/{file}"));
        if file.ends_with(".txt") {
            let text = std::fs::read_to_string(&ours).expect("caption");
            assert_eq!(text, captions[file].as_str().expect("text"), "{file}");
            continue;
        }
        let (a, b) = (load_rgb8(&ours), load_rgb8(&theirs));
        assert_eq!(a.dimensions(), b.dimensions(), "{name}/{file}: size");
        let diffs: Vec<u32> = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| u32::from(x.abs_diff(y)))
            .collect();
        let max = diffs.iter().copied().max().unwrap_or(0);
        let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
        eprintln!("{name}/{file}: mean {mean:.4} max {max}");
        worst_mean = worst_mean.max(mean);
        worst_max = worst_max.max(max);
        // Most pictures are exact. Two known differences: the order of Pillow 13's two
        // resampling passes (see resample.rs; b_tall: mean 0.143, max 5 levels) and the JPEG
        // decoders (libjpeg in Pillow, zune-jpeg here; g_cmyk: mean 0.029, max 1).
        assert!(
            mean <= 0.25 && max <= 8,
            "{name}/{file}: mean {mean} max {max}"
        );
    }
    eprintln!("{name}: worst mean abs diff {worst_mean:.4}, worst max {worst_max}");
}

#[test]
fn center_crop_flip_and_copy_captions_match_a1111() {
    run_case("center_flip_copy");
}

#[test]
fn split_oversized_with_prepended_captions_matches_a1111() {
    run_case("split_prepend");
}

#[test]
fn focal_crop_with_appended_captions_matches_a1111() {
    run_case("focal_append");
}

#[test]
fn rectangular_target_split_focal_flip_matches_a1111() {
    run_case("rect_split_focal");
}

#[test]
fn focal_boxes_match_autocrop() {
    let expected = read_json("focal.json");
    let expected = expected.as_object().expect("object");
    let mut checked = BTreeMap::new();
    for (key, want) in expected {
        let (target, file) = key.split_once('/').expect("target/file");
        let (w, h) = target.split_once('x').expect("WxH");
        let (w, h): (u32, u32) = (w.parse().expect("w"), h.parse().expect("h"));
        let image = load::load_rgb(&fixture(&format!("input/{file}"))).expect("load");
        let weights = FocalWeights {
            edges: 0.0,
            entropy: 0.3,
        };
        let got = focal::focal_crop(&image, w, h, weights);
        let pair = |v: &serde_json::Value| -> Vec<i64> {
            v.as_array()
                .expect("array")
                .iter()
                .map(|x| x.as_i64().expect("int"))
                .collect()
        };
        assert_eq!(
            vec![i64::from(got.scaled_size.0), i64::from(got.scaled_size.1)],
            pair(&want["scaled_size"]),
            "{key}: scaled size"
        );
        assert_eq!(
            vec![got.focal_point.0, got.focal_point.1],
            pair(&want["focal_point"]),
            "{key}: focal point"
        );
        assert_eq!(got.crop_box.to_vec(), pair(&want["crop_box"]), "{key}: box");
        assert_eq!(got.image.dimensions(), (w, h));
        checked.insert(key.clone(), ());
    }
    // Two targets × eight decodable pictures (incl. the square and the flat white one).
    assert_eq!(checked.len(), 16);
}

#[test]
fn floyd_steinberg_matches_pillow() {
    let image = load::load_rgb(&fixture("input/a_wide.png")).expect("load");
    let ours = gray::to_bilevel(&image);
    let pillow = image::open(fixture("bilevel.png")).expect("png").to_luma8();
    let theirs: Vec<bool> = pillow.as_raw().iter().map(|&v| v > 127).collect();
    // Integer error diffusion: exact.
    assert_eq!(ours, theirs);
}

#[test]
fn exif_orientation_is_applied() {
    // e_exif.png is 30×20 with orientation 6 (rotate 90° clockwise): upright it is 20×30.
    let image = load::load_rgb(&fixture("input/e_exif.png")).expect("load");
    assert_eq!(image.dimensions(), (20, 30));
}

#[test]
fn same_folder_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = preprocess(dir.path(), dir.path(), &PreprocessOptions::default());
    assert!(matches!(err, Err(PreprocessError::SameDirectory { .. })));
}

#[test]
fn bad_options_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let options = PreprocessOptions {
        width: 0,
        ..PreprocessOptions::default()
    };
    let err = preprocess(&fixture("input"), &out, &options);
    assert!(matches!(
        err,
        Err(PreprocessError::InvalidOption { name: "width", .. })
    ));
    assert!("sideways".parse::<CropMode>().is_err());
    assert!("merge".parse::<CaptionAction>().is_err());
}

#[test]
fn progress_can_interrupt() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut seen = Vec::new();
    let report = preprocess_with_progress(
        &fixture("input"),
        out.path(),
        &PreprocessOptions {
            width: 16,
            height: 16,
            ..PreprocessOptions::default()
        },
        |p| {
            seen.push(p.index);
            assert_eq!(p.total, 11);
            if p.index == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .expect("preprocess");
    assert!(report.interrupted);
    assert_eq!(seen, [0, 1, 2]);
    // Entry 0 is a picture, entry 1 its caption: one picture written, no temporary files.
    let names: Vec<_> = std::fs::read_dir(out.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["00000-0-a_wide.png"]);
}

/// Odd inputs that are not in the A1111 fixture: they are processed or
/// listed, never a panic.
#[test]
fn odd_pictures_are_processed_or_listed() {
    let input = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| input.path().join(n);
    // 16-bit grey: scaled to 8 bits (Pillow would clip every value above 255 to white).
    let g16 = image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(8, 8, image::Luma([40000]));
    g16.save(p("a_16bit.png")).expect("save");
    RgbImage::from_pixel(1, 1, image::Rgb([1, 2, 3]))
        .save(p("b_1x1.png"))
        .expect("save");
    // A 1×20000 strip would need a 16×320000 intermediate for a 16×16 target: over a small
    // max_pixels it is skipped with TooLarge.
    RgbImage::new(1, 20000)
        .save(p("c_strip.png"))
        .expect("save");
    std::fs::write(p("d_text.png"), b"not a picture").expect("write");
    RgbImage::new(4, 4)
        .save(p("e_bad_caption.png"))
        .expect("save");
    std::fs::write(p("e_bad_caption.txt"), [0xff, 0xfe, 0x00]).expect("write");
    std::fs::write(p("f_empty.jpg"), b"").expect("write");
    std::fs::create_dir(p("g_folder")).expect("mkdir");

    let options = PreprocessOptions {
        width: 16,
        height: 16,
        caption_action: CaptionAction::Copy,
        max_pixels: 1_000_000,
        ..PreprocessOptions::default()
    };
    let report = preprocess(input.path(), out.path(), &options).expect("preprocess");
    let written: Vec<String> = report
        .written
        .iter()
        .map(|w| w.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, ["00000-0-a_16bit.png", "00001-0-b_1x1.png"]);
    let g = load_rgb8(&report.written[0]);
    // 40000 / 257 = 155.6 → 156 (Pillow's clip would give 255).
    assert!(g.pixels().all(|p| p.0 == [156, 156, 156]));
    let one = load_rgb8(&report.written[1]);
    assert!(one.pixels().all(|p| p.0 == [1, 2, 3]));

    let reasons: BTreeMap<String, &PreprocessError> = report
        .skipped
        .iter()
        .map(|s| {
            (
                s.path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                &s.error,
            )
        })
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(matches!(
        reasons["c_strip.png"],
        PreprocessError::TooLarge { .. }
    ));
    assert!(matches!(
        reasons["d_text.png"],
        PreprocessError::Decode { .. }
    ));
    assert!(matches!(
        reasons["e_bad_caption.png"],
        PreprocessError::CaptionNotUtf8 { .. }
    ));
    assert!(matches!(
        reasons["f_empty.jpg"],
        PreprocessError::Decode { .. }
    ));
}
