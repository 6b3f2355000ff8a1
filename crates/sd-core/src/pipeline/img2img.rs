//! Everything img2img and inpainting prepare before sampling (A1111's
//! `StableDiffusionProcessingImg2Img.init`, whole-picture mode), and the overlay after it.

use burn::tensor::{Tensor, TensorData};
use image::{GrayImage, RgbImage};

use super::image::images_to_tensor;
use super::mask::{
    PreparedMask, apply_overlay, fill_masked, inpainting_masks, latent_keep_mask, prepare_mask,
};
use super::pil_resize::{PilFilter, resize_rgb};
use super::request::{GenerationRequest, Img2ImgInput, InpaintingFill};
use crate::error::Result;
use crate::model::StableDiffusion;
use crate::noise::ImageRng;

/// What sampling starts from and blends with.
pub(crate) struct Img2ImgSetup {
    /// The encoded (and, for latent fills, altered) picture: `[batch, 4, h, w]`.
    pub init_latent: Tensor<4>,
    /// A1111's latent `mask` (1 = keep the original), expanded to `[batch, 4, h, w]`.
    pub keep: Option<Tensor<4>>,
    /// The resized original and the overlay mask, to paste the kept pixels back.
    pub overlay: Option<(RgbImage, GrayImage)>,
}

impl StableDiffusion {
    /// The picture at the requested size ("Just resize": PIL's `LANCZOS`, as A1111's
    /// `resize_image` without an upscaler).
    pub(crate) fn resized_init_image(input: &Img2ImgInput, params: &GenerationRequest) -> RgbImage {
        resize_rgb(
            &input.init_image,
            params.width,
            params.height,
            PilFilter::Lanczos,
        )
    }

    /// Encodes pictures to UNet-scale latents: the VAE posterior's mean × scaling factor.
    ///
    /// A1111 samples the posterior with torch's unseeded global generator, which nothing can
    /// replay; the mean is the deterministic choice (real VAEs' posteriors are narrow).
    pub(crate) fn encode_pixels(&self, pixels: Tensor<4>) -> Tensor<4> {
        self.vae.scale_latents(self.vae.encode(pixels).mode())
    }

    pub(crate) fn prepare_img2img(
        &self,
        input: &Img2ImgInput,
        params: &GenerationRequest,
        seeds: &[u64],
    ) -> Result<(Img2ImgSetup, Option<PreparedMask>, RgbImage)> {
        let device = self.device();
        let batch = params.batch_size;
        let (lw, lh) = (params.width / 8, params.height / 8);
        let resized = Self::resized_init_image(input, params);
        let prepared = input.mask.as_ref().map(|mask| {
            prepare_mask(
                mask,
                input.inpainting_mask_invert,
                input.mask_blur,
                params.width,
                params.height,
            )
        });
        // Any fill but "original" paints the hole in pixel space first (A1111 runs
        // `masking.fill` for "latent noise" and "latent nothing" too).
        let image = match &prepared {
            Some(m) if input.inpainting_fill != InpaintingFill::Original => {
                fill_masked(&resized, &m.mask)
            }
            _ => resized.clone(),
        };
        let pixels = images_to_tensor(&vec![image.clone(); batch], device);
        let mut init_latent = self.encode_pixels(pixels);
        let channels = init_latent.dims()[1];
        let keep = prepared.as_ref().map(|m| {
            latent_keep_mask(&m.mask, lw, lh, device).expand([
                batch,
                channels,
                lh as usize,
                lw as usize,
            ])
        });
        if let Some(keep) = &keep {
            let nmask = keep.clone().neg().add_scalar(1.0);
            match input.inpainting_fill {
                InpaintingFill::LatentNoise => {
                    // A fresh ImageRNG of the same seeds (no variation seed): the same draw
                    // that becomes the sampling noise.
                    let mut rng =
                        ImageRng::new(params.rng, [channels, lh as usize, lw as usize], seeds)?;
                    let noise = Tensor::<4>::from_data(
                        TensorData::new(rng.next(), [batch, channels, lh as usize, lw as usize]),
                        device,
                    );
                    init_latent = init_latent * keep.clone() + noise * nmask;
                }
                InpaintingFill::LatentNothing => init_latent = init_latent * keep.clone(),
                _ => {}
            }
        }
        let overlay = prepared.as_ref().map(|m| (resized, m.overlay.clone()));
        Ok((
            Img2ImgSetup {
                init_latent,
                keep,
                overlay,
            },
            prepared,
            image,
        ))
    }

    /// The extra channels of a 9-channel inpainting UNet: the 0/1 mask (1 = repaint) at
    /// latent size, then the latent of the picture with the masked area blanked to grey:
    /// `[batch, 5, h/8, w/8]`. Without a picture (txt2img) everything is masked.
    pub(crate) fn inpainting_image_cond(
        &self,
        image: Option<(&RgbImage, Option<&PreparedMask>)>,
        params: &GenerationRequest,
    ) -> Tensor<4> {
        let device = self.device();
        let batch = params.batch_size;
        let (w, h) = (params.width, params.height);
        let (lw, lh) = (w / 8, h / 8);
        let (small, pixels) = match image {
            Some((image, mask)) => {
                let pixels = images_to_tensor(std::slice::from_ref(image), device);
                match mask {
                    Some(m) => {
                        let (small, full) = inpainting_masks(&m.mask, lw, lh, device);
                        let keep = full
                            .neg()
                            .add_scalar(1.0)
                            .expand([1, 3, h as usize, w as usize]);
                        (small, pixels * keep)
                    }
                    None => (
                        Tensor::ones([1, 1, lh as usize, lw as usize], device),
                        pixels.zeros_like(),
                    ),
                }
            }
            // txt2img: "the masked image is all 0.5 grey", i.e. 0 after `2x − 1`.
            None => (
                Tensor::ones([1, 1, lh as usize, lw as usize], device),
                Tensor::zeros([1, 3, h as usize, w as usize], device),
            ),
        };
        let latent = self.encode_pixels(pixels);
        Tensor::cat(vec![small, latent], 1).repeat_dim(0, batch)
    }
}

/// Pastes the original back over each generated picture (A1111's default "overlay").
pub(crate) fn overlay_all(
    images: Vec<RgbImage>,
    overlay: &Option<(RgbImage, GrayImage)>,
) -> Vec<RgbImage> {
    match overlay {
        Some((original, mask)) => images
            .iter()
            .map(|img| apply_overlay(img, original, mask))
            .collect(),
        None => images,
    }
}
