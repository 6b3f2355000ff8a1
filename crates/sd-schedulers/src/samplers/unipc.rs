//! UniPC (Zhao et al. 2023, a unified predictor–corrector solver) as A1111 1.10 runs it:
//! `unipc` in `modules/sd_samplers_timesteps_impl.py` over `UniPC` of
//! `modules/models/diffusion/uni_pc/uni_pc.py`, with `NoiseScheduleVP('discrete')`, data
//! prediction, no thresholding, `method="multistep"`, and the four "UniPC" settings of
//! A1111's Sampler parameters ([`UniPcOptions`]).
//!
//! What A1111 does, kept here:
//! - the number of UniPC steps is the length of A1111's timestep list (`len(timesteps)`):
//!   "30 steps" are 31 UniPC steps (stride 1000 // 30 = 33 gives 31 timesteps), and only the
//!   list's length matters in txt2img: UniPC makes its own time grid from t = 1 down to 1/N;
//! - UniPC refuses fewer steps than its order (`assert steps >= order`): with the default
//!   order 3, 1 and 2 steps are an error ([`crate::SchedulerError::InvalidParameter`]);
//! - img2img (`is_img2img`) starts at t = `timesteps[-1] / 1000 + 1 / 1000` (A1111's own
//!   comment: "likely off by a bit"), not at the level the init latent was noised to;
//! - the model is evaluated at fractional timesteps (`(t − 1/N)·1000`);
//! - the last step runs no corrector and evaluates no model: A1111's callback then gets
//!   `denoised=None`; our [`StepInfo::denoised`](super::StepInfo) repeats the latest estimate.

mod coefficients;
mod update;
mod vp;

use std::fmt;
use std::str::FromStr;

use burn::tensor::Tensor;

use super::{Ctx, Stop};
use crate::error::{Result, SchedulerError};
use crate::noise_schedule::NoiseSchedule;
use vp::VpNoiseSchedule;

/// A1111's "UniPC variant" (`uni_pc_variant`): how the corrector weighs its terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Variant {
    /// "bh1": B(h) = h (A1111's default; the UniPC paper's choice for few steps).
    #[default]
    Bh1,
    /// "bh2": B(h) = e^h − 1.
    Bh2,
    /// "vary_coeff": the paper's varying-coefficient form (inverted Taylor matrices).
    VaryCoeff,
}

impl Variant {
    /// Every variant, in A1111's order.
    pub const ALL: [Variant; 3] = [Self::Bh1, Self::Bh2, Self::VaryCoeff];

    /// A1111's string ("bh1", "bh2", "vary_coeff"), as in the setting and infotext.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bh1 => "bh1",
            Self::Bh2 => "bh2",
            Self::VaryCoeff => "vary_coeff",
        }
    }
}

/// A1111's "UniPC skip type" (`uni_pc_skip_type`): how the time grid is spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SkipType {
    /// "time_uniform": evenly spaced in t (A1111's default).
    #[default]
    TimeUniform,
    /// "time_quadratic": evenly spaced in √t.
    TimeQuadratic,
    /// "logSNR": evenly spaced in half log-SNR λ.
    LogSnr,
}

impl SkipType {
    /// Every skip type, in A1111's order.
    pub const ALL: [SkipType; 3] = [Self::TimeUniform, Self::TimeQuadratic, Self::LogSnr];

    /// A1111's string ("time_uniform", "time_quadratic", "logSNR").
    pub fn name(self) -> &'static str {
        match self {
            Self::TimeUniform => "time_uniform",
            Self::TimeQuadratic => "time_quadratic",
            Self::LogSnr => "logSNR",
        }
    }
}

macro_rules! a1111_strings {
    ($ty:ty, $what:literal, $choices:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $ty {
            type Err = SchedulerError;

            /// A1111's string, in any case.
            fn from_str(s: &str) -> Result<Self> {
                let t = s.trim();
                Self::ALL
                    .into_iter()
                    .find(|v| v.name().eq_ignore_ascii_case(t))
                    .ok_or(SchedulerError::InvalidParameter {
                        name: $what,
                        value: f64::NAN,
                        reason: $choices,
                    })
            }
        }
    };
}
a1111_strings!(
    Variant,
    "UniPC variant",
    "not one of A1111's \"bh1\", \"bh2\", \"vary_coeff\""
);
a1111_strings!(
    SkipType,
    "UniPC skip type",
    "not one of A1111's \"time_uniform\", \"time_quadratic\", \"logSNR\""
);

/// A1111's UniPC settings (Settings → Sampler parameters; infotext "UniPC variant",
/// "UniPC skip type", "UniPC order", "UniPC lower order final"). `Default` is A1111's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UniPcOptions {
    /// `uni_pc_variant` ("bh1").
    pub variant: Variant,
    /// `uni_pc_skip_type` ("time_uniform").
    pub skip_type: SkipType,
    /// `uni_pc_order` (3; A1111's slider allows 1 to 50). At most the number of steps.
    pub order: usize,
    /// `uni_pc_lower_order_final` (true): the last steps drop to the order the remaining
    /// steps allow.
    pub lower_order_final: bool,
}

impl Default for UniPcOptions {
    fn default() -> Self {
        Self {
            variant: Variant::Bh1,
            skip_type: SkipType::TimeUniform,
            order: 3,
            lower_order_final: true,
        }
    }
}

