//! Multi-head attention, the GEGLU feed-forward and the transformer block that combines them:
//! diffusers' `Attention` (`diffusers/models/attention_processor.py`), `FeedForward`/`GEGLU`
//! (`attention.py`, `activations.py`) and `BasicTransformerBlock` (`attention.py`).
//!
//! # Memory at 64×64 latents
//! The first level's self-attention has 4096 queries and 4096 keys: one head's score matrix
//! is 64 MiB in f32, and all of SD 1.5's 8 heads for a batch of 2 (classifier-free guidance)
//! would be 1 GiB, several times over while softmax runs. So:
//! - on burn's CPU backend (`flex`), f32 attention runs through this crate's own flash-style
//!   kernel (`cpu::attention`): each task takes 64 queries of one head through the keys 256
//!   at a time with an online softmax, so at most one `[64, 256]` block of scores exists per
//!   thread; it is about 1.7× faster than burn's fused op at SD 1.5's 4096-token heads;
//! - other dtypes on `flex` go to burn's fused [`attention`] op, which also streams keys in
//!   tiles with an online softmax once a head's matrix exceeds 1 MiB, and parallelises over
//!   (batch, head), so the UNet hands it every head at once;
//! - other backends may pick an implementation that materialises all scores (cubecl's
//!   autotune can choose its multi-kernel fallback). There the heads are fed in chunks of
//!   [`SCORE_BUDGET`] elements — one 4096×4096 head — so at most one head's scores exist at
//!   a time at 64×64, and smaller latents still run in one call.
//!
//! # Memory under autodiff (training)
//! burn's autodiff replaces the fused op by its unfused fallback, whose graph keeps two
//! score-sized tensors per head for the backward pass: the exponentials and the normalised
//! softmax. So:
//! - on an autodiff `flex` device, f32 attention is one graph operation of this crate
//!   (`cpu::tracked`): the forward pass is the CPU kernel above, which also returns each
//!   query row's log-sum-exp, and the backward pass recomputes the softmax block by block
//!   from `q`, `k` and that log-sum-exp (flash attention's backward). Nothing of
//!   `[queries, keys]` size is kept: for SD 1.5 at 512² pixels the training step held
//!   1.6 GiB instead of 6.2 GiB, and took about half the time;
//! - on other autodiff devices the scores are written out as
//!   `(exp(s - max(s)) · v) / Σ exp(s - max(s))`: the same function (the shift is a constant
//!   to the gradient, as softmax is shift-invariant), but the one exponential tensor serves
//!   both the `exp` and the matmul backward, and the division happens on the
//!   `[queries, head_dim]` result rather than on the `[queries, keys]` scores: one
//!   score-sized tensor per head is kept instead of two. Heads go in [`SCORE_BUDGET`] chunks
//!   there too.
//!
//! The GEGLU gate likewise runs as one graph operation on an autodiff `flex` device, keeping
//! only its projection rather than every intermediate of burn's `erf`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Device, Tensor};

/// The most attention scores (elements of `[query, key]` matrices, summed over the heads
/// computed together) that one fused call may be asked to hold on a backend that might
/// materialise them: one 4096×4096 head, the self-attention of a 64×64 latent (64 MiB f32).
pub const SCORE_BUDGET: usize = 4096 * 4096;

/// Multi-head attention with separate q/k/v projections (no bias) and an output projection
/// (diffusers' `Attention` as `BasicTransformerBlock` builds it).
///
/// `to_out` is diffusers' `to_out.0`; `to_out.1` is a parameterless Dropout.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection, `query_dim → inner`.
    pub to_q: Linear,
    /// Key projection, `context_dim → inner`.
    pub to_k: Linear,
    /// Value projection, `context_dim → inner`.
    pub to_v: Linear,
    /// Output projection, `inner → query_dim`, with bias.
    pub to_out: Linear,
    /// Number of heads.
    pub heads: usize,
    /// Compute the scores in f32 even for half-precision inputs (diffusers'
    /// `upcast_attention`); a no-op for f32 models.
    pub upcast_attention: bool,
}

impl Attention {
    /// An uninitialised attention layer of `heads × head_dim` inner width; `context_dim` is
    /// `None` for self-attention.
    pub fn new(
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        head_dim: usize,
        upcast_attention: bool,
        device: &Device,
    ) -> Self {
        let inner = heads * head_dim;
        let context_dim = context_dim.unwrap_or(query_dim);
        let no_bias = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self {
            to_q: no_bias(query_dim, inner),
            to_k: no_bias(context_dim, inner),
            to_v: no_bias(context_dim, inner),
            to_out: LinearConfig::new(inner, query_dim).init(device),
            heads,
            upcast_attention,
        }
    }

