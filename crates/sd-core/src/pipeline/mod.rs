//! txt2img and img2img with A1111's semantics: the same prompt, seed and settings give the
//! same latents as the web UI (with `--rng cpu`, to float rounding).
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use sd_core::{GenerationRequest, StableDiffusion, conditioning::EmbeddingLookup};
//!
//! let device = sd_core::DeviceChoice::Cpu.device()?;
//! let model = StableDiffusion::load("model.safetensors", &device)?;
//! let params = GenerationRequest {
//!     prompt: "a red fox in the snow".into(),
//!     seed: 3711471449,
//!     ..Default::default()
//! };
//! let result = model.txt2img(&params, &EmbeddingLookup::new(), &mut |_| ControlFlow::Continue(()))?;
//! result.images[0].save("fox.png").ok();
//! # Ok::<(), sd_core::CoreError>(())
//! ```

mod cfg_denoiser;
mod conds;
mod hires;
mod image;
mod image_noise;
mod img2img;
mod infotext;
mod latent_resize;
mod latents_file;
mod mask;
mod output;
mod pil_resize;
mod request;
mod sample;
mod validate;

use std::ops::ControlFlow;

use ::image::RgbImage;
use burn::tensor::Tensor;
use sd_schedulers::{SamplerOptions, SamplerSpec, StepInfo};

pub use cfg_denoiser::{CfgDenoiser, CondProvider, GuidanceConds, LatentMask};
pub use hires::{HiresFix, HiresTarget, HiresUpscaler};
pub use image::{images_to_tensor, tensor_to_images};
pub use image_noise::ImageNoise;
pub use infotext::Img2ImgSettings;
pub use latents_file::{LATENTS_KEY, save_latents};
pub use mask::{PreparedMask, apply_overlay, fill_masked, latent_keep_mask, prepare_mask};
pub use output::output_paths;
pub use pil_resize::{PilFilter, resize_gray, resize_rgb, resize_rgb_nearest};
pub use request::{GenerationRequest, Img2ImgInput, InpaintingFill};
pub use sample::Start;

use crate::conditioning::EmbeddingLookup;
use crate::error::{CoreError, Result};
use crate::model::StableDiffusion;
use crate::noise::ImageRng;

/// One sampling step, as reported to a progress callback.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Steps done so far (0-based index of this step).
    pub step: usize,
    /// Steps the sampler will run.
    pub total_steps: usize,
    /// The sampler's own report (σ, current latent, denoised estimate).
    pub info: &'a StepInfo<'a>,
}

/// The result of a generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The pictures, one per batch item.
    pub images: Vec<RgbImage>,
    /// The final latents before VAE decoding: `[batch, 4, height / 8, width / 8]`.
    pub latents: Tensor<4>,
    /// The seed of each picture (`seed + i`, or `seed` for all with a variation strength, as
    /// A1111; after a random seed was picked for −1).
    pub seeds: Vec<u64>,
    /// The variation seed of each picture.
    pub subseeds: Vec<u64>,
    /// The parameters as run (random seeds resolved).
    pub params: GenerationRequest,
    /// The img2img / inpainting settings, for img2img runs.
    pub img2img: Option<Img2ImgSettings>,
    /// Whether the callback stopped the run early (the latents are then the last denoised
    /// estimate, as A1111 returns on interrupt).
    pub cancelled: bool,
    /// A1111's `TI hashes` value (`name: shorthash, ...`) for the embeddings the prompts used
    /// that came from files; `None` when there were none.
    pub ti_hashes: Option<String>,
    /// A1111's `Lora hashes` value, for the caller that applied the prompt's LoRAs
    /// ([`crate::lora::PromptLoras::hashes`]) to set; generation leaves it `None`.
    pub lora_hashes: Option<String>,
}

/// A progress callback: return `ControlFlow::Break(())` to stop.
pub type ProgressCallback<'a> = dyn FnMut(&Progress<'_>) -> ControlFlow<()> + 'a;

