//! The infotext of a generated picture, as A1111's `create_infotext` writes it.

use sd_schedulers::SamplerSpec;

use super::hires::HiresFix;
use super::request::InpaintingFill;
use super::{Generation, Img2ImgInput, as_typed};
use crate::infotext::{GenerationParameters, ui_number};
use crate::model::StableDiffusion;
use crate::noise::RngSource;

impl Generation {
    /// The generation parameters of picture `index`, with the keys A1111 writes and leaves
    /// out (`Clip skip` only above 1, `RNG` only when not GPU, variation seed only with a
    /// strength, img2img's `Denoising strength` and inpainting's `Mask blur` / `Masked
    /// content` / `Mask mode`). `Version` is left out: A1111 reads it to switch on
    /// compatibility behaviour for old versions of itself, which this is not. `Seed resize
    /// from` and `ENSD` as A1111 writes them (`ENSD` only where the sampler uses it),
    /// `Lora hashes` when set, and `TI hashes` for the embeddings from files that the
    /// prompts used.
    pub fn parameters(&self, index: usize, model: &StableDiffusion) -> GenerationParameters {
        let p = &self.params;
        let spec = SamplerSpec::parse(&p.sampler, p.sigma_schedule.as_deref())
            .map(SamplerSpec::normalized)
            .ok();
        let mut out = GenerationParameters {
            prompt: p.prompt.clone(),
            negative_prompt: p.negative_prompt.clone(),
            steps: u32::try_from(p.steps).ok(),
            sampler: Some(
                spec.map(|s| s.sampler.label().to_owned())
                    .unwrap_or_else(|| p.sampler.clone()),
            ),
            schedule_type: spec.map(|s| s.sigma_schedule.label().to_owned()),
            cfg_scale: Some(as_typed(p.cfg_scale)),
            seed: self.seeds.get(index).map(|&s| s as i64),
            width: Some(p.width),
            height: Some(p.height),
            model_hash: model.hash().map(|h| h.short().to_owned()),
            model: Some(model.name()),
            clip_skip: (p.clip_skip > 1).then_some(p.clip_skip as u32),
            rng: (p.rng != RngSource::Gpu).then(|| p.rng.as_str().to_owned()),
            ..GenerationParameters::default()
        };
        out.seed_resize_from = p.seed_resize_from.map(|r| (r.width, r.height));
        // A1111's `is_sampler_using_eta_noise_seed_delta`: a non-zero η and a sampler whose
        // options say `uses_ensd` (DDIM uses the delta with η > 0 but never writes it).
        let uses_ensd = spec.is_some_and(|s| {
            s.sampler.info().uses_ensd && p.eta.unwrap_or_else(|| s.sampler.default_eta()) != 0.0
        });
        if p.eta_noise_seed_delta != 0 && uses_ensd {
            out.ensd = i64::try_from(p.eta_noise_seed_delta).ok();
        }
        if p.subseed_strength != 0.0 {
            out.variation_seed = self.subseeds.get(index).map(|&s| s as i64);
            out.variation_seed_strength = Some(as_typed(p.subseed_strength));
        }
        if let Some(input) = &self.img2img {
            describe_img2img(&mut out, input);
        }
        if let Some(hires) = &p.hires {
            describe_hires(&mut out, hires, p);
        }
        // After the img2img entries, as A1111's `extra_generation_params` gets it in
        // `setup_conds`.
        // A1111 adds `Lora hashes` when the networks activate, before `setup_conds` adds
        // `TI hashes`.
        if let Some(hashes) = &self.lora_hashes {
            out.set_extra("Lora hashes", hashes);
        }
        if let Some(hashes) = &self.ti_hashes {
            out.set_extra("TI hashes", hashes);
        }
        out
    }

    /// [`parameters`](Self::parameters) as text, the PNG `parameters` chunk.
    pub fn infotext(&self, index: usize, model: &StableDiffusion) -> String {
        self.parameters(index, model).to_infotext()
    }
}

