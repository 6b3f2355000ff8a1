//! Auto focal-point crop: A1111's `modules/textual_inversion/autocrop.py` (`crop_image`,
//! `focal_point`, `image_corner_points`, `image_entropy_points`), without the face detector.
//!
//! The picture is scaled (bicubic) so its short side fits the target, then a target-sized
//! window is centred on a weighted average of points of interest and pushed back inside the
//! frame. Points of interest: the centroid of Shi–Tomasi corners (with the bottom tenth of the
//! picture greyed out so watermarks do not attract the crop), and the centre of the window,
//! slid in 4-pixel steps along the long side, whose dithered black/white histogram has the
//! highest "entropy" (A1111's: `−Σ log2 p` over the non-empty bins). Each kind's centroid is
//! weighted by its weight divided by the sum of the weights of the kinds that found points.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::corners::good_features_to_track;
use super::crop::{CropBox, crop};
use super::gray::{to_bilevel, to_luma};
use super::resample::{Filter, resize};

/// The weights of the focal-point kinds (A1111's "Focal point ... weight" sliders). Face
/// detection is not implemented: its weight does not exist here, which is what A1111 does
/// with a face weight of 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FocalWeights {
    /// Weight of the corner ("edges") centroid. A1111's default: 0.5.
    pub edges: f64,
    /// Weight of the highest-entropy window's centre. A1111's preprocess default: 0.3.
    pub entropy: f64,
}

impl Default for FocalWeights {
    fn default() -> Self {
        Self {
            edges: 0.5,
            entropy: 0.3,
        }
    }
}

/// Where a focal crop was taken, for callers that want to show or check it.
#[derive(Debug, Clone, PartialEq)]
pub struct FocalCrop {
    /// The `width × height` crop.
    pub image: RgbImage,
    /// The size the picture was scaled to before cropping.
    pub scaled_size: (u32, u32),
    /// The focal point, in the scaled picture.
    pub focal_point: (i64, i64),
    /// The crop box `[left, top, right, bottom)` in the scaled picture.
    pub crop_box: CropBox,
}

/// The factor `crop_image` scales by: the short side onto the target's matching side; a
/// square picture onto the target's width, unless the target is portrait.
fn scale_factor(w: u32, h: u32, cw: u32, ch: u32) -> f64 {
    let (w, h, cw, ch) = (f64::from(w), f64::from(h), f64::from(cw), f64::from(ch));
    if w > h {
        ch / h
    } else if h > w {
        cw / w
    } else if ch > cw {
        ch / h
    } else {
        cw / w
    }
}

/// The size `crop_image` scales to (`int(w · scale)`, truncated like Python's `int`; at
/// least one pixel).
pub fn scaled_size(w: u32, h: u32, cw: u32, ch: u32) -> (u32, u32) {
    let s = scale_factor(w, h, cw, ch);
    let f = |v: u32| ((f64::from(v) * s) as u32).max(1);
    (f(w), f(h))
}

/// `image_corner_points`: corner positions of the luma picture with its bottom tenth filled
/// with grey 153 (`"#999"`).
fn corner_points(im: &RgbImage) -> Vec<(f64, f64)> {
    let mut gray = to_luma(im);
    // Pillow truncates the float rectangle corner `height · 0.9` toward zero.
    let top = (f64::from(im.height()) * 0.9) as u32;
    for y in top..im.height() {
        for x in 0..im.width() {
            gray.put_pixel(x, y, image::Luma([153]));
        }
    }
    let min_distance = f64::from(im.width().min(im.height())) * 0.06;
    good_features_to_track(&gray, 100, 0.04, min_distance)
        .into_iter()
        .map(|(x, y)| (f64::from(x), f64::from(y)))
        .collect()
}

/// A1111's `image_entropy`: `−Σ log2(count / total)` over the non-empty bins of the
/// Floyd–Steinberg dithered picture.
fn entropy(im: &RgbImage) -> f64 {
    let bits = to_bilevel(im);
    let white = bits.iter().filter(|&&b| b).count();
    let total = bits.len() as f64;
    let mut sum = 0.0;
    for count in [bits.len() - white, white] {
        if count > 0 {
            sum += (count as f64 / total).log2();
        }
    }
    -sum
}