impl StableDiffusion {
    /// Text to image.
    ///
    /// # Errors
    /// Invalid parameters ([`CoreError::InvalidRequest`], unknown sampler names), or a
    /// network failing at run time.
    pub fn txt2img(
        &self,
        params: &GenerationRequest,
        embeddings: &EmbeddingLookup,
        progress: &mut ProgressCallback<'_>,
    ) -> Result<Generation> {
        self.generate(params, None, embeddings, progress)
    }

    /// Image to image, with an optional inpainting mask.
    ///
    /// # Errors
    /// As [`txt2img`](Self::txt2img), plus an init image or mask that does not fit.
    pub fn img2img(
        &self,
        params: &GenerationRequest,
        input: &Img2ImgInput,
        embeddings: &EmbeddingLookup,
        progress: &mut ProgressCallback<'_>,
    ) -> Result<Generation> {
        self.generate(params, Some(input), embeddings, progress)
    }

    /// A1111's `process_images` for one batch, step by step: check the request, draw the
    /// seeds and the first noise, encode the prompts, prepare the init picture, sample with
    /// the guided UNet, blend the kept original back and decode.
    fn generate(
        &self,
        params: &GenerationRequest,
        input: Option<&Img2ImgInput>,
        embeddings: &EmbeddingLookup,
        progress: &mut ProgressCallback<'_>,
    ) -> Result<Generation> {
        // The hires fix is txt2img's (A1111's img2img has none).
        let params = match input {
            Some(_) if params.hires.is_some() => &GenerationRequest {
                hires: None,
                ..params.clone()
            },
            _ => params,
        };
        params.validate_for(self)?;
        if let Some(input) = input {
            input.validate()?;
        }
        let params = resolve_seeds(params);
        let spec = SamplerSpec::parse(&params.sampler, params.sigma_schedule.as_deref())?;
        let (seeds, subseeds) = batch_seeds(&params);
        let mut noise_source = self.image_noise(&params, &seeds, &subseeds)?;
        let noise = noise_source.draw();
        let first_pass_steps = conditioning_steps(spec, params.steps);
        let conds = conds::ConditioningSchedule::build(
            self,
            &params,
            (&params.prompt, &params.negative_prompt),
            embeddings,
            sd_prompt::Steps::new(first_pass_steps as u32),
        )?;
        let setup = match input {
            Some(input) => Some(self.prepare_img2img(input, &params, &seeds)?),
            None => None,
        };
        let guidance = self.guidance(setup.as_ref(), input, &params);
        let latent_mask = guidance.latent_mask.clone();
        let sampling = Sampling {
            spec,
            params: &params,
            conds: &conds,
            noise,
            noise_source: &mut noise_source,
        };
        let (latents, cancelled) = self.sample_latents(sampling, guidance, progress)?;
        let latents = keep_original(latents, latent_mask.as_ref());
        // A1111's hires fix: txt2img only; a cancelled first pass is not refined.
        let (latents, cancelled) = match (&params.hires, input) {
            (Some(hires), None) if !cancelled => {
                let first = HiresInput {
                    latents,
                    seeds: &seeds,
                    subseeds: &subseeds,
                    first_pass_steps,
                };
                self.hires_pass(&params, hires, first, embeddings, progress)?
            }
            _ => (latents, cancelled),
        };
        let images = self.decode_latents(latents.clone())?;
        let images = match &setup {
            Some((setup, ..)) => img2img::overlay_all(images, &setup.overlay),
            None => images,
        };
        Ok(Generation {
            images,
            latents,
            seeds,
            subseeds,
            img2img: input.map(Img2ImgSettings::from),
            cancelled,
            ti_hashes: conds.ti_hashes.clone(),
            lora_hashes: None,
            params,
        })
    }

