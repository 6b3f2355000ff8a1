//! Between pictures and the VAE's pixel tensors, with A1111's conversions.

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::error::{CoreError, Result};

/// Pixel tensors (`[batch, 3, h, w]` in −1..1, the VAE decoder's output) to 8-bit images as
/// A1111 makes them: `clamp((x + 1) / 2, 0, 1) · 255`, truncated to an integer.
///
/// # Errors
/// [`CoreError::Network`] when the tensor is not RGB, [`CoreError::ReadBack`] when it cannot
/// be read back from the device.
pub fn tensor_to_images(pixels: Tensor<4>) -> Result<Vec<RgbImage>> {
    let [batch, channels, height, width] = pixels.dims();
    if channels != 3 {
        return Err(CoreError::Network {
            network: "VAE",
            reason: format!("decoder returned {channels} channels, expected 3"),
        });
    }
    let values = pixels
        .add_scalar(1.0)
        .div_scalar(2.0)
        .clamp(0.0, 1.0)
        .mul_scalar(255.0)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|source| CoreError::ReadBack {
            what: "the decoded pixels",
            source,
        })?;
    let plane = height * width;
    let images = (0..batch)
        .map(|b| {
            let base = b * 3 * plane;
            let mut rgb = Vec::with_capacity(3 * plane);
            for i in 0..plane {
                for c in 0..3 {
                    // `astype(np.uint8)` truncates.
                    rgb.push(values[base + c * plane + i] as u8);
                }
            }
            RgbImage::from_raw(width as u32, height as u32, rgb).unwrap_or_default()
        })
        .collect();
    Ok(images)
}

/// 8-bit images (all the same size) to the VAE encoder's input: `[batch, 3, h, w]` in −1..1
/// (`x / 255 · 2 − 1`).
pub fn images_to_tensor(images: &[RgbImage], device: &Device) -> Tensor<4> {
    let (width, height) = images.first().map(|i| i.dimensions()).unwrap_or((0, 0));
    let (w, h) = (width as usize, height as usize);
    let plane = w * h;
    let mut values = vec![0f32; images.len() * 3 * plane];
    for (b, image) in images.iter().enumerate() {
        for (i, pixel) in image.pixels().enumerate().take(plane) {
            for c in 0..3 {
                values[b * 3 * plane + c * plane + i] = f32::from(pixel.0[c]) / 255.0 * 2.0 - 1.0;
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [images.len(), 3, h, w]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_pixels_up_to_truncation() {
        let device = Device::default();
        let image = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 80, y as u8 * 200, 255]));
        let back = tensor_to_images(images_to_tensor(std::slice::from_ref(&image), &device))
            .expect("readable");
        for (a, b) in image.pixels().zip(back[0].pixels()) {
            for c in 0..3 {
                // x/255·2−1 then (x+1)/2·255 can land a hair below the integer.
                assert!(a.0[c].abs_diff(b.0[c]) <= 1, "{a:?} vs {b:?}");
            }
        }
    }
}
