//! Splitting oversized pictures: A1111's `split_pic` and the test in front of it
//! (`modules/textual_inversion/preprocess.py`, later
//! `extensions-builtin/postprocessing-for-training/scripts/postprocessing_split_oversized.py`).
//!
//! A picture whose aspect, measured against the target's, is at most `threshold` (`ratio =
//! short/long` of the picture over that of the target) is scaled (bicubic) so its short side
//! matches the target, then cut along its long side into `ceil((L − T·o) / (T·(1 − o)))`
//! target-sized pieces (`L` the scaled long side, `T` the target's, `o` the overlap ratio),
//! evenly spaced from one end to the other.

use image::RgbImage;

use super::crop::crop;
use super::resample::{Filter, resize};

/// A1111's clamps: the threshold to `0..=1`, the overlap ratio to `0..=0.9`.
pub fn clamp_parameters(threshold: f64, overlap: f64) -> (f64, f64) {
    (threshold.clamp(0.0, 1.0), overlap.clamp(0.0, 0.9))
}

/// The aspect measure A1111 tests, and whether the picture's long side is horizontal
/// (`inverse_xy`).
fn ratio(w: u32, h: u32, width: u32, height: u32) -> (f64, bool) {
    let (w, h, width, height) = (
        f64::from(w),
        f64::from(h),
        f64::from(width),
        f64::from(height),
    );
    if h > w {
        ((w * height) / (h * width), false)
    } else {
        ((h * width) / (w * height), true)
    }
}

/// Whether A1111 splits a `w × h` picture for a `width × height` target.
pub fn is_oversized(w: u32, h: u32, width: u32, height: u32, threshold: f64) -> bool {
    let (r, _) = ratio(w, h, width, height);
    r < 1.0 && r <= threshold
}

/// The scaled size and the piece offsets along the long side `split_pic` uses.
pub fn plan(w: u32, h: u32, width: u32, height: u32, overlap: f64) -> ((u32, u32), Vec<i64>) {
    let (_, inverse) = ratio(w, h, width, height);
    let (from_w, from_h, to_w, to_h) = if inverse {
        (h, w, height, width)
    } else {
        (w, h, width, height)
    };
    let long = (u64::from(from_h) * u64::from(to_w) / u64::from(from_w)).max(1);
    let long32 = u32::try_from(long).unwrap_or(u32::MAX);
    let size = if inverse {
        (long32, to_w)
    } else {
        (to_w, long32)
    };
    let (long, to_h) = (long as f64, f64::from(to_h));
    let count = ((long - to_h * overlap) / (to_h * (1.0 - overlap))).ceil();
    let count = if count.is_finite() && count >= 1.0 {
        count as usize
    } else {
        1
    };
    // A1111 divides by `count − 1`, a ZeroDivisionError for one piece; one piece starts at 0.
    let step = if count > 1 {
        (long - to_h) / (count - 1) as f64
    } else {
        0.0
    };
    let offsets = (0..count).map(|i| (step * i as f64) as i64).collect();
    (size, offsets)
}

/// `split_pic`: the pieces, in order.
pub fn split(im: &RgbImage, width: u32, height: u32, overlap: f64) -> Vec<RgbImage> {
    let (_, inverse) = ratio(im.width(), im.height(), width, height);
    let ((sw, sh), offsets) = plan(im.width(), im.height(), width, height, overlap);
    let scaled = resize(im, sw, sh, Filter::Bicubic);
    let (to_w, to_h) = if inverse {
        (i64::from(height), i64::from(width))
    } else {
        (i64::from(width), i64::from(height))
    };
    offsets
        .into_iter()
        .map(|y| {
            if inverse {
                crop(&scaled, [y, 0, y + to_h, to_w])
            } else {
                crop(&scaled, [0, y, to_w, y + to_h])
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a1111_defaults_on_a_tall_picture() {
        // 40×120 to 32×32: ratio 1/3 ≤ 0.5; scaled 32×96; count ceil((96 − 6.4)/25.6) = 4;
        // step 64/3 → offsets 0, 21, 42, 64.
        assert!(is_oversized(40, 120, 32, 32, 0.5));
        assert_eq!(plan(40, 120, 32, 32, 0.2), ((32, 96), vec![0, 21, 42, 64]));
        assert!(!is_oversized(96, 64, 32, 32, 0.5));
        assert!(!is_oversized(64, 64, 32, 32, 1.0));
    }
}