    /// Attends from `x` to `context` (or to itself when `context` is `None`).
    ///
    /// # Shapes
    /// - `x`: `[batch, queries, query_dim]`
    /// - `context`: `[batch, keys, context_dim]`; any number of keys (A1111 concatenates
    ///   77-token chunks: 154, 231, ...)
    /// - output: `[batch, queries, query_dim]`
    pub fn forward(&self, x: Tensor<3>, context: Option<Tensor<3>>) -> Tensor<3> {
        let context = context.unwrap_or_else(|| x.clone());
        let q = self.split_heads(self.to_q.forward(x));
        let k = self.split_heads(self.to_k.forward(context.clone()));
        let v = self.split_heads(self.to_v.forward(context));
        let [batch, heads, queries, head_dim] = q.dims();
        let out = scaled_dot_product(q, k, v, self.upcast_attention)
            .swap_dims(1, 2)
            .reshape([batch, queries, heads * head_dim]);
        self.to_out.forward(out)
    }

    /// `[batch, tokens, heads * head_dim]` → `[batch, heads, tokens, head_dim]`.
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [batch, tokens, inner] = x.dims();
        x.reshape([batch, tokens, self.heads, inner / self.heads])
            .swap_dims(1, 2)
    }
}

/// `softmax(q kᵀ / √head_dim) v`, through the backend's fused op (or, on an autodiff device,
/// the formulation that keeps one score tensor for the backward pass), in as few calls as
/// memory allows (see the [module docs](self)).
///
/// # Shapes
/// - `q`: `[batch, heads, queries, head_dim]`
/// - `k`, `v`: `[batch, heads, keys, head_dim]`
/// - output: `[batch, heads, queries, head_dim]`
pub fn scaled_dot_product(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, upcast: bool) -> Tensor<4> {
    let dtype = q.dtype();
    let (q, k, v) = if upcast && dtype != DType::F32 {
        (q.cast(DType::F32), k.cast(DType::F32), v.cast(DType::F32))
    } else {
        (q, k, v)
    };
    let scale = 1.0 / (q.dims()[3] as f64).sqrt();
    let device = q.device();
    let out = if device.is_autodiff() {
        match tracked_on_cpu(&q, &k, &v, scale) {
            Some(out) => out,
            None => in_chunks(q, k, v, SCORE_BUDGET, |q, k, v| {
                attention_for_autodiff(q, k, v, scale)
            }),
        }
    } else if let Some(out) = on_cpu(&q, &k, &v, scale) {
        out
    } else {
        let options = AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: false,
        };
        let budget = if streams_scores(&device) {
            usize::MAX
        } else {
            SCORE_BUDGET
        };
        in_chunks(q, k, v, budget, |q, k, v| {
            attention(q, k, v, None, None, options)
        })
    };
    if out.dtype() == dtype {
        out
    } else {
        out.cast(dtype)
    }
}

/// Runs `attend` on `[batch, heads, ...]` inputs at most `budget` score elements at a time
/// (at least one head per call), and joins the results.
fn in_chunks(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    budget: usize,
    attend: impl Fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>,
) -> Tensor<4> {
    let [batch, heads, queries, head_dim] = q.dims();
    let keys = k.dims()[2];
    let per_head = queries * keys;
    if batch * heads * per_head <= budget {
        attend(q, k, v)
    } else {
        // Fold batch and heads together and feed them a few at a time.
        let slices = batch * heads;
        let chunk = (budget / per_head).max(1);
        let fold = |t: Tensor<4>, tokens| t.reshape([slices, 1, tokens, head_dim]);
        let (q, k, v) = (fold(q, queries), fold(k, keys), fold(v, keys));
        let parts = (0..slices)
            .step_by(chunk)
            .map(|start| {
                let len = chunk.min(slices - start);
                attend(
                    q.clone().narrow(0, start, len),
                    k.clone().narrow(0, start, len),
                    v.clone().narrow(0, start, len),
                )
            })
            .collect();
        Tensor::cat(parts, 0).reshape([batch, heads, queries, head_dim])
    }
}