impl UniPcOptions {
    /// Refuses what uni_pc.py refuses: order 0, and an order above the number of steps
    /// (`assert steps >= order, "UniPC order must be < sampling steps"`).
    pub fn check(&self, steps: usize) -> Result<()> {
        if self.order == 0 {
            return Err(SchedulerError::InvalidParameter {
                name: "UniPC order",
                value: 0.0,
                reason: "must be at least 1",
            });
        }
        if steps < self.order {
            return Err(SchedulerError::InvalidParameter {
                name: "UniPC order",
                value: self.order as f64,
                reason: "must not exceed the number of UniPC steps (the length of the \
                         timestep list; A1111 asserts \"UniPC order must be < sampling steps\")",
            });
        }
        Ok(())
    }
}

/// The model as UniPC calls it: the denoiser seen as a data predictor in the
/// variance-preserving scale, at continuous time t.
pub(crate) struct Model<'c, 'a, E> {
    ctx: &'c mut Ctx<'a, E>,
    ns: &'c NoiseSchedule,
    vp: &'c VpNoiseSchedule,
}

impl<E> Model<'_, '_, E> {
    /// `data_prediction_fn(x, t)`: ε at the model timestep `(t − 1/N)·1000`, then
    /// x₀ = (x − σ_t·ε) / α_t with UniPC's own α_t, σ_t.
    ///
    /// ε comes from the denoiser at σ = `t_to_sigma(timestep)` with x raised to that σ's
    /// variance-exploding scale, as in DDIM; a [`crate::DiscreteDenoiser`] hands the network
    /// `x` at that (fractional) timestep, as A1111's `apply_model` gets it.
    pub(crate) fn data_prediction(&mut self, x: &Tensor<4>, t: f32) -> Result<Tensor<4>, Stop<E>> {
        let sigma = self.ns.t_to_sigma(self.vp.model_input_time(t));
        let x_ve = x.clone().mul_scalar((1.0 + sigma * sigma).sqrt());
        let denoised = self.ctx.denoise(&x_ve, sigma)?;
        let eps = (x_ve - denoised).div_scalar(sigma);
        Ok((x.clone() - eps.mul_scalar(self.vp.std(t))).div_scalar(self.vp.alpha(t)))
    }
}

/// The continuous times UniPC visits for A1111 timesteps `timesteps`: `len + 1` values from
/// t = 1 (txt2img) or `timesteps[-1] / 1000 + 1 / 1000` (img2img) down to 1/N.
pub fn time_steps(
    ns: &NoiseSchedule,
    timesteps: &[usize],
    opts: &UniPcOptions,
    img2img: bool,
) -> Vec<f32> {
    let vp = VpNoiseSchedule::new(ns);
    vp.time_steps(opts.skip_type, t_start(timesteps, img2img), timesteps.len())
}

/// `t_T`: 1, or for img2img `timesteps[-1] / 1000 + 1 / 1000` in float32 tensor arithmetic.
fn t_start(timesteps: &[usize], img2img: bool) -> f32 {
    match (img2img, timesteps.last()) {
        (true, Some(&last)) => last as f32 / 1000.0 + 0.001,
        _ => 1.0,
    }
}

/// "UniPC": `timesteps` is A1111's list (of which only the length and, for img2img, the last
/// entry matter). The caller has run [`UniPcOptions::check`].
pub(crate) fn sample_unipc<E>(
    ctx: &mut Ctx<'_, E>,
    ns: &NoiseSchedule,
    mut x: Tensor<4>,
    timesteps: &[usize],
    opts: &UniPcOptions,
    img2img: bool,
) -> Result<Tensor<4>, Stop<E>> {
    let steps = timesteps.len();
    let order = opts.order;
    let vp = VpNoiseSchedule::new(ns);
    let ts = vp.time_steps(opts.skip_type, t_start(timesteps, img2img), steps);
    let mut model = Model { ctx, ns, vp: &vp };
    let mut model_prev = vec![model.data_prediction(&x, ts[0])?];
    let mut t_prev = vec![ts[0]];
    let mut index = 0;
    // The first `order − 1` steps warm up with increasing order, always corrected.
    for (init_order, &t) in ts.iter().enumerate().take(order).skip(1) {
        let s = update::step(
            &mut model,
            &vp,
            opts.variant,
            &x,
            &model_prev,
            &t_prev,
            t,
            init_order,
            true,
        )?;
        x = s.x;
        let model_x = match s.model_t {
            Some(m) => m,
            None => model.data_prediction(&x, t)?,
        };
        model.ctx.report(index, 0.0, 0.0, &x, &model_x)?;
        index += 1;
        model_prev.push(model_x);
        t_prev.push(t);
    }
    for (step, &t) in ts.iter().enumerate().skip(order) {
        let step_order = if opts.lower_order_final {
            order.min(steps + 1 - step)
        } else {
            order
        };
        let use_corrector = step != steps;
        let s = update::step(
            &mut model,
            &vp,
            opts.variant,
            &x,
            &model_prev,
            &t_prev,
            t,
            step_order,
            use_corrector,
        )?;
        x = s.x;
        // The last step evaluates no model; report the newest estimate there.
        let shown = s
            .model_t
            .clone()
            .unwrap_or_else(|| model_prev[model_prev.len() - 1].clone());
        model.ctx.report(index, 0.0, 0.0, &x, &shown)?;
        index += 1;
        // Slide the window of stored points by one (after the last step nothing is used).
        if step < steps {
            let model_x = match s.model_t {
                Some(m) => m,
                None => model.data_prediction(&x, t)?,
            };
            t_prev.remove(0);
            t_prev.push(t);
            model_prev.remove(0);
            model_prev.push(model_x);
        }
    }
    Ok(x)
}
