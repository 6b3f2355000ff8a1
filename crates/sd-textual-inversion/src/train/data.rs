//! The training set in memory, as A1111's `PersonalizedBase` holds it: each picture resized
//! (PIL bicubic), encoded once by the VAE, its caption and (optionally) its alpha weight map;
//! the VAE is then off the hot path.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use image::RgbImage;
use sd_core::StableDiffusion;
use sd_core::noise::TorchCpuGenerator;
use sd_core::pipeline::{PilFilter, images_to_tensor, resize_rgb};

use super::config::TrainConfig;
use super::preflight::PromptCheck;
use super::step::StepBatch;
use crate::dataset::alpha::alpha_weight_map;
use crate::dataset::batching::LatentSampling;
use crate::dataset::caption::{CaptionBuilder, caption_for_limited, caption_source};
use crate::dataset::listing::list_candidates;
use crate::dataset::rng::RandomSource;
use crate::error::{Result, TrainError};
use crate::preprocess::SkippedFile;

/// A picture's latent as the sampling method keeps it: a fixed latent (UNet scale), or for
/// `random` the posterior's mean and standard deviation (VAE scale), sampled at every use.
#[derive(Debug, Clone)]
struct Latent {
    /// `[4, h, w]`: the fixed latent, or the posterior's mean.
    value: Tensor<3>,
    /// The posterior's standard deviation when sampling at every use.
    std: Option<Tensor<3>>,
}

/// One training picture.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The file.
    pub path: PathBuf,
    /// Its caption (`[filewords]`).
    pub filewords: String,
    /// Where the caption came from: the `.txt` sidecar, or the picture (its name).
    pub caption_source: PathBuf,
    /// The prompt fixed at load time, when captions do not vary per use, with the index of
    /// its template line.
    pub fixed_text: Option<(usize, String)>,
    latent: Latent,
    /// Loss weights from the alpha channel: `[1, h, w]`.
    pub weight: Option<Tensor<3>>,
}

/// The loaded training set.
#[derive(Debug)]
pub(crate) struct TrainingSet {
    pub items: Vec<Item>,
    /// Files that could not be used, with the reason.
    pub skipped: Vec<SkippedFile>,
}

