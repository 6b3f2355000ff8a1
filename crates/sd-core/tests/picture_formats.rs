//! Every picture format A1111 reads through PIL that the loader reads too: PNG, JPEG, WebP,
//! BMP, TIFF and GIF (its first frame), recognised from the content whatever the name says,
//! and converted to RGB as `convert("RGB")` does.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use sd_core::image_file::{self, ImageFileError};

/// A 12×10 picture of four colours (GIF holds a palette; four colours survive it exactly).
fn picture() -> RgbImage {
    const COLOURS: [[u8; 3]; 4] = [[200, 30, 40], [20, 180, 60], [10, 20, 230], [250, 250, 250]];
    RgbImage::from_fn(12, 10, |x, y| Rgb(COLOURS[((x / 3 + y / 5) % 4) as usize]))
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .unwrap_or_else(|e| panic!("{format:?}: {e}"));
    out.into_inner()
}

/// The lossless formats, each written by the `image` crate's encoder (WebP's is lossless).
const LOSSLESS: [(ImageFormat, &str); 5] = [
    (ImageFormat::Png, "png"),
    (ImageFormat::WebP, "webp"),
    (ImageFormat::Bmp, "bmp"),
    (ImageFormat::Tiff, "tiff"),
    (ImageFormat::Gif, "gif"),
];

#[test]
fn every_format_reads_back_to_the_same_pixels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = picture();
    for (format, extension) in LOSSLESS {
        let bytes = encode(&DynamicImage::ImageRgb8(expected.clone()), format);
        // The content decides, not the name: a `.png` name on other bytes still opens.
        for name in [format!("p.{extension}"), format!("{extension}-named.png")] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).expect("write");
            let read = image_file::open_rgb(&path).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(read, expected, "{format:?} ({})", path.display());
        }
        let from_memory = image_file::open_limited_bytes(&bytes, Path::new("mem"), 1 << 20)
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let rgb = image_file::to_rgb8(from_memory, Path::new("mem")).expect("rgb");
        assert_eq!(rgb, expected, "{format:?} from memory");
    }
    // JPEG is lossy: close, not equal.
    let path = dir.path().join("p.jpg");
    std::fs::write(
        &path,
        encode(
            &DynamicImage::ImageRgb8(expected.clone()),
            ImageFormat::Jpeg,
        ),
    )
    .expect("write");
    let read = image_file::open_rgb(&path).expect("jpeg");
    assert_eq!(read.dimensions(), expected.dimensions());
    let mean_error = read
        .as_raw()
        .iter()
        .zip(expected.as_raw())
        .map(|(&a, &b)| f64::from(a.abs_diff(b)))
        .sum::<f64>()
        / read.as_raw().len() as f64;
    assert!(mean_error < 12.0, "JPEG mean error {mean_error}");
}

/// The colour types these decoders give other than 8-bit RGB all convert as Pillow's
/// `convert("RGB")`: transparency dropped (GIF and WebP decode to RGBA), 16-bit and float
/// TIFFs scaled to 8 bits.
#[test]
fn other_colour_types_convert_to_rgb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = picture();
    // RGBA with a transparent pixel: the colour stays, the alpha goes.
    let mut rgba = RgbaImage::from_fn(12, 10, |x, y| {
        let [r, g, b] = expected.get_pixel(x, y).0;
        Rgba([r, g, b, 255])
    });
    rgba.put_pixel(0, 0, Rgba([200, 30, 40, 0]));
    let sixteen = DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(expected.clone()).to_rgb16());
    let float = DynamicImage::ImageRgb32F(DynamicImage::ImageRgb8(expected.clone()).to_rgb32f());
    let cases = [
        (
            "rgba.webp",
            DynamicImage::ImageRgba8(rgba.clone()),
            ImageFormat::WebP,
        ),
        (
            "rgba.tiff",
            DynamicImage::ImageRgba8(rgba.clone()),
            ImageFormat::Tiff,
        ),
        ("rgba.bmp", DynamicImage::ImageRgba8(rgba), ImageFormat::Bmp),
        ("16.tiff", sixteen, ImageFormat::Tiff),
        ("float.tiff", float, ImageFormat::Tiff),
    ];
    for (name, image, format) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, encode(&image, format)).expect("write");
        let decoded = image_file::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.color(), image.color(), "{name}: decoded as written");
        let read = image_file::to_rgb8(decoded, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read, expected, "{name}");
    }
}

/// A GIF's first frame is the picture (PIL's `Image.open` is on frame 0).
#[test]
fn an_animated_gif_reads_as_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let first = picture();
    let second = RgbImage::from_pixel(12, 10, Rgb([0, 0, 0]));
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut bytes);
        for frame in [&first, &second] {
            let rgba = DynamicImage::ImageRgb8(frame.clone()).to_rgba8();
            let frame = Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(100, 1));
            encoder.encode_frame(frame).expect("frame");
        }
    }
    let read = image_file::to_rgb8(
        image_file::open_limited_bytes(&bytes, Path::new("anim.gif"), 1 << 20).expect("gif"),
        Path::new("anim.gif"),
    )
    .expect("rgb");
    assert_eq!(read, first);
}

/// Each format's header is checked against the pixel cap before decoding, and a file cut
/// short is an error.
#[test]
fn the_pixel_cap_and_truncation_hold_for_every_format() {
    let image = DynamicImage::ImageRgb8(picture());
    for (format, _) in LOSSLESS {
        let bytes = encode(&image, format);
        let path = Path::new("capped");
        let e = image_file::open_limited_bytes(&bytes, path, 119).expect_err("120 pixels");
        assert!(
            matches!(
                e,
                ImageFileError::TooLarge {
                    width: 12,
                    height: 10,
                    limit: 119,
                    ..
                }
            ),
            "{format:?}: {e:?}"
        );
        // Cut in half: every decoder notices (none fills the missing rows with grey).
        for cut in [bytes.len() / 2, 8] {
            let e = image_file::open_limited_bytes(&bytes[..cut], path, 1 << 20)
                .expect_err("cut short");
            assert!(
                matches!(e, ImageFileError::Decode { .. }),
                "{format:?}: {e:?}"
            );
        }
        // Only the last byte missing (PNG's IEND CRC, GIF's trailer: the pixels are whole):
        // a picture or an error, never a panic.
        let _ = image_file::open_limited_bytes(&bytes[..bytes.len() - 1], path, 1 << 20);
    }
}
