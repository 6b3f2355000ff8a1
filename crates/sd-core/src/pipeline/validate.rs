//! A request checked before anything is loaded or allocated: every number in range, every
//! float finite, every size under [`Limits`]. Each refusal is a typed error naming the field
//! (as the example programs name their flags: `cfg_scale` is `--cfg-scale`) and the limit.

use super::request::{GenerationRequest, Img2ImgInput};
use crate::error::{CoreError, Result};
use crate::limits::Limits;
use crate::model::StableDiffusion;

fn invalid(name: &'static str, reason: String) -> Result<()> {
    Err(CoreError::InvalidRequest { name, reason })
}

fn finite(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        invalid(name, format!("{value} is not a finite number"))
    }
}

impl GenerationRequest {
    /// Checks the request under the default [`Limits`] (see [`validate_with`]).
    ///
    /// # Errors
    /// As [`validate_with`](Self::validate_with).
    ///
    /// [`validate_with`]: Self::validate_with
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&Limits::default())
    }

    /// Checks everything that needs no model: sizes (positive multiples of 8, at most
    /// [`Limits::max_generation_pixels`]), steps (1..=[`Limits::max_steps`]), batch size
    /// (1..=[`Limits::max_batch_size`]), prompt lengths, finite `cfg_scale`,
    /// `subseed_strength` (in 0..=1) and `eta` (≥ 0), and seeds that stay below `i64::MAX`
    /// across the batch (image `i` uses `seed + i`; a wrapped seed would be written as a
    /// negative number, which means "random").
    ///
    /// [`StableDiffusion::txt2img`] calls it too (and checks CLIP skip against the model);
    /// a program calls it first to refuse a request before loading a model.
    ///
    /// # Errors
    /// [`CoreError::InvalidRequest`] naming the field, or [`CoreError::Limit`] naming the cap.
    pub fn validate_with(&self, limits: &Limits) -> Result<()> {
        for (name, side) in [("width", self.width), ("height", self.height)] {
            if side == 0 || side % 8 != 0 {
                return invalid(name, format!("{side} is not a positive multiple of 8"));
            }
        }
        limits.check_generation_pixels("width × height", self.width, self.height)?;
        if self.steps == 0 {
            return invalid("steps", "must be at least 1".into());
        }
        limits.check_steps(self.steps as u64)?;
        if self.batch_size == 0 {
            return invalid("batch_size", "must be at least 1".into());
        }
        limits.check_batch_size(self.batch_size as u64)?;
        // The prompt parser is linear, but a pasted megabyte of text is a mistake, not a prompt.
        limits.check_prompt(&self.prompt)?;
        limits.check_prompt(&self.negative_prompt)?;
        finite("cfg_scale", f64::from(self.cfg_scale))?;
        finite("subseed_strength", f64::from(self.subseed_strength))?;
        if !(0.0..=1.0).contains(&self.subseed_strength) {
            return invalid(
                "subseed_strength",
                format!("{} is outside 0..=1", self.subseed_strength),
            );
        }
        if let Some(eta) = self.eta {
            finite("eta", eta)?;
            if eta < 0.0 {
                return invalid("eta", format!("{eta} is negative"));
            }
        }
        if let Some(resize) = self.seed_resize_from {
            limits.check_generation_pixels(
                "seed resize width × height",
                resize.width,
                resize.height,
            )?;
        }
        let last = (self.batch_size as i64).saturating_sub(1);
        for (name, seed) in [("seed", self.seed), ("subseed", self.subseed)] {
            if seed >= 0 && seed.checked_add(last).is_none() {
                return invalid(
                    name,
                    format!(
                        "{seed} + {last} (the batch's last image) is over the largest seed, {}",
                        i64::MAX
                    ),
                );
            }
        }
        if let Some(hires) = &self.hires {
            self.validate_hires(hires, limits)?;
        }
        Ok(())
    }

    /// The hires fix: a finite scale above 0, a denoising strength in (0, 1], a target
    /// (after cropping) of at least 8 × 8 under the pixel limit, steps under the cap, prompts
    /// under the length cap, a finite CFG scale, known sampler and schedule names.
    fn validate_hires(&self, hires: &super::hires::HiresFix, limits: &Limits) -> Result<()> {
        finite("hr_scale", f64::from(hires.hr_scale))?;
        if hires.hr_scale <= 0.0 {
            return invalid("hr_scale", format!("{} is not above 0", hires.hr_scale));
        }
        finite("denoising_strength", f64::from(hires.denoising_strength))?;
        if !(hires.denoising_strength > 0.0 && hires.denoising_strength <= 1.0) {
            return invalid(
                "denoising_strength",
                format!(
                    "{} is outside (0, 1] (the second pass needs a strength above 0)",
                    hires.denoising_strength
                ),
            );
        }
        let target = hires.target(self.width, self.height);
        let (w, h) = target.output_size();
        if w < 8 || h < 8 {
            return invalid(
                "hr_scale",
                format!("the hires size {w}×{h} is smaller than 8×8"),
            );
        }
        limits.check_generation_pixels("hires width × height", target.size.0, target.size.1)?;
        limits.check_steps(hires.steps(self.steps) as u64)?;
        // The second pass runs its steps over a schedule `steps / strength` long: that is
        // what the step cap must bound (a strength of 1e-30 would ask for 2^64 sigmas).
        let (schedule_steps, _) =
            super::sample::img2img_steps(hires.steps(self.steps), hires.denoising_strength, true)?;
        limits.check_steps(schedule_steps as u64)?;
        // A1111 activates the hires prompt's own extra networks for the second pass; here the
        // networks are applied to the model once, for both passes.
        if !hires.hr_prompt.is_empty() {
            let (_, first) = sd_prompt::parse_extra_networks(&self.prompt);
            let (_, second) = sd_prompt::parse_extra_networks(&hires.hr_prompt);
            if first != second {
                return invalid(
                    "hr_prompt",
                    "its <lora:…>/<hypernet:…> tags differ from the prompt's; other networks for \
                     the second pass are not supported"
                        .into(),
                );
            }
        }
        limits.check_prompt(&hires.hr_prompt)?;
        limits.check_prompt(&hires.hr_negative_prompt)?;
        if let Some(cfg) = hires.hr_cfg_scale {
            finite("hr_cfg_scale", f64::from(cfg))?;
        }
        let sampler = hires.hr_sampler.as_deref().unwrap_or(&self.sampler);
        let schedule = hires
            .hr_scheduler
            .as_deref()
            .or(self.sigma_schedule.as_deref());
        sd_schedulers::SamplerSpec::parse(sampler, schedule)?;
        Ok(())
    }

    /// [`validate_with`](Self::validate_with), then what needs the model: CLIP skip within
    /// the text encoder's layers.
    pub(crate) fn validate_for(&self, model: &StableDiffusion) -> Result<()> {
        self.validate()?;
        let layers = model.text_encoder.num_layers();
        if self.clip_skip == 0 || self.clip_skip > layers {
            return invalid(
                "clip_skip",
                format!(
                    "{} is outside 1..={layers} (the text encoder's layers)",
                    self.clip_skip
                ),
            );
        }
        Ok(())
    }
}

impl Img2ImgInput {
    /// Checks the img2img settings under the default [`Limits`]: a finite denoising strength
    /// in 0..=1 and a mask blur of at most [`Limits::max_mask_blur`].
    ///
    /// # Errors
    /// [`CoreError::InvalidRequest`] or [`CoreError::Limit`].
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&Limits::default())
    }

    /// [`validate`](Self::validate) under `limits`.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn validate_with(&self, limits: &Limits) -> Result<()> {
        finite("denoising_strength", f64::from(self.denoising_strength))?;
        if !(0.0..=1.0).contains(&self.denoising_strength) {
            return invalid(
                "denoising_strength",
                format!("{} is outside 0..=1", self.denoising_strength),
            );
        }
        limits.check_mask_blur(self.mask_blur)?;
        Ok(())
    }
}