impl TrainingSet {
    /// Loads `config.data_dir`, encoding every picture with `model`'s VAE. `progress` hears
    /// `(files done, files)` before each file and at the end; `None` when it breaks
    /// (cancelled).
    pub(crate) fn load(
        model: &StableDiffusion,
        config: &TrainConfig,
        captions: &CaptionBuilder,
        (rng, noise): (&mut impl RandomSource, &mut TorchCpuGenerator),
        progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<Option<Self>> {
        let (w, h) = (config.width, config.height);
        if w == 0 || h == 0 || w % 8 != 0 || h % 8 != 0 {
            return Err(TrainError::InvalidConfig {
                name: "size",
                reason: format!("{w}x{h}: each side must be a positive multiple of 8"),
            });
        }
        let (lw, lh) = ((w / 8) as usize, (h / 8) as usize);
        let mut items = Vec::new();
        let mut skipped = Vec::new();
        let candidates = list_candidates(&config.data_dir)?;
        let total = candidates.len();
        for (done, path) in candidates.into_iter().enumerate() {
            if progress(done, total).is_break() {
                return Ok(None);
            }
            // Captions beside the pictures are read with them, not as pictures.
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
            {
                continue;
            }
            // A1111's `images.read`: EXIF orientation applied; over-large headers refused
            // before decoding.
            let picture = match crate::preprocess::load::open_limited(
                &path,
                config.limits.max_image_pixels,
            ) {
                Ok(p) => p,
                Err(error) => {
                    skipped.push(SkippedFile { path, error });
                    continue;
                }
            };
            let weight = if config.use_alpha_weight {
                let device = model.device();
                let map = if picture.color().has_alpha() {
                    let rgba = picture.to_rgba8();
                    let alpha: Vec<u8> = rgba.pixels().map(|p| p.0[3]).collect();
                    alpha_weight_map(
                        &alpha,
                        rgba.width() as usize,
                        rgba.height() as usize,
                        lw,
                        lh,
                    )?
                } else {
                    // A1111 adds a map of ones so batches stack.
                    vec![1.0; lw * lh]
                };
                Some(Tensor::from_data(TensorData::new(map, [1, lh, lw]), device))
            } else {
                None
            };
            let rgb: RgbImage = resize_rgb(&picture.to_rgb8(), w, h, PilFilter::Bicubic);
            let latent = encode(model, &rgb, config.latent_sampling, noise);
            let filewords = caption_for_limited(&path, config.limits.max_prompt_chars)?;
            let fixed_text =
                (!captions.varies_per_fetch()).then(|| captions.create_text_at(&filewords, rng));
            items.push(Item {
                caption_source: caption_source(&path),
                path,
                filewords,
                fixed_text,
                latent,
                weight,
            });
        }
        if progress(total, total).is_break() {
            return Ok(None);
        }
        if items.is_empty() {
            return Err(TrainError::EmptyDataset {
                path: config.data_dir.clone(),
                reason: if skipped.is_empty() {
                    "no files".into()
                } else {
                    format!("{} files, none a readable picture", skipped.len())
                },
            });
        }
        Ok(Some(Self { items, skipped }))
    }

    /// The prompt for item `i` this time, with the index of its template line.
    pub(crate) fn text(
        &self,
        i: usize,
        captions: &CaptionBuilder,
        rng: &mut impl RandomSource,
    ) -> (usize, String) {
        let item = &self.items[i];
        match &item.fixed_text {
            Some(text) => text.clone(),
            None => captions.create_text_at(&item.filewords, rng),
        }
    }

    /// The latent of item `i` this time (UNet scale): `[4, h, w]`.
    pub(crate) fn latent(
        &self,
        i: usize,
        model: &StableDiffusion,
        noise: &mut TorchCpuGenerator,
    ) -> Tensor<3> {
        let latent = &self.items[i].latent;
        let Some(std) = &latent.std else {
            return latent.value.clone();
        };
        let mean = &latent.value;
        let dims = mean.dims();
        let eps = Tensor::<3>::from_data(
            TensorData::new(noise.randn(dims.iter().product()), dims),
            &mean.device(),
        );
        let sample = mean.clone() + std.clone() * eps;
        let [c, h, w] = dims;
        model
            .vae
            .scale_latents(sample.reshape([1, c, h, w]))
            .reshape([c, h, w])
    }

    /// The files, in dataset order.
    /// The micro-batch of items `indices`: prompts (each passed to `prompts`' check), latents,
    /// fresh noise and timesteps (uniform over the training timesteps, as ldm's
    /// `torch.randint`).
    pub(crate) fn step_batch(
        &self,
        indices: &[usize],
        model: &StableDiffusion,
        (captions, prompts): (&CaptionBuilder, &PromptCheck<'_>),
        rng: &mut impl RandomSource,
        noise: &mut TorchCpuGenerator,
    ) -> Result<StepBatch> {
        let device = model.device();
        let mut texts = Vec::with_capacity(indices.len());
        for &i in indices {
            let (line, text) = self.text(i, captions, rng);
            prompts.check(line, Some(&self.items[i].caption_source), &text)?;
            texts.push(text);
        }
        let latents: Vec<Tensor<3>> = indices
            .iter()
            .map(|&i| self.latent(i, model, noise))
            .collect();
        let latents = Tensor::stack::<4>(latents, 0);
        let dims = latents.dims();
        let noise_values = noise.randn(dims.iter().product());
        let noise = Tensor::<4>::from_data(TensorData::new(noise_values, dims), device);
        let timesteps_max = model.noise_schedule().num_train_timesteps();
        let timesteps = indices.iter().map(|_| rng.below(timesteps_max)).collect();
        let weights: Option<Vec<Tensor<3>>> = indices
            .iter()
            .map(|&i| self.items[i].weight.clone())
            .collect();
        Ok(StepBatch {
            texts,
            latents,
            noise,
            timesteps,
            weight: weights.map(|w| Tensor::stack::<4>(w, 0)),
        })
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.items.iter().map(|i| i.path.as_path())
    }
}

/// The picture through the VAE encoder, kept as `method` asks (A1111: `once` samples the
/// posterior once, `deterministic` keeps its mean, `random` keeps the posterior).
fn encode(
    model: &StableDiffusion,
    rgb: &RgbImage,
    method: LatentSampling,
    noise: &mut TorchCpuGenerator,
) -> Latent {
    let pixels = images_to_tensor(std::slice::from_ref(rgb), model.device());
    let posterior = model.vae.encode(pixels);
    let mean = posterior.mode().detach();
    let [_, c, h, w] = mean.dims();
    match method {
        LatentSampling::Deterministic => Latent {
            value: model.vae.scale_latents(mean).reshape([c, h, w]),
            std: None,
        },
        LatentSampling::Once => {
            let eps = Tensor::<4>::from_data(
                TensorData::new(noise.randn(c * h * w), [1, c, h, w]),
                &mean.device(),
            );
            let sample = posterior.sample_with_noise(eps).detach();
            Latent {
                value: model.vae.scale_latents(sample).reshape([c, h, w]),
                std: None,
            }
        }
        LatentSampling::Random => Latent {
            value: mean.reshape([c, h, w]),
            std: Some(posterior.std().detach().reshape([c, h, w])),
        },
    }
}