    /// The image generators of the batch (A1111's `ImageRNG`) with the variation seeds,
    /// "Eta noise seed delta" and "Resize seed from" of `params`.
    fn image_noise(
        &self,
        params: &GenerationRequest,
        seeds: &[u64],
        subseeds: &[u64],
    ) -> Result<ImageNoise> {
        let shape = [
            self.unet_latent_channels(),
            params.height as usize / 8,
            params.width as usize / 8,
        ];
        let mut rng = ImageRng::new(params.rng, shape, seeds)?
            .with_subseeds(subseeds, f64::from(params.subseed_strength))
            .with_eta_noise_seed_delta(params.eta_noise_seed_delta);
        if let Some(resize) = params.seed_resize_from {
            rng = rng.with_seed_resize(resize);
        }
        Ok(ImageNoise::new(rng, params.batch_size, self.device())
            .with_brownian_seeds(seeds, params.rng))
    }

    /// Where sampling starts and what the guided UNet sees besides the prompts: the init
    /// latent and strength of img2img, the extra channels of a 9-channel inpainting UNet, the
    /// latent mask of the kept original.
    fn guidance(
        &self,
        setup: Option<&(img2img::Img2ImgSetup, Option<PreparedMask>, RgbImage)>,
        input: Option<&Img2ImgInput>,
        params: &GenerationRequest,
    ) -> Guidance {
        let image_cond = (self.architecture().unet.in_channels == 9).then(|| {
            self.inpainting_image_cond(setup.map(|(_, mask, image)| (image, mask.as_ref())), params)
        });
        let start = match (setup, input) {
            (Some((setup, ..)), Some(input)) => Start::Image {
                latent: Box::new(setup.init_latent.clone()),
                strength: input.denoising_strength,
                fix_steps: false,
            },
            _ => Start::Noise,
        };
        let latent_mask = setup.and_then(|(setup, ..)| {
            setup.keep.clone().map(|keep| LatentMask {
                init_latent: setup.init_latent.clone(),
                keep,
            })
        });
        Guidance {
            start,
            image_cond,
            latent_mask,
        }
    }

    /// Runs the sampler with the guided UNet; returns the final latents and whether the
    /// progress callback stopped the run. A failing model evaluation stops it at once.
    fn sample_latents(
        &self,
        sampling: Sampling<'_>,
        guidance: Guidance,
        progress: &mut ProgressCallback<'_>,
    ) -> Result<(Tensor<4>, bool)> {
        let Sampling {
            spec,
            params,
            conds,
            noise,
            noise_source,
        } = sampling;
        let options = SamplerOptions {
            eta: params.eta,
            // UniPC starts img2img at A1111's `t_start` rather than at the first timestep.
            img2img: matches!(guidance.start, Start::Image { .. }),
            ..SamplerOptions::default()
        };
        let steps = params.steps;
        let mut cancelled = false;
        let mut callback = |info: &StepInfo<'_>| {
            let flow = progress(&Progress {
                step: info.step,
                total_steps: steps,
                info,
            });
            if flow.is_break() {
                cancelled = true;
            }
            flow
        };
        let mut provider = |step: usize| conds.at_step(step);
        let mut denoiser = CfgDenoiser::new(
            &self.unet,
            self.noise_schedule(),
            self.architecture().prediction,
            &mut provider,
            params.cfg_scale,
        );
        if let Some(cond) = guidance.image_cond {
            denoiser = denoiser.with_image_cond(cond);
        }
        if let Some(mask) = guidance.latent_mask {
            // A1111 blends the timestep samplers' input, the k-diffusion samplers' output.
            denoiser = denoiser.with_mask(mask, spec.sampler.is_timestep_sampler());
        }
        let latents = sample::run(
            &mut denoiser,
            self.noise_schedule(),
            spec,
            steps,
            guidance.start,
            noise,
            noise_source,
            &options,
            &mut callback,
        )?;
        ensure_finite(&latents, "the UNet (sampling)")?;
        Ok((latents, cancelled))
    }

    /// Latent channels the sampler works in (4; a 9-channel inpainting UNet still denoises 4).
    fn unet_latent_channels(&self) -> usize {
        self.architecture().unet.out_channels
    }

    /// VAE decode of UNet-scale latents to pictures.
    ///
    /// # Errors
    /// When the pixels cannot be read back.
    pub fn decode_latents(&self, latents: Tensor<4>) -> Result<Vec<RgbImage>> {
        let pixels = self.vae.decode(self.vae.unscale_latents(latents));
        ensure_finite(&pixels, "the VAE (decoding)")?;
        tensor_to_images(pixels)
    }
}