/// `softmax(q kᵀ · scale) v` as `(e · v) / Σ e` with `e = exp(s - max(s))`, the row maximum
/// taken outside the graph: autodiff then holds `e` once (shared by the `exp` and the matmul
/// backward) instead of `e` and the normalised softmax (see the [module docs](self)).
fn attention_for_autodiff(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64) -> Tensor<4> {
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    let shift = scores.clone().detach().max_dim(3);
    let weights = (scores - shift).exp();
    let total = weights.clone().sum_dim(3);
    weights.matmul(v) / total
}

/// The attention on burn's CPU backend (`flex`) for f32 inputs, through this crate's own
/// flash-style kernel (see `cpu::attention`); `None` elsewhere.
#[cfg(feature = "flex")]
fn on_cpu(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, scale: f64) -> Option<Tensor<4>> {
    use burn::tensor::TensorData;

    use crate::cpu::attention::{AttentionShape, attention};

    let device = q.device();
    if [q, k, v]
        .iter()
        .any(|t| !cpu_kernels_take(&device, t.dtype()))
    {
        return None;
    }
    let [batch, heads, queries, _] = q.dims();
    let shape = AttentionShape::of(q.dims(), v.dims());
    let (q, k, v) = (q.to_data(), k.to_data(), v.to_data());
    let (Ok(q), Ok(k), Ok(v)) = (q.as_slice(), k.as_slice(), v.as_slice()) else {
        return None;
    };
    let (out, _) = attention(q, k, v, shape, scale as f32);
    let out = TensorData::new(out, [batch, heads, queries, shape.value_dim]);
    Some(Tensor::from_data(out, &device))
}

/// The attention on an autodiff `flex` device for f32 inputs, as one graph operation whose
/// backward pass recomputes the softmax block by block (see `cpu::tracked`); `None`
/// elsewhere.
#[cfg(feature = "flex")]
fn tracked_on_cpu(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, scale: f64) -> Option<Tensor<4>> {
    crate::cpu::tracked::tracked_attention(q, k, v, scale as f32)
}

/// Without the CPU backend there is no CPU kernel.
#[cfg(not(feature = "flex"))]
fn tracked_on_cpu(_: &Tensor<4>, _: &Tensor<4>, _: &Tensor<4>, _: f64) -> Option<Tensor<4>> {
    None
}

/// Without the CPU backend there is no CPU kernel.
#[cfg(not(feature = "flex"))]
fn on_cpu(_: &Tensor<4>, _: &Tensor<4>, _: &Tensor<4>, _: f64) -> Option<Tensor<4>> {
    None
}

/// Whether the (non-autodiff) device's fused attention never holds a whole score matrix:
/// burn's `flex` CPU backend. Autodiff devices never get here ([`scaled_dot_product`] takes
/// its own path for them).
fn streams_scores(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        *device == Device::flex()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// diffusers' `GEGLU`: one projection to twice the inner width; the first half is the value,
/// the second half the gate, through exact (erf) GELU: `value * gelu(gate)`.
#[derive(Module, Debug)]
pub struct Geglu {
    /// `dim → 2 × inner` (`ff.net.0.proj`).
    pub proj: Linear,
}

impl Geglu {
    /// # Shapes
    /// - `x`: `[batch, tokens, dim]`
    /// - output: `[batch, tokens, inner]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let projected = self.proj.forward(x);
        if cpu_kernels_take(&projected.device(), projected.dtype()) {
            geglu_on_cpu(projected)
        } else if let Some(out) = tracked_geglu_on_cpu(&projected) {
            out
        } else {
            geglu_with_burn(projected)
        }
    }
}

/// `value · gelu(gate)` of a `[value | gate]` projection, with burn's ops.
fn geglu_with_burn(projected: Tensor<3>) -> Tensor<3> {
    let [batch, tokens, double] = projected.dims();
    let inner = double / 2;
    let value = projected.clone().narrow(2, 0, inner);
    let gate = projected.narrow(2, inner, inner);
    debug_assert_eq!(value.dims(), [batch, tokens, inner]);
    value * gelu(gate)
}

/// Whether this crate's CPU kernels (`cpu`) take tensors of `dtype` on `device`: f32 on
/// burn's CPU backend (`flex`), outside autodiff.
fn cpu_kernels_take(device: &Device, dtype: DType) -> bool {
    #[cfg(feature = "flex")]
    {
        crate::cpu::kernels_take(device, dtype)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (device, dtype);
        false
    }
}

