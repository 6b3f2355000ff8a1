//! `softmax(q kᵀ / √head_dim) v` for multi-head attention, in as few calls and with as
//! little memory as each device allows: [`scaled_dot_product`].
//!
//! # Memory at 64×64 latents
//! The first level's self-attention has 4096 queries and 4096 keys: one head's score matrix
//! is 64 MiB in f32, and all of SD 1.5's 8 heads for a batch of 2 (classifier-free guidance)
//! would be 1 GiB, several times over while softmax runs. So:
//! - on burn's CPU backend (`flex`), f32 attention runs through this crate's own flash-style
//!   kernel: each task takes 64 queries of one head through the keys 256 at a time with an
//!   online softmax, so at most one `[64, 256]` block of scores exists per
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
//! - on an autodiff `flex` device, f32 attention is one graph operation of this crate: the
//!   forward pass is the CPU kernel above, which also returns each query row's log-sum-exp,
//!   and the backward pass recomputes the softmax block by block
//!   from `q`, `k` and that log-sum-exp (flash attention's backward). Nothing of
//!   `[queries, keys]` size is kept: for SD 1.5 at 512² pixels the training step held
//!   1.6 GiB instead of 6.2 GiB, and took about half the time;
//! - on an autodiff GPU device (wgpu, CUDA), f32 attention is one graph operation too
//!   (`attention/blockwise.rs`): a block of queries at a time forward, and flash attention's
//!   block-by-block recomputation backward, written with burn's tensor ops; at most
//!   [`SCORE_BUDGET`] scores exist at once;
//! - on other autodiff devices (and for other dtypes) the scores are written out as
//!   `(exp(s - max(s)) · v) / Σ exp(s - max(s))`: the same function (the shift is a constant
//!   to the gradient, as softmax is shift-invariant), but the one exponential tensor serves
//!   both the `exp` and the matmul backward, and the division happens on the
//!   `[queries, head_dim]` result rather than on the `[queries, keys]` scores: one
//!   score-sized tensor per head is kept instead of two. Heads go in [`SCORE_BUDGET`] chunks
//!   there too.

// Taken only with a GPU backend; compiled everywhere so that the CPU's tests check it.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
mod blockwise;

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Device, Tensor};

/// The most attention scores (elements of `[query, key]` matrices, summed over the heads
/// computed together) that one fused call may be asked to hold on a backend that might
/// materialise them: one 4096×4096 head, the self-attention of a 64×64 latent (64 MiB f32).
pub const SCORE_BUDGET: usize = 4096 * 4096;

/// `softmax(q kᵀ / √head_dim) v`, through the backend's fused op (or, on an autodiff device,
/// the formulation that keeps one score tensor for the backward pass), in as few calls as
/// memory allows (see the [module docs](self)). With `upcast`, half-precision inputs are
/// attended in f32 and the result cast back (diffusers' `upcast_attention`).
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
        match tracked_on_cpu(&q, &k, &v, scale)
            .or_else(|| blockwise::tracked_attention(&q, &k, &v, scale))
        {
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
/// flash-style kernel; `None` elsewhere.
#[cfg(feature = "flex")]
fn on_cpu(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, scale: f64) -> Option<Tensor<4>> {
    use burn::tensor::TensorData;

    use crate::cpu::attention::{AttentionShape, attention};
    use crate::cpu::kernels_take;

    let device = q.device();
    if [q, k, v].iter().any(|t| !kernels_take(&device, t.dtype())) {
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
/// backward pass recomputes the softmax block by block; `None`
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

#[cfg(test)]
pub(crate) mod tests {
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
    pub(crate) fn check_gradients(
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
}
