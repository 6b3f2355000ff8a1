//! Resizing as Pillow does (`Image.resize` with `BICUBIC` / `LANCZOS`), through sd-core's port
//! of Pillow's fixed-point resampler — the one the inpainting masks use too.

use image::RgbImage;
pub use sd_core::pipeline::PilFilter as Filter;
use sd_core::pipeline::resize_rgb;

/// `src` resized to `width × height` with `filter`, as Pillow's `Image.resize`.
///
/// ```
/// use sd_textual_inversion::preprocess::resample::{Filter, resize};
/// let img = image::RgbImage::from_pixel(4, 4, image::Rgb([10, 20, 30]));
/// assert_eq!(resize(&img, 2, 2, Filter::Bicubic).get_pixel(0, 0).0, [10, 20, 30]);
/// ```
pub fn resize(src: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    resize_rgb(src, width, height, filter)
}