/// The GEGLU gate through this crate's one-pass kernel (see `cpu::geglu`).
#[cfg(feature = "flex")]
fn geglu_on_cpu(projected: Tensor<3>) -> Tensor<3> {
    use burn::tensor::TensorData;

    let device = projected.device();
    let [batch, tokens, double] = projected.dims();
    // The projection is used only here: taking its data is free.
    let data = projected.into_data();
    match data.as_slice() {
        Ok(values) => {
            let out = crate::cpu::geglu::geglu(values, double / 2);
            let out = TensorData::new(out, [batch, tokens, double / 2]);
            Tensor::from_data(out, &device)
        }
        Err(_) => geglu_with_burn(Tensor::from_data(data, &device)),
    }
}

/// The GEGLU gate on an autodiff `flex` device for f32, as one graph operation that keeps
/// only the projection for its backward pass (see `cpu::tracked`); `None` elsewhere.
#[cfg(feature = "flex")]
fn tracked_geglu_on_cpu(projected: &Tensor<3>) -> Option<Tensor<3>> {
    if !projected.device().is_autodiff() {
        return None;
    }
    crate::cpu::tracked::tracked_geglu(projected)
}

/// Without the CPU backend there is no CPU kernel.
#[cfg(not(feature = "flex"))]
fn tracked_geglu_on_cpu(_: &Tensor<3>) -> Option<Tensor<3>> {
    None
}

/// Without the CPU backend there is no CPU kernel ([`cpu_kernels_take`] is always false).
#[cfg(not(feature = "flex"))]
fn geglu_on_cpu(projected: Tensor<3>) -> Tensor<3> {
    geglu_with_burn(projected)
}

/// diffusers' `FeedForward` with `activation_fn="geglu"` and 4× inner width.
///
/// The fields are diffusers' `ff.net.0` (GEGLU) and `ff.net.2` (output linear); `net.1` is
/// a parameterless Dropout.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `ff.net.0`.
    pub net_0: Geglu,
    /// `ff.net.2`: `inner → dim`.
    pub net_2: Linear,
}