/// The first pass of a hires-fix run, as the second pass needs it.
struct HiresInput<'a> {
    latents: Tensor<4>,
    seeds: &'a [u64],
    subseeds: &'a [u64],
    /// A1111's `firstpass_steps`: the first pass's total steps (doubled for second-order
    /// samplers), the base of the hires pass's prompt schedule.
    first_pass_steps: usize,
}

impl StableDiffusion {
    /// A1111's `sample_hr_pass`: the first pass upscaled to the target size (its latents
    /// resized, or its pictures decoded, resized and encoded), cropped to the requested
    /// aspect, then img2img there with fresh generators of the same seeds, the hires prompts
    /// scheduled over both passes, the hires sampler and CFG, and A1111's fixed-steps
    /// arithmetic. Returns the final latents and whether the callback stopped it.
    fn hires_pass(
        &self,
        params: &GenerationRequest,
        hires: &HiresFix,
        first: HiresInput<'_>,
        embeddings: &EmbeddingLookup,
        progress: &mut ProgressCallback<'_>,
    ) -> Result<(Tensor<4>, bool)> {
        let target = hires.target(params.width, params.height);
        let (tw, th) = target.size;
        let upscaled = match hires.hr_upscaler.latent_mode() {
            Some(mode) => {
                latent_resize::interpolate(first.latents, th as usize / 8, tw as usize / 8, mode)?
            }
            None => {
                let pictures = self.decode_latents(first.latents)?;
                let resized: Vec<RgbImage> = pictures
                    .iter()
                    .map(|p| hires::upscale_picture(p, tw, th, hires.hr_upscaler))
                    .collect();
                self.encode_pixels(images_to_tensor(&resized, self.device()))
            }
        };
        // A1111 crops `truncate` latent rows and columns, half on each side.
        let [b, c, h, w] = upscaled.dims();
        let (tx, ty) = (target.truncate.0 as usize, target.truncate.1 as usize);
        if tx >= w || ty >= h {
            return Err(CoreError::InvalidRequest {
                name: "hires resize",
                reason: format!("cropping {tx}×{ty} latents leaves nothing of {w}×{h}"),
            });
        }
        let latent = upscaled.slice([
            0..b,
            0..c,
            ty / 2..h - ty.div_ceil(2),
            tx / 2..w - tx.div_ceil(2),
        ]);
        let [_, _, lh, lw] = latent.dims();
        let second = GenerationRequest {
            prompt: non_empty(&hires.hr_prompt, &params.prompt),
            negative_prompt: non_empty(&hires.hr_negative_prompt, &params.negative_prompt),
            steps: hires.steps(params.steps),
            sampler: hires
                .hr_sampler
                .clone()
                .unwrap_or_else(|| params.sampler.clone()),
            sigma_schedule: hires
                .hr_scheduler
                .clone()
                .or_else(|| params.sigma_schedule.clone()),
            cfg_scale: hires.hr_cfg_scale.unwrap_or(params.cfg_scale),
            width: (lw * 8) as u32,
            height: (lh * 8) as u32,
            hires: None,
            ..params.clone()
        };
        let spec = SamplerSpec::parse(&second.sampler, second.sigma_schedule.as_deref())?;
        // `rng.ImageRNG(samples.shape[1:], self.seeds, ...)`: the same seeds, at the new size.
        let mut noise_source = self.image_noise(&second, first.seeds, first.subseeds)?;
        let noise = noise_source.draw();
        let steps = sd_prompt::Steps {
            steps: first.first_pass_steps as u32,
            hires_steps: Some(conditioning_steps(spec, second.steps) as u32),
            old_scheduling: false,
        };
        let conds = conds::ConditioningSchedule::build(
            self,
            &second,
            (&second.prompt, &second.negative_prompt),
            embeddings,
            steps,
        )?;
        let image_cond = (self.architecture().unet.in_channels == 9)
            .then(|| self.inpainting_image_cond(None, &second));
        let guidance = Guidance {
            start: Start::Image {
                latent: Box::new(latent),
                strength: hires.denoising_strength,
                fix_steps: true,
            },
            image_cond,
            latent_mask: None,
        };
        let sampling = Sampling {
            spec,
            params: &second,
            conds: &conds,
            noise,
            noise_source: &mut noise_source,
        };
        self.sample_latents(sampling, guidance, progress)
    }
}

