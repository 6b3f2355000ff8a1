//! PNG alpha as a loss weight (`--use-alpha-weight`, A1111's `use_weight`).
//!
//! A1111 (`dataset.py`): for an image with an alpha band (`'A' in image.getbands()`: RGBA, LA,
//! ...; single-colour `tRNS` transparency is ignored), the alpha channel *of the original,
//! unresized image* is resized straight to the latent size with PIL's default filter for 8-bit
//! images (bicubic, [`pillow_resize_bicubic`]), converted to f32, repeated over the latent
//! channels, shifted to a minimum of 0 and divided by its mean (so the loss keeps its scale).
//! An image without alpha gets a map of ones. The loss is then `mean(weight * (eps - pred)^2)`
//! (`weighted_forward`), which the trainer implements.
//!
//! Two facts to know:
//! - A1111 passes the latent's `[height, width]` where PIL expects `(width, height)`, then
//!   reshapes the result to `[height, width]`: for a non-square latent its map is resampled to
//!   the transposed size and its rows wrap. [`alpha_weight_map_a1111`] reproduces that
//!   bit-exactly; [`alpha_weight_map`] is the same computation with the orientation right (the
//!   two agree for square latents). The trainer uses the latter.
//! - A constant alpha (for example a fully opaque RGBA PNG) makes A1111 divide 0 by 0: every
//!   weight is NaN and so is the loss. Here a constant alpha gives ones, like no alpha.

use sd_core::pipeline::{PilFilter, resize_gray};

use super::DatasetError;

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS = 32 - 8 - 2`).
/// Pillow's `Image.resize(size, BICUBIC)` of an 8-bit single-channel `w × h` buffer to
/// `out_w × out_h` (sd-core's port of Pillow's fixed-point resampler).
///
/// ```
/// use sd_textual_inversion::dataset::alpha::pillow_resize_bicubic;
/// let flat = vec![77u8; 24];
/// assert_eq!(pillow_resize_bicubic(&flat, 6, 4, 3, 2), vec![77; 6]);
/// ```
pub fn pillow_resize_bicubic(
    src: &[u8],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    match image::GrayImage::from_raw(w as u32, h as u32, src.to_vec()) {
        Some(gray) => resize_gray(&gray, out_w as u32, out_h as u32, PilFilter::Bicubic).into_raw(),
        None => vec![0; out_w * out_h],
    }
}

/// Shift to a minimum of 0, divide by the mean (f32, as A1111's torch code); constant → ones.
fn normalise(values: Vec<u8>) -> Vec<f32> {
    let min = values.iter().copied().min().unwrap_or(0);
    // Integer sum: exact, as torch's f32 sum is for maps up to 128x128 latents.
    let sum: u64 = values.iter().map(|&v| u64::from(v - min)).sum();
    if sum == 0 {
        return vec![1.0; values.len()];
    }
    let mean = sum as f32 / values.len() as f32;
    values.iter().map(|&v| f32::from(v - min) / mean).collect()
}

fn check(
    alpha: &[u8],
    width: usize,
    height: usize,
    latent_w: usize,
    latent_h: usize,
) -> Result<(), DatasetError> {
    if width == 0 || height == 0 || latent_w == 0 || latent_h == 0 {
        return Err(DatasetError::Zero("image and latent sizes"));
    }
    if alpha.len() != width * height {
        return Err(DatasetError::AlphaShape {
            len: alpha.len(),
            width,
            height,
        });
    }
    Ok(())
}

/// The loss-weight map of one latent channel (the same for every channel), row-major
/// `[latent_h, latent_w]`, from the original image's alpha channel (`width * height` bytes):
/// bicubic resize to the latent size, then minimum 0 and mean 1 (see the module docs).
///
/// ```
/// use sd_textual_inversion::dataset::alpha::alpha_weight_map;
/// // Left half transparent, right half opaque, 16x8 image → 2x1 latent.
/// let alpha: Vec<u8> = (0..16 * 8).map(|i| if i % 16 < 8 { 0 } else { 255 }).collect();
/// let w = alpha_weight_map(&alpha, 16, 8, 2, 1)?;
/// assert_eq!(w.len(), 2);
/// assert!(w[0] < 0.1 && w[1] > 1.9);
/// // Constant alpha: ones (A1111 would produce NaN).
/// assert_eq!(alpha_weight_map(&[255; 64], 8, 8, 1, 1)?, vec![1.0]);
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
///
/// # Errors
/// [`DatasetError::AlphaShape`] if `alpha.len() != width * height`, [`DatasetError::Zero`] for
/// a zero size.
pub fn alpha_weight_map(
    alpha: &[u8],
    width: usize,
    height: usize,
    latent_w: usize,
    latent_h: usize,
) -> Result<Vec<f32>, DatasetError> {
    check(alpha, width, height, latent_w, latent_h)?;
    Ok(normalise(pillow_resize_bicubic(
        alpha, width, height, latent_w, latent_h,
    )))
}

/// A1111's map bit for bit (constant alpha aside: ones, not NaN), including its width/height
/// swap: the alpha is resized to `latent_h` columns by `latent_w` rows and that buffer is read
/// as `[latent_h, latent_w]`.
/// Equal to [`alpha_weight_map`] when `latent_w == latent_h`. For tests and comparison.
///
/// ```
/// use sd_textual_inversion::dataset::alpha::{alpha_weight_map, alpha_weight_map_a1111};
/// let alpha: Vec<u8> = (0..64u32).map(|i| (i * 4) as u8).collect();
/// assert_eq!(alpha_weight_map_a1111(&alpha, 8, 8, 2, 2)?, alpha_weight_map(&alpha, 8, 8, 2, 2)?);
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
///
/// # Errors
/// As [`alpha_weight_map`].
pub fn alpha_weight_map_a1111(
    alpha: &[u8],
    width: usize,
    height: usize,
    latent_w: usize,
    latent_h: usize,
) -> Result<Vec<f32>, DatasetError> {
    check(alpha, width, height, latent_w, latent_h)?;
    Ok(normalise(pillow_resize_bicubic(
        alpha, width, height, latent_h, latent_w,
    )))
}