/// A1111's hires entries, in the order its `init` and `calculate_target_resolution` add them
/// to `extra_generation_params` (before the networks' and embeddings' hashes): the hires
/// sampler, prompt and negative prompt where they differ from the first pass's, the upscale
/// factor or resize, the hires steps when set, the upscaler; and `Denoising strength`.
fn describe_hires(out: &mut GenerationParameters, hires: &HiresFix, p: &super::GenerationRequest) {
    out.denoising_strength = Some(as_typed(hires.denoising_strength));
    if let Some(sampler) = hires.hr_sampler.as_ref().filter(|s| **s != p.sampler) {
        out.set_extra("Hires sampler", sampler);
    }
    if !hires.hr_prompt.is_empty() && hires.hr_prompt != p.prompt {
        out.set_extra("Hires prompt", &hires.hr_prompt);
    }
    if !hires.hr_negative_prompt.is_empty() && hires.hr_negative_prompt != p.negative_prompt {
        out.set_extra("Hires negative prompt", &hires.hr_negative_prompt);
    }
    if let Some(cfg) = hires.hr_cfg_scale.filter(|c| *c != p.cfg_scale) {
        out.set_extra("Hires CFG Scale", ui_number(as_typed(cfg)));
    }
    // A1111 writes the second pass's schedule as its label, for k-diffusion samplers, where
    // it differs from the first pass's.
    let first = SamplerSpec::parse(&p.sampler, p.sigma_schedule.as_deref())
        .map(SamplerSpec::normalized)
        .ok();
    let second = SamplerSpec::parse(
        hires.hr_sampler.as_deref().unwrap_or(&p.sampler),
        hires
            .hr_scheduler
            .as_deref()
            .or(p.sigma_schedule.as_deref()),
    )
    .map(SamplerSpec::normalized)
    .ok();
    if let (Some(first), Some(second)) = (first, second)
        && !second.sampler.is_timestep_sampler()
        && second.sigma_schedule.label() != first.sigma_schedule.label()
    {
        out.set_extra("Hires schedule type", second.sigma_schedule.label());
    }
    if hires.hr_resize_x == 0 && hires.hr_resize_y == 0 {
        out.set_extra("Hires upscale", ui_number(as_typed(hires.hr_scale)));
    } else {
        out.set_extra(
            "Hires resize",
            format!("{}x{}", hires.hr_resize_x, hires.hr_resize_y),
        );
    }
    if hires.hr_second_pass_steps != 0 {
        out.set_extra("Hires steps", hires.hr_second_pass_steps.to_string());
    }
    out.set_extra("Hires upscaler", hires.hr_upscaler.name());
}

fn describe_img2img(out: &mut GenerationParameters, input: &Img2ImgSettings) {
    out.denoising_strength = Some(as_typed(input.denoising_strength));
    if !input.masked {
        return;
    }
    if input.mask_blur > 0 {
        out.mask_blur = Some(input.mask_blur);
    }
    if input.inpainting_mask_invert {
        out.set_extra("Mask mode", "Inpaint not masked");
    }
    let fill = match input.inpainting_fill {
        InpaintingFill::Fill => Some("fill"),
        InpaintingFill::LatentNoise => Some("latent noise"),
        InpaintingFill::LatentNothing => Some("latent nothing"),
        InpaintingFill::Original => None,
    };
    if let Some(fill) = fill {
        out.set_extra("Masked content", fill);
    }
}

/// The img2img settings a [`Generation`] remembers for its infotext (not the pictures).
#[derive(Debug, Clone, PartialEq)]
pub struct Img2ImgSettings {
    /// "Denoising strength".
    pub denoising_strength: f32,
    /// Whether a mask was given (inpainting).
    pub masked: bool,
    /// "Mask blur".
    pub mask_blur: u32,
    /// "Masked content".
    pub inpainting_fill: InpaintingFill,
    /// "Mask mode".
    pub inpainting_mask_invert: bool,
}

impl From<&Img2ImgInput> for Img2ImgSettings {
    fn from(input: &Img2ImgInput) -> Self {
        Self {
            denoising_strength: input.denoising_strength,
            masked: input.mask.is_some(),
            mask_blur: input.mask_blur,
            inpainting_fill: input.inpainting_fill,
            inpainting_mask_invert: input.inpainting_mask_invert,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_settings_are_written_as_typed() {
        assert_eq!(ui_number(as_typed(0.3)), "0.3");
        assert_eq!(ui_number(as_typed(7.0)), "7");
        assert_eq!(ui_number(as_typed(7.3)), "7.3");
        assert_eq!(ui_number(as_typed(0.75)), "0.75");
        assert_eq!(ui_number(as_typed(1e-5)), "1e-05");
    }
}
