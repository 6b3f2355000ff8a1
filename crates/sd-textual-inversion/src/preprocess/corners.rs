//! Shi–Tomasi corners, as OpenCV's `goodFeaturesToTrack` finds them with the arguments
//! A1111's `autocrop.image_corner_points` passes (`maxCorners=100`, `qualityLevel=0.04`,
//! `minDistance=0.06·min(w, h)`, `blockSize=3`, no Harris).
//!
//! OpenCV's steps: 3×3 Sobel gradients scaled by `1/(4·3·255)` with reflect-101 borders, the
//! 3×3 unnormalised box sum of `dx², dx·dy, dy²`, the smaller eigenvalue of that matrix per
//! pixel, zeroing values not above `qualityLevel · max`, keeping the 3×3 local maxima off the
//! one-pixel border, strongest first (ties: the later pixel first, as OpenCV's pointer
//! comparison orders them), dropping any closer than `minDistance` to one already kept.

use image::GrayImage;

/// Reflect-101 border (`gfedcb|abcdefgh|gfedcba`), OpenCV's `BORDER_DEFAULT`.
fn reflect101(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let mut i = i;
    while i < 0 || i >= n {
        i = if i < 0 { -i } else { 2 * n - 2 - i };
    }
    i as usize
}

/// The smaller eigenvalue of the 3×3-summed structure tensor per pixel (OpenCV's
/// `cornerMinEigenVal(src, 3, 3)`), row-major.
fn min_eigenvalues(src: &GrayImage) -> Vec<f32> {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let px = |x: isize, y: isize| -> i32 {
        i32::from(src.as_raw()[reflect101(y, h) * w + reflect101(x, w)])
    };
    let scale = 1.0f32 / (4.0 * 3.0 * 255.0);
    let mut cov = vec![[0f32; 3]; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let gx = (px(x + 1, y - 1) - px(x - 1, y - 1))
                + 2 * (px(x + 1, y) - px(x - 1, y))
                + (px(x + 1, y + 1) - px(x - 1, y + 1));
            let gy = (px(x - 1, y + 1) - px(x - 1, y - 1))
                + 2 * (px(x, y + 1) - px(x, y - 1))
                + (px(x + 1, y + 1) - px(x + 1, y - 1));
            let dx = gx as f32 * scale;
            let dy = gy as f32 * scale;
            cov[y as usize * w + x as usize] = [dx * dx, dx * dy, dy * dy];
        }
    }
    let mut eig = vec![0f32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut s = [0f32; 3];
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let c = cov[reflect101(y + dy, h) * w + reflect101(x + dx, w)];
                    for k in 0..3 {
                        s[k] += c[k];
                    }
                }
            }
            let (a, b, c) = (s[0] * 0.5, s[1], s[2] * 0.5);
            eig[y as usize * w + x as usize] = (a + c) - ((a - c) * (a - c) + b * b).sqrt();
        }
    }
    eig
}

/// Corner positions `(x, y)`, strongest first, at most `max_corners`.
pub fn good_features_to_track(
    src: &GrayImage,
    max_corners: usize,
    quality_level: f64,
    min_distance: f64,
) -> Vec<(f32, f32)> {
    let (w, h) = (src.width() as usize, src.height() as usize);
    if w == 0 || h == 0 {
        return Vec::new();
    }
    let mut eig = min_eigenvalues(src);
    let max = eig.iter().copied().fold(f32::MIN, f32::max);
    let threshold = (f64::from(max) * quality_level) as f32;
    for v in &mut eig {
        if *v <= threshold {
            *v = 0.0;
        }
    }
    let mut candidates: Vec<(f32, usize)> = Vec::new();
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let v = eig[y * w + x];
            if v == 0.0 {
                continue;
            }
            // 3×3 dilation: the pixel must equal its neighbourhood's maximum.
            let mut local_max = f32::MIN;
            for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    local_max = local_max.max(eig[yy * w + xx]);
                }
            }
            if v == local_max {
                candidates.push((v, y * w + x));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    let min_d2 = (min_distance * min_distance) as f32;
    let mut kept: Vec<(f32, f32)> = Vec::new();
    for &(_, offset) in &candidates {
        let (x, y) = ((offset % w) as f32, (offset / w) as f32);
        let far = min_distance < 1.0
            || kept.iter().all(|&(kx, ky)| {
                let (dx, dy) = (x - kx, y - ky);
                dx * dx + dy * dy >= min_d2
            });
        if far {
            kept.push((x, y));
            if kept.len() == max_corners {
                break;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_four_corners_of_a_square() {
        let img = GrayImage::from_fn(40, 40, |x, y| {
            image::Luma([if (10..30).contains(&x) && (10..30).contains(&y) {
                255
            } else {
                0
            }])
        });
        let mut corners = good_features_to_track(&img, 100, 0.04, 2.4);
        corners.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        assert_eq!(corners.len(), 4, "{corners:?}");
        for (x, y) in corners {
            assert!((x - 9.5).abs() <= 1.0 || (x - 29.5).abs() <= 1.0, "{x}");
            assert!((y - 9.5).abs() <= 1.0 || (y - 29.5).abs() <= 1.0, "{y}");
        }
    }

    #[test]
    fn flat_picture_has_no_corners() {
        let img = GrayImage::from_pixel(20, 10, image::Luma([77]));
        assert!(good_features_to_track(&img, 100, 0.04, 0.6).is_empty());
    }
}
