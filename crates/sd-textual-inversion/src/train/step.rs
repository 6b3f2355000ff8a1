//! The differentiable core of a training step: prompt → conditioning with the embedding's
//! vectors spliced in → noised latents → UNet → loss, and the loss's gradient with respect to
//! those vectors only.
//!
//! This is ldm's `LatentDiffusion.forward` / `p_losses` as A1111's `train_embedding` calls
//! it: `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε`, target ε (or `v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀` for
//! v-prediction models), mean squared error over every element (times a per-pixel weight
//! when PNG alpha weights the loss).

use burn::tensor::{Int, Tensor, TensorData};
use sd_core::StableDiffusion;
use sd_core::checkpoint::ModelFamily;
use sd_core::conditioning::{EmbeddingId, EmbeddingLookup, ModelFlavour, PromptEncoder};
use sd_core::sd_schedulers::Prediction;

use crate::dataset::learn_rate_schedule::ClipGradMode;
use crate::error::{Result, TrainError};

/// One batch of a training step.
#[derive(Debug, Clone)]
pub struct StepBatch {
    /// The prompt of each item (templates already filled: `a photo of realbenny-t1`).
    pub texts: Vec<String>,
    /// Clean latents, UNet scale: `[batch, 4, h, w]`.
    pub latents: Tensor<4>,
    /// The noise to add: `[batch, 4, h, w]`.
    pub noise: Tensor<4>,
    /// The training timestep of each item (0..1000).
    pub timesteps: Vec<usize>,
    /// Per-pixel loss weights (PNG alpha), broadcastable to the latents: `[batch, 1, h, w]`.
    pub weight: Option<Tensor<4>>,
}

/// What a step computed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// The loss (before any division for gradient accumulation).
    pub loss: f32,
    /// ∂loss/∂vectors, row-major `[n, dim]`.
    pub grad: Vec<f32>,
}

/// The loss and its gradient for the embedding `id` of `lookup` with values `vectors`
/// (`[n, dim]`, row-major). `model` must live on an autodiff device with its weights frozen
/// ([`freeze`]); `clip_skip` as A1111's setting.
///
/// # Errors
/// Prompt encoding or UNet shape errors; [`TrainError::NoGradient`] when the prompts never
/// name the embedding (nothing to learn from).
pub fn loss_and_grad(
    model: &StableDiffusion,
    lookup: &EmbeddingLookup,
    id: EmbeddingId,
    vectors: &[f32],
    clip_skip: usize,
    batch: &StepBatch,
) -> Result<StepResult> {
    loss_and_grad_scaled(model, lookup, id, vectors, clip_skip, batch, 1.0)
}

/// [`loss_and_grad`] with the backward pass run on `loss × loss_scale` and the gradient
/// divided by `loss_scale` again in f32 (PyTorch's `GradScaler.scale(loss).backward()` and
/// `unscale_`): for networks computing in f16, where unscaled gradients underflow. With a
/// power of two the division is exact, so a finite result equals [`loss_and_grad`]'s up to
/// the rounding the scale spared. The returned loss is unscaled. A gradient that overflowed
/// holds infinities or NaN: try again with a smaller scale.
///
/// # Errors
/// As [`loss_and_grad`].
pub fn loss_and_grad_scaled(
    model: &StableDiffusion,
    lookup: &EmbeddingLookup,
    id: EmbeddingId,
    vectors: &[f32],
    clip_skip: usize,
    batch: &StepBatch,
    loss_scale: f32,
) -> Result<StepResult> {
    let param = vectors_tensor(model, lookup, id, vectors)?.require_grad();
    let loss = loss_tensor(model, lookup, id, param.clone(), clip_skip, batch)?;
    // No prompt of the batch holds the embedding: the loss does not depend on `param`, and
    // burn's backward panics on an untracked tensor.
    if !loss.is_tracked() {
        return Err(TrainError::NoGradient);
    }
    let grads = if loss_scale == 1.0 {
        loss.backward()
    } else {
        loss.clone().mul_scalar(loss_scale).backward()
    };
    let loss_value: f32 = loss.into_scalar();
    let mut grad = param
        .grad(&grads)
        .ok_or(TrainError::NoGradient)?
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|source| TrainError::ReadBack {
            what: "the gradient",
            source,
        })?;
    if loss_scale != 1.0 {
        grad.iter_mut().for_each(|g| *g /= loss_scale);
    }
    Ok(StepResult {
        loss: loss_value,
        grad,
    })
}

