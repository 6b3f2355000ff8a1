//! What a user asks for: A1111's txt2img and img2img fields.

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::noise::{RngSource, SeedResize};

/// The settings of one txt2img run (and the shared part of img2img), named and defaulted as
/// A1111's UI: 20 steps of "Euler a", CFG scale 7, 512×512, seed −1 (random).
///
/// ```
/// let params = sd_core::GenerationRequest {
///     prompt: "a red fox in the snow".into(),
///     sampler: "DPM++ 2M Karras".into(),
///     seed: 3711471449,
///     ..Default::default()
/// };
/// assert_eq!(params.steps, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationRequest {
    /// The prompt, in A1111's syntax (emphasis, editing, alternation, AND, BREAK).
    pub prompt: String,
    /// The negative prompt (same syntax; AND is not split).
    pub negative_prompt: String,
    /// Sampling steps.
    pub steps: usize,
    /// Sampler name as A1111 writes it ("Euler a", "DPM++ 2M", or an old combined name such
    /// as "DPM++ 2M Karras").
    pub sampler: String,
    /// Schedule type ("Automatic", "Karras", "Exponential", ...); `None` = Automatic or what
    /// a combined sampler name implies.
    pub sigma_schedule: Option<String>,
    /// Classifier-free guidance scale.
    pub cfg_scale: f32,
    /// Seed of the first image; image `i` of a batch uses `seed + i` (every image `seed` when
    /// a variation strength is set, as in A1111). −1 picks one at random.
    pub seed: i64,
    /// Variation seed (A1111's "subseed"); −1 picks one at random.
    pub subseed: i64,
    /// Variation strength: how far toward the variation seed's noise (0 = off).
    pub subseed_strength: f32,
    /// Image width in pixels (a multiple of 8).
    pub width: u32,
    /// Image height in pixels (a multiple of 8).
    pub height: u32,
    /// Images per run.
    pub batch_size: usize,
    /// CLIP skip: 1 = the text encoder's last layer, 2 = the one before, ...
    pub clip_skip: usize,
    /// Where the noise comes from (A1111's "Random number generator source").
    pub rng: RngSource,
    /// η of ancestral and SDE samplers (`None` = the sampler's default, 1).
    pub eta: Option<f64>,
    /// "Resize seed from" (A1111's `seed_resize_from_w` × `seed_resize_from_h`): the initial
    /// noise is drawn as for a picture of this size and pasted centred (cropped where larger),
    /// so a seed keeps its composition at another size. `None` = off (A1111's 0 × 0).
    pub seed_resize_from: Option<SeedResize>,
    /// A1111's "Eta noise seed delta" setting (ENSD): after the initial noise, the per-step
    /// noise of ancestral samplers (and DDIM with η > 0) comes from generators seeded with
    /// `seed + delta` instead of continuing the seed's own. 0 = off; NovelAI's is 31337.
    pub eta_noise_seed_delta: u64,
    /// A1111's hires fix ("Hires. fix", txt2img only): `None` = off.
    pub hires: Option<super::hires::HiresFix>,
}

impl Default for GenerationRequest {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: String::new(),
            steps: 20,
            sampler: "Euler a".into(),
            sigma_schedule: None,
            cfg_scale: 7.0,
            seed: -1,
            subseed: -1,
            subseed_strength: 0.0,
            width: 512,
            height: 512,
            batch_size: 1,
            clip_skip: 1,
            rng: RngSource::default(),
            eta: None,
            seed_resize_from: None,
            eta_noise_seed_delta: 0,
            hires: None,
        }
    }
}

/// What A1111's inpainting does with the masked area before sampling ("Masked content").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InpaintingFill {
    /// Blur the colours of the unmasked picture into the hole ("fill").
    Fill,
    /// Keep the original picture under the mask ("original"). The default.
    #[default]
    Original,
    /// Replace the masked latent with fresh noise ("latent noise").
    LatentNoise,
    /// Replace the masked latent with zeros ("latent nothing").
    LatentNothing,
}

/// The extra inputs of img2img and inpainting.
#[derive(Debug, Clone)]
pub struct Img2ImgInput {
    /// The picture to start from; resized to the requested size if it differs.
    pub init_image: RgbImage,
    /// "Denoising strength": 0 keeps the picture, 1 replaces it.
    pub denoising_strength: f32,
    /// White where the picture is repainted (inpainting); `None` for plain img2img.
    pub mask: Option<GrayImage>,
    /// Gaussian blur radius applied to the mask, in pixels (A1111 default 4).
    pub mask_blur: u32,
    /// What fills the masked area before sampling.
    pub inpainting_fill: InpaintingFill,
    /// Repaint where the mask is black instead ("Inpaint not masked").
    pub inpainting_mask_invert: bool,
}

impl Img2ImgInput {
    /// A mask as A1111's `create_binary_mask` reads a picture: a picture with transparency
    /// uses its alpha channel, thresholded (`> 128` is repainted); any other picture is taken
    /// as grey levels as they are (255 = repaint, greys blend).
    pub fn mask_from_image(image: &image::DynamicImage) -> GrayImage {
        if image.color().has_alpha() {
            let rgba = image.to_rgba8();
            if rgba.pixels().any(|p| p.0[3] != 255) {
                return GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
                    image::Luma([if rgba.get_pixel(x, y).0[3] > 128 {
                        255
                    } else {
                        0
                    }])
                });
            }
        }
        image.to_luma8()
    }

    /// Plain img2img of the picture file `init_image`, opened by the one picture loader
    /// ([`crate::image_file`]: EXIF orientation applied, the pixel cap, truncation refused),
    /// at `denoising_strength`.
    ///
    /// # Errors
    /// [`crate::CoreError::Image`] naming the file.
    pub fn open(init_image: &std::path::Path, denoising_strength: f32) -> crate::Result<Self> {
        let picture = crate::image_file::open_rgb(init_image)?;
        Ok(Self::new(picture, denoising_strength))
    }

    /// Reads the mask file `path` with the one picture loader (as [`Img2ImgInput::open`]) and
    /// sets it as [`Img2ImgInput::mask_from_image`] reads a picture.
    ///
    /// # Errors
    /// [`crate::CoreError::Image`] naming the file.
    pub fn open_mask(&mut self, path: &std::path::Path) -> crate::Result<()> {
        let picture = crate::image_file::open(path)?;
        self.mask = Some(Self::mask_from_image(&picture));
        Ok(())
    }

    /// Plain img2img of `init_image` at `denoising_strength` (A1111 default 0.75).
    pub fn new(init_image: RgbImage, denoising_strength: f32) -> Self {
        Self {
            init_image,
            denoising_strength,
            mask: None,
            mask_blur: 4,
            inpainting_fill: InpaintingFill::Original,
            inpainting_mask_invert: false,
        }
    }
}