/// `image_entropy_points`: the centre of the best window, or nothing for a square picture.
fn entropy_point(im: &RgbImage, cw: u32, ch: u32) -> Option<(f64, f64)> {
    let (w, h) = (i64::from(im.width()), i64::from(im.height()));
    let (cw, ch) = (i64::from(cw), i64::from(ch));
    let horizontal = match w.cmp(&h) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => return None,
    };
    let mut current: CropBox = [0, 0, cw, ch];
    // A1111 starts with `crop_best = crop_current`, the same list it then moves: when no
    // window beats entropy 0 (a flat black or white picture), the "best" window is where the
    // moving one stopped. `None` stands for that alias.
    let mut best: Option<CropBox> = None;
    let mut e_max = 0.0;
    // A1111 stops while the window's far edge is still inside: a window flush with the end
    // is never tried.
    loop {
        let (end, limit) = if horizontal {
            (current[2], w)
        } else {
            (current[3], h)
        };
        if end >= limit {
            break;
        }
        let e = entropy(&crop(im, current));
        if e > e_max {
            e_max = e;
            best = Some(current);
        }
        let (a, b) = if horizontal { (0, 2) } else { (1, 3) };
        current[a] += 4;
        current[b] += 4;
    }
    let best = best.unwrap_or(current);
    // `int(crop_best[0] + crop_width / 2)`: float half, truncated.
    let x_mid = (best[0] as f64 + cw as f64 / 2.0) as i64;
    let y_mid = (best[1] as f64 + ch as f64 / 2.0) as i64;
    Some((x_mid as f64, y_mid as f64))
}

fn centroid(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let x: f64 = points.iter().map(|p| p.0).sum();
    let y: f64 = points.iter().map(|p| p.1).sum();
    (x / n, y / n)
}

/// `focal_point` without faces: the weighted average of the corner centroid and the entropy
/// point, rounded half to even like Python's `round`.
pub fn focal_point(im: &RgbImage, cw: u32, ch: u32, weights: FocalWeights) -> (i64, i64) {
    let corners = if weights.edges > 0.0 {
        corner_points(im)
    } else {
        Vec::new()
    };
    let entropy = if weights.entropy > 0.0 {
        entropy_point(im, cw, ch)
    } else {
        None
    };
    let mut total = 0.0;
    if !corners.is_empty() {
        total += weights.edges;
    }
    if entropy.is_some() {
        total += weights.entropy;
    }
    let mut pois = Vec::new();
    if !corners.is_empty() {
        pois.push((centroid(&corners), weights.edges / total));
    }
    if let Some(p) = entropy {
        pois.push((p, weights.entropy / total));
    }
    let (mut weight, mut x, mut y) = (0.0, 0.0, 0.0);
    for ((px, py), w) in pois {
        weight += w;
        x += px * w;
        y += py * w;
    }
    if weight == 0.0 {
        return (0, 0);
    }
    (
        (x / weight).round_ties_even() as i64,
        (y / weight).round_ties_even() as i64,
    )
}

/// `autocrop.crop_image`: scale, find the focal point, cut a `width × height` window around
/// it kept inside the frame (black where the scaled picture is smaller than the window).
pub fn focal_crop(im: &RgbImage, width: u32, height: u32, weights: FocalWeights) -> FocalCrop {
    let (sw, sh) = scaled_size(im.width(), im.height(), width, height);
    let scaled = resize(im, sw, sh, Filter::Bicubic);
    let focus = focal_point(&scaled, width, height, weights);
    let place = |focus: i64, target: u32, size: u32| -> i64 {
        let (target, size) = (i64::from(target), i64::from(size));
        let start = focus - target / 2;
        if start < 0 {
            0
        } else if start + target > size {
            size - target
        } else {
            start
        }
    };
    let x1 = place(focus.0, width, sw);
    let y1 = place(focus.1, height, sh);
    let crop_box = [x1, y1, x1 + i64::from(width), y1 + i64::from(height)];
    FocalCrop {
        image: crop(&scaled, crop_box),
        scaled_size: (sw, sh),
        focal_point: focus,
        crop_box,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_rules() {
        assert_eq!(scaled_size(96, 64, 32, 32), (48, 32));
        assert_eq!(scaled_size(40, 120, 32, 32), (32, 96));
        assert_eq!(scaled_size(50, 50, 32, 64), (64, 64));
        // int(3 · (512 / 3)) == 511 in floating point, as in Python.
        assert_eq!(
            scaled_size(7, 3, 512, 512).1,
            (3.0 * (512.0f64 / 3.0)) as u32
        );
    }

    #[test]
    fn entropy_of_flat_and_half() {
        assert_eq!(
            entropy(&RgbImage::from_pixel(4, 4, image::Rgb([0, 0, 0]))),
            0.0
        );
        let half = RgbImage::from_fn(4, 4, |x, _| image::Rgb([if x < 2 { 0 } else { 255 }; 3]));
        assert!((entropy(&half) - 2.0).abs() < 1e-12);
    }
}
