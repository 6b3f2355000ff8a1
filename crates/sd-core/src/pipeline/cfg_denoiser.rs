//! Classifier-free guidance around the UNet, as A1111's `CFGDenoiser` does it, presented to
//! the samplers as a [`Denoiser`] of `(x, σ)`.

use burn::tensor::Tensor;
use sd_schedulers::{Denoiser, NoiseSchedule, Prediction, Scalings};
use sd_unet::UNet2DConditionModel;

use crate::conditioning::StepConds;
use crate::error::{CoreError, Result};

/// The conditioning of one model evaluation: the positive prompts' parts and the negative
/// prompt, as A1111's `CFGDenoiser.forward` reconstructs them.
#[derive(Debug, Clone)]
pub struct GuidanceConds {
    /// Every positive part's encoding and, per image, its rows and AND weights.
    pub conds: StepConds,
    /// The negative prompt's encoding for each image: `[batch, tokens', dim]`.
    pub uncond: Tensor<3>,
}

/// Where per-step conditioning comes from: called with A1111's step counter (model
/// evaluations so far, which is why second-order samplers schedule prompts over twice the
/// steps).
pub type CondProvider<'a> = dyn FnMut(usize) -> Result<GuidanceConds> + 'a;

/// For img2img with a mask on a regular (4-channel) model: keep the original latent where the
/// mask is 0, after every denoising, as A1111 does (`mask_before_denoising` off).
#[derive(Debug, Clone)]
pub struct LatentMask {
    /// The encoded original image: `[batch, 4, h, w]`.
    pub init_latent: Tensor<4>,
    /// 1 where the original is kept: `[batch, 1, h, w]` (A1111's `mask`).
    pub keep: Tensor<4>,
}

/// `D(x, σ)` of a guided UNet.
pub struct CfgDenoiser<'a> {
    unet: &'a UNet2DConditionModel,
    schedule: &'a NoiseSchedule,
    prediction: Prediction,
    conds: &'a mut CondProvider<'a>,
    cfg_scale: f32,
    /// Extra input channels of inpainting models: `[batch, 5, h, w]` (mask, masked image).
    image_cond: Option<Tensor<4>>,
    mask: Option<LatentMask>,
    mask_before_denoising: bool,
    step: usize,
}

impl<'a> CfgDenoiser<'a> {
    /// A denoiser guiding `unet` with `cfg_scale`.
    pub fn new(
        unet: &'a UNet2DConditionModel,
        schedule: &'a NoiseSchedule,
        prediction: Prediction,
        conds: &'a mut CondProvider<'a>,
        cfg_scale: f32,
    ) -> Self {
        Self {
            unet,
            schedule,
            prediction,
            conds,
            cfg_scale,
            image_cond: None,
            mask: None,
            mask_before_denoising: false,
            step: 0,
        }
    }

    /// Adds the extra channels of a 9-channel inpainting UNet.
    pub fn with_image_cond(mut self, image_cond: Tensor<4>) -> Self {
        self.image_cond = Some(image_cond);
        self
    }

    /// Keeps the original latent outside the mask. `before_denoising` blends the model's
    /// input instead of its output, as A1111 does for its timestep samplers (DDIM, PLMS).
    pub fn with_mask(mut self, mask: LatentMask, before_denoising: bool) -> Self {
        self.mask = Some(mask);
        self.mask_before_denoising = before_denoising;
        self
    }

    /// A1111's `CFGDenoiser.forward` for one model evaluation, step by step: the step's
    /// conditioning, the mask blended into the input, one UNet pass over every positive part
    /// and the negative prompt, their guided combination, the mask blended into the output.
    fn guided(&mut self, x: Tensor<4>, sigma: f32) -> Result<Tensor<4>> {
        let GuidanceConds { conds, uncond } = (self.conds)(self.step)?;
        let blended = self.blend_input(x.clone(), sigma);
        let rows = cond_rows(&conds, blended.dims()[0])?;
        let out = self.denoise_cond_uncond(&blended, &conds, &uncond, &rows, sigma)?;
        let denoised = self.combine(&out, &conds, rows.len(), blended.dims()[0]);
        debug_assert_eq!(denoised.dims(), blended.dims());
        Ok(self.blend_output(x, blended, denoised))
    }

    /// With "mask before denoising" (the timestep samplers), the kept original replaces the
    /// input outside the mask. The timestep samplers' latent is in the variance-preserving
    /// scale; this denoiser sees it multiplied by √(1 + σ²), and so must the clean latent.
    fn blend_input(&self, x: Tensor<4>, sigma: f32) -> Tensor<4> {
        match (&self.mask, self.mask_before_denoising) {
            (Some(mask), true) => {
                let keep = mask.keep.clone();
                let nmask = keep.clone().neg().add_scalar(1.0);
                let scale = (1.0 + sigma * sigma).sqrt();
                mask.init_latent.clone().mul_scalar(scale) * keep + x * nmask
            }
            _ => x,
        }
    }