/// The number a user typed to get this `f32`, as A1111 (which keeps Python floats) computes
/// with and writes it: the shortest decimal that reads back to the same `f32` (`0.3`, not the
/// widened `0.30000001192092896`).
pub(crate) fn as_typed(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// `text`, or `fallback` when it is empty (A1111's empty hires prompts).
fn non_empty(text: &str, fallback: &str) -> String {
    if text.is_empty() { fallback } else { text }.to_owned()
}

/// What the sampling step of [`StableDiffusion::generate`] is handed besides the guidance.
struct Sampling<'a> {
    spec: SamplerSpec,
    params: &'a GenerationRequest,
    conds: &'a conds::ConditioningSchedule,
    /// The first draw of the image generators, unit variance.
    noise: Tensor<4>,
    noise_source: &'a mut ImageNoise,
}

/// Where sampling starts and what guides it besides the prompts (see
/// [`StableDiffusion::guidance`]).
struct Guidance {
    start: Start,
    image_cond: Option<Tensor<4>>,
    latent_mask: Option<LatentMask>,
}

/// A1111 schedules prompts over model evaluations: twice the steps for second-order samplers
/// (`SamplerData.total_steps`).
fn conditioning_steps(spec: SamplerSpec, steps: usize) -> usize {
    if spec.sampler.info().second_order {
        steps * 2
    } else {
        steps
    }
}

/// A1111's `all_seeds` and `all_subseeds`: `seed + i`, but one seed for the whole batch when
/// a variation strength is set (the images then differ by their variation seeds only).
fn batch_seeds(params: &GenerationRequest) -> (Vec<u64>, Vec<u64>) {
    let batch = params.batch_size as u64;
    let seed_step = u64::from(params.subseed_strength == 0.0);
    let seeds = (0..batch)
        .map(|i| params.seed as u64 + i * seed_step)
        .collect();
    let subseeds = (0..batch).map(|i| params.subseed as u64 + i).collect();
    (seeds, subseeds)
}

/// A1111 blends the final latent once more with the kept original.
fn keep_original(latents: Tensor<4>, mask: Option<&LatentMask>) -> Tensor<4> {
    match mask {
        Some(mask) => {
            let nmask = mask.keep.clone().neg().add_scalar(1.0);
            latents * nmask + mask.init_latent.clone() * mask.keep.clone()
        }
        None => latents,
    }
}

/// A1111's `get_fixed_seed`: −1 (or any negative) becomes a random seed below 2³².
fn resolve_seeds(params: &GenerationRequest) -> GenerationRequest {
    let mut params = params.clone();
    if params.seed < 0 {
        params.seed = random_seed();
    }
    if params.subseed < 0 {
        params.subseed = random_seed();
    }
    params
}

fn random_seed() -> i64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let hash = std::collections::hash_map::RandomState::new().hash_one(nanos);
    (hash % 4_294_967_294) as i64
}

/// A1111's `devices.test_for_nans`, for any NaN or infinity (not only all-NaN tensors): a
/// picture with such values would be black where they are.
pub(crate) fn ensure_finite<const D: usize>(tensor: &Tensor<D>, stage: &'static str) -> Result<()> {
    if tensor.clone().is_finite().all().into_scalar::<bool>() {
        Ok(())
    } else {
        Err(CoreError::NonFinite { stage })
    }
}