impl FeedForward {
    /// An uninitialised feed-forward of width `dim` and inner width `4 × dim`.
    pub fn new(dim: usize, device: &Device) -> Self {
        let inner = 4 * dim;
        Self {
            net_0: Geglu {
                proj: LinearConfig::new(dim, 2 * inner).init(device),
            },
            net_2: LinearConfig::new(inner, dim).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, tokens, dim]`
    /// - output: `[batch, tokens, dim]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.net_2.forward(self.net_0.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::softmax;
    use burn::tensor::{Distribution, Tensor};

    use super::*;

    /// The fused op on every path this crate uses (flex's tiled "flash" kernel above 256K
    /// scores per head, its naive kernel below, and the chunked calls other backends get)
    /// against attention written out with plain tensor ops.
    #[test]
    fn fused_attention_matches_the_unfused_formula() {
        let device = Device::default();
        // 3 × 700 keys: 600 × 700 = 420K scores per head, above flex's naive-kernel budget.
        let [batch, heads, queries, keys, head_dim] = [2, 3, 600, 700, 8];
        let q = Tensor::<4>::random(
            [batch, heads, queries, head_dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let k = Tensor::<4>::random(
            [batch, heads, keys, head_dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let v = Tensor::<4>::random(
            [batch, heads, keys, head_dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let scale = 1.0 / (head_dim as f64).sqrt();
        let scores = q.clone().matmul(k.clone().swap_dims(2, 3)) * scale;
        let expected = softmax(scores, 3).matmul(v.clone());
        let options = AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: false,
        };
        for budget in [usize::MAX, queries * keys, 2 * queries * keys + 1, 1] {
            let got = in_chunks(q.clone(), k.clone(), v.clone(), budget, |q, k, v| {
                attention(q, k, v, None, None, options)
            });
            let err: f32 = (got - expected.clone()).abs().max().into_scalar();
            // f32 summation-order differences only; measured ~1e-6.
            assert!(err < 1e-5, "budget {budget}: max abs error {err}");
            let got = in_chunks(q.clone(), k.clone(), v.clone(), budget, |q, k, v| {
                attention_for_autodiff(q, k, v, scale)
            });
            let err: f32 = (got - expected.clone()).abs().max().into_scalar();
            assert!(
                err < 1e-5,
                "autodiff form, budget {budget}: max abs error {err}"
            );
        }
        let got = scaled_dot_product(q, k, v, true);
        let err: f32 = (got - expected).abs().max().into_scalar();
        assert!(err < 1e-5, "scaled_dot_product: max abs error {err}");
    }

    /// The gradients to q, k and v of `attend` on `device` against those of the textbook
    /// softmax formula, with q a constant (as in the first cross-attention of a textual
    /// inversion step) or not.
    fn check_gradients(
        device: &Device,
        shape: [usize; 5],
        q_is_constant: bool,
        attend: impl Fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>,
    ) {
        let [batch, heads, queries, keys, head_dim] = shape;
        let normal = |dims: [usize; 4]| {
            Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), device).require_grad()
        };
        let q = normal([batch, heads, queries, head_dim]);
        let q = if q_is_constant { q.detach() } else { q };
        let k = normal([batch, heads, keys, head_dim]);
        let v = normal([batch, heads, keys, head_dim]);
        let weights = Tensor::<4>::random(
            [batch, heads, queries, head_dim],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        let grads_of = |out: Tensor<4>| {
            let grads = (out * weights.clone()).sum().backward();
            [&q, &k, &v].map(|t| t.grad(&grads))
        };
        let scale = 1.0 / (head_dim as f64).sqrt();
        let scores = q.clone().matmul(k.clone().swap_dims(2, 3)) * scale;
        let expected = grads_of(softmax(scores, 3).matmul(v.clone()));
        let got = grads_of(attend(q.clone(), k.clone(), v.clone()));
        for (name, (got, expected)) in ["q", "k", "v"].iter().zip(got.into_iter().zip(expected)) {
            let (got, expected) = match (got, expected) {
                (None, None) if *name == "q" && q_is_constant => continue,
                (Some(got), Some(expected)) => (got, expected),
                (got, expected) => panic!(
                    "d/d{name}: got {}, expected {}",
                    got.is_some(),
                    expected.is_some()
                ),
            };
            let scale: f32 = expected.clone().abs().max().into_scalar();
            let err: f32 = (got - expected).abs().max().into_scalar();
            // f32 summation order only; measured ~1e-6 relative.
            assert!(
                err <= 1e-5 * scale,
                "d/d{name}: max abs error {err}, scale {scale}"
            );
        }
    }

    /// On an autodiff `flex` device `scaled_dot_product` runs the CPU kernel as one graph
    /// operation with its own backward pass, with or without gradient checkpointing; on
    /// other autodiff devices it takes the form that keeps one score tensor (checked here on
    /// `flex` by calling it directly, at one 4096 × 4096 head per call: the two heads go in
    /// two chunks).
    #[test]
    fn autodiff_paths_have_the_softmax_gradients() {
        let plain = Device::default().autodiff();
        let checkpointed = Device::default().autodiff().gradient_checkpointing();
        let sdpa = |q, k, v| scaled_dot_product(q, k, v, false);
        for device in [&plain, &checkpointed] {
            // Self-attention-like and cross-attention-like (77 keys, SD 1.5's 40-wide heads).
            check_gradients(device, [1, 2, 300, 300, 8], false, sdpa);
            check_gradients(device, [2, 2, 200, 77, 40], true, sdpa);
        }
        let big = [1, 2, 4096, 4096, 8];
        let scale = 1.0 / (big[4] as f64).sqrt();
        check_gradients(&plain, big, false, |q, k, v| {
            in_chunks(q, k, v, SCORE_BUDGET, |q, k, v| {
                attention_for_autodiff(q, k, v, scale)
            })
        });
    }

    /// On an autodiff `flex` device the GEGLU gate runs as one graph operation; its value
    /// and gradient equal those of burn's ops, with and without gradient checkpointing.
    #[test]
    fn tracked_geglu_gate_has_burns_gradients() {
        for device in [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ] {
            let projected =
                Tensor::<3>::random([2, 37, 2 * 40], Distribution::Normal(0.0, 2.0), &device)
                    .require_grad();
            let weights = Tensor::<3>::random([2, 37, 40], Distribution::Default, &device);
            let run = |gate: &dyn Fn(Tensor<3>) -> Tensor<3>| {
                let out = gate(projected.clone());
                let grads = (out.clone() * weights.clone()).sum().backward();
                (out, projected.grad(&grads).expect("a gradient"))
            };
            let (ours, ours_grad) = run(&|p| tracked_geglu_on_cpu(&p).expect("autodiff flex"));
            let (burns, burns_grad) = run(&geglu_with_burn);
            for (name, ours, burns) in [("value", ours, burns), ("gradient", ours_grad, burns_grad)]
            {
                let scale: f32 = burns.clone().abs().max().into_scalar();
                let err: f32 = (ours - burns).abs().max().into_scalar();
                assert!(
                    err <= 2e-6 * scale,
                    "{name}: max abs error {err}, scale {scale}"
                );
            }
        }
    }
}