/// The loss of [`loss_and_grad`] alone: no gradient, no graph kept (the validation loss).
///
/// # Errors
/// As [`loss_and_grad`], but a batch whose prompts do not name the embedding has a loss too.
pub fn denoising_loss(
    model: &StableDiffusion,
    lookup: &EmbeddingLookup,
    id: EmbeddingId,
    vectors: &[f32],
    clip_skip: usize,
    batch: &StepBatch,
) -> Result<f32> {
    let param = vectors_tensor(model, lookup, id, vectors)?;
    Ok(loss_tensor(model, lookup, id, param, clip_skip, batch)?.into_scalar())
}

/// The embedding's `[n, dim]` values as a tensor on the model's device.
fn vectors_tensor(
    model: &StableDiffusion,
    lookup: &EmbeddingLookup,
    id: EmbeddingId,
    vectors: &[f32],
) -> Result<Tensor<2>> {
    let (n, dim) = match lookup.get(id) {
        Some(e) => (e.n, e.dim),
        None => return Err(TrainError::NoGradient),
    };
    Ok(Tensor::<2>::from_data(
        TensorData::new(vectors.to_vec(), [n, dim]),
        model.device(),
    ))
}

/// ldm's `p_losses` with the embedding `id` taking the values of `param`: the prompts
/// encoded, then [`unet_loss`].
fn loss_tensor(
    model: &StableDiffusion,
    lookup: &EmbeddingLookup,
    id: EmbeddingId,
    param: Tensor<2>,
    clip_skip: usize,
    batch: &StepBatch,
) -> Result<Tensor<1>> {
    let device = model.device();
    let encoder = PromptEncoder::new(
        &model.tokenizer,
        &model.text_encoder,
        lookup,
        flavour(model),
    )
    .with_clip_skip(clip_skip);
    let texts: Vec<&str> = batch.texts.iter().map(String::as_str).collect();
    let cond = encoder.encode_batch_with(&texts, &mut |other| {
        if other == id {
            Ok(param.clone())
        } else {
            // Other embeddings named in the prompt are constants.
            let e = lookup.get(other).ok_or(
                sd_core::conditioning::ConditioningError::UnknownEmbedding { id: other.0 },
            )?;
            Ok(Tensor::from_data(
                TensorData::new(e.vectors.clone(), [e.n, e.dim]),
                device,
            ))
        }
    })?;
    unet_loss(model, cond, batch)
}

/// The prompts of `batch` encoded by `model`'s frozen text encoder with `lookup`'s
/// embeddings, as constants (the conditioning of a hypernetwork's training step). With
/// `per_text`, each prompt is encoded alone and the shorter ones padded with copies of their
/// last vector (A1111's `stack_conds` of the conditionings its dataset computed one by one);
/// otherwise together (its `cond_stage_model(batch.cond_text)` when tags are shuffled or
/// dropped).
pub(crate) fn constant_conditioning(
    model: &StableDiffusion,
    lookup: &EmbeddingLookup,
    clip_skip: usize,
    batch: &StepBatch,
    per_text: bool,
) -> Result<Tensor<3>> {
    let encoder = PromptEncoder::new(
        &model.tokenizer,
        &model.text_encoder,
        lookup,
        flavour(model),
    )
    .with_clip_skip(clip_skip);
    let texts: Vec<&str> = batch.texts.iter().map(String::as_str).collect();
    if !per_text || texts.len() == 1 {
        return Ok(encoder.encode_batch(&texts)?);
    }
    let conds = texts
        .iter()
        .map(|text| encoder.encode(text))
        .collect::<std::result::Result<Vec<Tensor<3>>, _>>()?;
    let longest = conds.iter().map(|c| c.dims()[1]).max().unwrap_or(0);
    let padded = conds
        .into_iter()
        .map(|c| {
            let [_, n, d] = c.dims();
            if n == longest {
                return c;
            }
            let last = c.clone().slice([0..1, n - 1..n, 0..d]);
            Tensor::cat(vec![c, last.repeat_dim(1, longest - n)], 1)
        })
        .collect();
    Ok(Tensor::cat(padded, 0))
}