    /// The UNet's denoised estimate for every positive part (`rows` of `x`) followed by the
    /// whole batch under the negative prompt: `[rows + batch, c, h, w]`.
    fn denoise_cond_uncond(
        &self,
        x: &Tensor<4>,
        conds: &StepConds,
        uncond: &Tensor<3>,
        rows: &[usize],
        sigma: f32,
    ) -> Result<Tensor<4>> {
        let [batch, ..] = x.dims();
        let cond_x = select_rows(x, rows);
        let scalings = match self.prediction {
            Prediction::Epsilon => Scalings::epsilon(sigma),
            Prediction::V => Scalings::v(sigma),
            _ => Scalings::epsilon(sigma),
        };
        let t = self.schedule.sigma_to_t(sigma);
        let [_, cond_tokens, _] = conds.tensor.dims();
        let [_, uncond_tokens, _] = uncond.dims();
        if cond_tokens == uncond_tokens {
            let all_rows: Vec<usize> = rows.iter().copied().chain(0..batch).collect();
            let x_in = Tensor::cat(vec![cond_x, x.clone()], 0);
            let context = Tensor::cat(vec![conds.tensor.clone(), uncond.clone()], 0);
            let image_cond = self.image_cond.as_ref().map(|c| select_rows(c, &all_rows));
            self.denoise_batch(x_in, context, image_cond, t, scalings)
        } else {
            // A1111 (without "pad prompt/negative prompt to same length") runs the two
            // halves separately when their chunk counts differ.
            let image_cond_rows = self.image_cond.as_ref().map(|c| select_rows(c, rows));
            let cond_out =
                self.denoise_batch(cond_x, conds.tensor.clone(), image_cond_rows, t, scalings)?;
            let uncond_out = self.denoise_batch(
                x.clone(),
                uncond.clone(),
                self.image_cond.clone(),
                t,
                scalings,
            )?;
            Ok(Tensor::cat(vec![cond_out, uncond_out], 0))
        }
    }

    /// Classifier-free guidance (A1111's `combine_denoised`): per image, the negative
    /// prompt's estimate plus each AND part's difference from it, times its weight and the
    /// CFG scale. `out` holds the `n_cond` positive rows, then the `batch` negative ones.
    fn combine(
        &self,
        out: &Tensor<4>,
        conds: &StepConds,
        n_cond: usize,
        batch: usize,
    ) -> Tensor<4> {
        let uncond = out.clone().narrow(0, n_cond, batch);
        let mut images = Vec::with_capacity(batch);
        for (image, list) in conds.conds_list.iter().enumerate() {
            let base = uncond.clone().narrow(0, image, 1);
            let mut denoised = base.clone();
            for &(cond_index, weight) in list {
                let cond = out.clone().narrow(0, cond_index, 1);
                denoised =
                    denoised + (cond - base.clone()).mul_scalar(weight as f32 * self.cfg_scale);
            }
            images.push(denoised);
        }
        Tensor::cat(images, 0)
    }

    /// The mask applied to the result: the kept original outside it (k-diffusion samplers),
    /// or — when the input was blended — the estimate shifted back to the sampler's own `x`.
    fn blend_output(&self, x: Tensor<4>, blended: Tensor<4>, denoised: Tensor<4>) -> Tensor<4> {
        match &self.mask {
            Some(mask) if !self.mask_before_denoising => {
                let keep = mask.keep.clone();
                let nmask = keep.clone().neg().add_scalar(1.0);
                denoised * nmask + mask.init_latent.clone() * keep
            }
            // A1111's timestep samplers take ε of the blended input but step from their own,
            // unblended x (`pred_x0 = (x − √(1−ᾱ)·ε) / √ᾱ`). The sampler recovers ε as
            // (x − D) / σ from the x it passed in, so hand it D shifted by the blend:
            // x − (x_blended − D_blended).
            Some(_) => x - (blended - denoised),
            None => denoised,
        }
    }

    /// k-diffusion's discrete denoiser on a batch: `c_skip·x + c_out·F(c_in·x, t)`.
    fn denoise_batch(
        &self,
        x: Tensor<4>,
        context: Tensor<3>,
        image_cond: Option<Tensor<4>>,
        t: f32,
        s: Scalings,
    ) -> Result<Tensor<4>> {
        let [batch, ..] = x.dims();
        let scaled = x.clone().mul_scalar(s.c_in);
        let input = match image_cond {
            Some(c) => Tensor::cat(vec![scaled, c], 1),
            None => scaled,
        };
        let timesteps = Tensor::<1>::full([batch], t, &x.device());
        let out = self
            .unet
            .forward(input, timesteps, context)
            .map_err(CoreError::UNetForward)?;
        Ok(match self.prediction {
            // k-diffusion's ε denoiser: input + eps·c_out (c_skip is 1).
            Prediction::Epsilon => x + out.mul_scalar(s.c_out),
            _ => x.mul_scalar(s.c_skip) + out.mul_scalar(s.c_out),
        })
    }
}

impl Denoiser for CfgDenoiser<'_> {
    type Error = CoreError;

    /// One guided evaluation; an error (conditioning, UNet) stops the sampler at once.
    fn denoise(&mut self, x: Tensor<4>, sigma: f32) -> Result<Tensor<4>> {
        let denoised = self.guided(x, sigma)?;
        self.step += 1;
        Ok(denoised)
    }
}

/// The row of each positive part: A1111 puts each image once per AND subprompt, then the
/// whole batch again for the negative prompt.
fn cond_rows(conds: &StepConds, batch: usize) -> Result<Vec<usize>> {
    if conds.conds_list.len() != batch {
        return Err(CoreError::InvalidRequest {
            name: "conditioning",
            reason: format!("{} prompts for {batch} images", conds.conds_list.len()),
        });
    }
    let mut rows: Vec<usize> = Vec::new();
    for (image, list) in conds.conds_list.iter().enumerate() {
        rows.extend(std::iter::repeat_n(image, list.len()));
    }
    Ok(rows)
}

/// The images `rows` of `t`, in that order (repeats allowed).
fn select_rows(t: &Tensor<4>, rows: &[usize]) -> Tensor<4> {
    Tensor::cat(
        rows.iter()
            .map(|&r| t.clone().narrow(0, r, 1))
            .collect::<Vec<_>>(),
        0,
    )
}
