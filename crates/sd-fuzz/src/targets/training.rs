//! The training-input targets of `sd-textual-inversion`: schedules and pictures.

use std::path::Path;

use sd_textual_inversion::dataset::learn_rate_schedule::{ClipGrad, LearnRateSchedule};

use crate::selector;

/// Learning-rate and gradient-clipping schedules
/// (`sd_textual_inversion::dataset::learn_rate_schedule`). The first two bytes give `max_steps` (0–255)
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
                let _ = c.value_scheduler(max, cur);
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