/// The model family's conditioning flavour.
fn flavour(model: &StableDiffusion) -> ModelFlavour {
    match model.family() {
        ModelFamily::Sd2 => ModelFlavour::Sd2,
        _ => ModelFlavour::Sd1,
    }
}

/// ldm's `p_losses` given the conditioning: the latents noised to their timesteps, `model`'s
/// UNet prediction against the noise (or v), squared, weighted, averaged.
pub(crate) fn unet_loss(
    model: &StableDiffusion,
    cond: Tensor<3>,
    batch: &StepBatch,
) -> Result<Tensor<1>> {
    let device = model.device();
    let [b, c, h, w] = batch.latents.dims();
    let (sqrt_ac, sqrt_one_minus_ac) = schedule_coefficients(model, &batch.timesteps, device)?;
    let a = sqrt_ac.reshape([b, 1, 1, 1]);
    let s = sqrt_one_minus_ac.reshape([b, 1, 1, 1]);
    let x0 = batch.latents.clone();
    let noise = batch.noise.clone();
    let x_noisy = x0.clone() * a.clone() + noise.clone() * s.clone();
    let timesteps = Tensor::<1, Int>::from_data(
        TensorData::new(
            batch
                .timesteps
                .iter()
                .map(|&t| t as i64)
                .collect::<Vec<_>>(),
            [b],
        ),
        device,
    )
    .float();
    let pred = model.unet.forward(x_noisy, timesteps, cond)?;
    let target = match model.architecture().prediction {
        Prediction::V => noise * a - x0 * s,
        _ => noise,
    };
    let sq = (pred - target).powi_scalar(2);
    let sq = match &batch.weight {
        Some(weight) => sq * weight.clone().expand([b, c, h, w]),
        None => sq,
    };
    Ok(sq.mean())
}

/// ldm's `sqrt_alphas_cumprod` and `sqrt_one_minus_alphas_cumprod` at `timesteps` (computed in
/// f64, stored as f32, as `register_schedule` does).
fn schedule_coefficients(
    model: &StableDiffusion,
    timesteps: &[usize],
    device: &burn::tensor::Device,
) -> Result<(Tensor<1>, Tensor<1>)> {
    let ac = model.noise_schedule().alphas_cumprod_f64();
    let mut a = Vec::with_capacity(timesteps.len());
    let mut s = Vec::with_capacity(timesteps.len());
    for &t in timesteps {
        let v = *ac.get(t).ok_or(TrainError::Timestep {
            timestep: t,
            max: ac.len(),
        })?;
        a.push(v.sqrt() as f32);
        s.push((1.0 - v).sqrt() as f32);
    }
    let n = timesteps.len();
    Ok((
        Tensor::from_data(TensorData::new(a, [n]), device),
        Tensor::from_data(TensorData::new(s, [n]), device),
    ))
}

/// The model with every network's weights excluded from gradients, so a backward pass keeps
/// no gradient (and builds no graph) for them: only the embedding vectors learn.
pub fn freeze(mut model: StableDiffusion) -> StableDiffusion {
    use burn::module::Module;
    model.text_encoder = model.text_encoder.no_grad();
    model.unet = model.unet.no_grad();
    model.vae = model.vae.no_grad();
    model
}

/// `clip_grad_value_` / `clip_grad_norm_` on the flat gradient.
pub(crate) fn clip_gradient(grad: &mut [f32], mode: ClipGradMode, limit: f64) {
    // The schedules are checked to be finite and non-negative; `max` also keeps a NaN from
    // reaching `clamp`, which panics on it.
    let limit = (limit as f32).max(0.0);
    match mode {
        ClipGradMode::Value => grad.iter_mut().for_each(|g| *g = g.clamp(-limit, limit)),
        ClipGradMode::Norm => {
            let norm = grad.iter().map(|g| g * g).sum::<f32>().sqrt();
            // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
            let coef = (limit / (norm + 1e-6)).min(1.0);
            grad.iter_mut().for_each(|g| *g *= coef);
        }
    }
}
