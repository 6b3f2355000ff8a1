//! Attention as one graph operation on the GPU backends (wgpu, CUDA: burn's `Cube`), for
//! training without keeping any score matrix.
//!
//! burn's autodiff has no fused attention backward: written with its ops, attention keeps at
//! least one `[queries, keys]` tensor per head for the backward pass (64 MiB per head of a
//! 64×64 latent's self-attention, 2.5 GiB for SD 1.5's five full-resolution self-attentions
//! in a 512² step, and as much again while softmax runs). Here the forward pass computes the
//! output and each query row's log-sum-exp a block of queries at a time; the operation keeps
//! `q`, `k`, `v`, the output and the log-sum-exp, `O(tokens × head_dim)`; and its backward
//! pass recomputes the softmax block by block from them — the backward of flash attention
//! (Dao et al., "FlashAttention", 2022, algorithm 2), at the granularity of burn's tensor ops
//! (a few kernels per block) rather than of one fused kernel. At most one block's scores,
//! [`SCORE_BUDGET`](super::SCORE_BUDGET) elements over all heads, exist at a time, in either
//! pass.
//!
//! The math ([`forward`], [`backward`]) is plain tensor ops and runs on any device; the graph
//! operation ([`attend`]) is generic over the backend, and [`tracked_attention`] picks it for
//! f32 tensors on an autodiff `Cube` device. The CPU backend has its own kernel
//! (`crate::cpu::tracked`), which this mirrors.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::tensor::Tensor;

/// Queries per block: as many as keep `batch × heads × rows × keys` scores within `budget`
/// (at least one).
fn block_rows(q: &Tensor<4>, keys: usize, budget: usize) -> usize {
    let [batch, heads, queries, _] = q.dims();
    (budget / (batch * heads * keys).max(1)).clamp(1, queries.max(1))
}

/// The query blocks: `(start, rows)` pairs covering `0..queries`.
fn blocks(queries: usize, rows: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..queries)
        .step_by(rows)
        .map(move |start| (start, rows.min(queries - start)))
}

/// `softmax(q kᵀ · scale) v` and each query row's log-sum-exp of the scaled scores, computed
/// `budget` scores at a time.
///
/// # Shapes
/// - `q`: `[batch, heads, queries, head_dim]`; `k`: `[batch, heads, keys, head_dim]`;
///   `v`: `[batch, heads, keys, value_dim]`
/// - output: `[batch, heads, queries, value_dim]`, log-sum-exp `[batch, heads, queries, 1]`
pub(crate) fn forward(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f64,
    budget: usize,
) -> (Tensor<4>, Tensor<4>) {
    let queries = q.dims()[2];
    let k_t = k.clone().swap_dims(2, 3);
    let (outs, sums): (Vec<_>, Vec<_>) = blocks(queries, block_rows(q, k.dims()[2], budget))
        .map(|(start, rows)| {
            let scores = q.clone().narrow(2, start, rows).matmul(k_t.clone()) * scale;
            let max = scores.clone().max_dim(3);
            let weights = (scores - max.clone()).exp();
            let total = weights.clone().sum_dim(3);
            let out = weights.matmul(v.clone()) / total.clone();
            (out, max + total.log())
        })
        .unzip();
    (Tensor::cat(outs, 2), Tensor::cat(sums, 2))
}

/// What the backward pass needs of the forward pass: no scores.
#[derive(Debug, Clone)]
pub(crate) struct Saved {
    /// The queries.
    pub q: Tensor<4>,
    /// The keys.
    pub k: Tensor<4>,
    /// The values.
    pub v: Tensor<4>,
    /// The forward output.
    pub out: Tensor<4>,
    /// Each query row's log-sum-exp of the scaled scores (from [`forward`]).
    pub lse: Tensor<4>,
    /// The score scale.
    pub scale: f64,
    /// Scores per block.
    pub budget: usize,
}

/// The gradients of `q`, `k` and `v` given the output's gradient `d_out`, recomputing the
/// softmax a block of queries at a time: `P = exp(q kᵀ · scale − lse)`, `dV = Σ Pᵀ dO`,
/// `dS = P ∘ (dO vᵀ − rowsum(dO ∘ O))`, `dQ = dS k · scale`, `dK = Σ dSᵀ q · scale`. Only the
/// wanted gradients (`want_q`, `want_kv`) are computed.
pub(crate) fn backward(
    saved: &Saved,
    d_out: Tensor<4>,
    want_q: bool,
    want_kv: bool,
) -> [Option<Tensor<4>>; 3] {
    let Saved {
        q,
        k,
        v,
        out,
        lse,
        scale,
        budget,
    } = saved;
    let queries = q.dims()[2];
    let delta = (d_out.clone() * out.clone()).sum_dim(3);
    let k_t = k.clone().swap_dims(2, 3);
    let v_t = v.clone().swap_dims(2, 3);
    let mut d_q = Vec::new();
    let (mut d_k, mut d_v): (Option<Tensor<4>>, Option<Tensor<4>>) = (None, None);
    let add =
        |sum: Option<Tensor<4>>, part: Tensor<4>| Some(sum.map_or(part.clone(), |s| s + part));
    for (start, rows) in blocks(queries, block_rows(q, k.dims()[2], *budget)) {
        let q_block = q.clone().narrow(2, start, rows);
        let d_out_block = d_out.clone().narrow(2, start, rows);
        let weights = (q_block.clone().matmul(k_t.clone()) * *scale
            - lse.clone().narrow(2, start, rows))
        .exp();
        if want_kv {
            d_v = add(
                d_v,
                weights.clone().swap_dims(2, 3).matmul(d_out_block.clone()),
            );
        }
        let d_weights = d_out_block.matmul(v_t.clone());
        let d_scores = weights * (d_weights - delta.clone().narrow(2, start, rows));
        if want_q {
            d_q.push(d_scores.clone().matmul(k.clone()) * *scale);
        }
        if want_kv {
            d_k = add(d_k, d_scores.swap_dims(2, 3).matmul(q_block) * *scale);
        }
    }
    let d_q = want_q.then(|| Tensor::cat(d_q, 2));
    [d_q, d_k, d_v]
}

/// `softmax(q kᵀ · scale) v` for f32 tensors on an autodiff device of a GPU backend (burn's
/// `Cube`: wgpu, CUDA), with either checkpointing strategy, as one graph operation with the
/// memory-bounded backward pass of [`backward`]; `None` for anything else, which the caller
/// computes another way.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn tracked_attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f64,
) -> Option<Tensor<4>> {
    use burn::backend::Cube;
    use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
    use burn::tensor::DType;

    if [q, k, v].iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    let budget = super::SCORE_BUDGET;
    attend::<Cube, NoCheckpointing>(q, k, v, scale, budget)
        .or_else(|| attend::<Cube, BalancedCheckpointing>(q, k, v, scale, budget))
}

/// Without a GPU backend there is nothing to track here.
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
pub(crate) fn tracked_attention(
    _: &Tensor<4>,
    _: &Tensor<4>,
    _: &Tensor<4>,
    _: f64,
) -> Option<Tensor<4>> {
    None
}

/// The graph operation on `Autodiff<B, C>`; `None` when the tensors are not on it.
pub(crate) fn attend<B: Backend, C: CheckpointStrategy>(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f64,
    budget: usize,
) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<B, C>> + DispatchKindConversion<B>,
{
    let q = q.clone().try_into_primitive::<Autodiff<B, C>>().ok()?;
    let k = k.clone().try_into_primitive::<Autodiff<B, C>>().ok()?;
    let v = v.clone().try_into_primitive::<Autodiff<B, C>>().ok()?;
    let (q_plain, k_plain, v_plain) = (
        Tensor::<4>::from_primitive::<B>(q.primitive().clone()),
        Tensor::<4>::from_primitive::<B>(k.primitive().clone()),
        Tensor::<4>::from_primitive::<B>(v.primitive().clone()),
    );
    let (out, lse) = forward(&q_plain, &k_plain, &v_plain, scale, budget);
    let out_primitive = out.clone().try_into_primitive::<B>().ok()?;
    let output = match BlockwiseAttention
        .prepare::<C>([q.node(), k.node(), v.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                q: q_plain,
                k: k_plain,
                v: v_plain,
                out,
                lse,
                scale,
                budget,
            };
            prep.finish(saved, out_primitive)
        }
        OpsKind::UnTracked(prep) => prep.finish(out_primitive),
    };
    Some(Tensor::from_primitive::<Autodiff<B, C>>(output))
}

/// The attention's backward step.
#[derive(Debug)]
struct BlockwiseAttention;

impl<B: Backend> Backward<B, 3> for BlockwiseAttention
where
    DispatchTensor: DispatchKindConversion<B>,
{
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q_parent, k_parent, v_parent] = ops.parents;
        let d_out = Tensor::<4>::from_primitive::<B>(grads.consume::<B>(&ops.node));
        let gradients = backward(
            &ops.state,
            d_out,
            q_parent.is_some(),
            k_parent.is_some() || v_parent.is_some(),
        );
        for (parent, gradient) in [q_parent, k_parent, v_parent].into_iter().zip(gradients) {
            if let (Some(parent), Some(gradient)) = (parent, gradient) {
                // A tensor made from a `B` primitive converts back to one.
                let gradient = gradient
                    .try_into_primitive::<B>()
                    .expect("the gradient lives on the backend it was computed on");
                grads.register::<B>(parent.id, gradient);
            }
        }
    }
}

/// On a GPU device (CI: wgpu over lavapipe, with `BURN_DEVICE=wgpu`), `scaled_dot_product`
/// under autodiff takes the graph operation, and its gradients are the softmax formula's.
#[cfg(all(test, any(feature = "wgpu", feature = "cuda")))]
mod gpu_tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::attention::tests::check_gradients;

    #[test]
    fn gpu_autodiff_attention_is_the_graph_operation() {
        #[cfg(feature = "flex")]
        if Device::default() == Device::flex() {
            // Without BURN_DEVICE=wgpu the default device is the CPU's: nothing to check.
            return;
        }
        let device = Device::default().autodiff();
        let q = Tensor::<4>::random([1, 2, 30, 8], Distribution::Default, &device);
        assert!(
            tracked_attention(&q, &q, &q, 0.5).is_some(),
            "f32 on an autodiff GPU device"
        );
        let sdpa = |q, k, v| crate::scaled_dot_product(q, k, v, false);
        check_gradients(&device, [1, 2, 300, 300, 8], false, sdpa);
        check_gradients(&device, [2, 2, 200, 77, 40], true, sdpa);
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::backend::Flex;
    use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::attention::tests::check_gradients;

    /// The blockwise forward pass against the textbook formula, and its log-sum-exp against
    /// the one computed whole, for budgets of one row, a few rows and everything.
    #[test]
    fn forward_matches_softmax_at_every_block_size() {
        let device = Device::flex();
        let normal = |dims| Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let (q, k, v) = (
            normal([2, 3, 50, 8]),
            normal([2, 3, 70, 8]),
            normal([2, 3, 70, 5]),
        );
        let scale = 0.3;
        let scores = q.clone().matmul(k.clone().swap_dims(2, 3)) * scale;
        let expected_lse = scores.clone().exp().sum_dim(3).log();
        let expected = burn::tensor::activation::softmax(scores, 3).matmul(v.clone());
        for budget in [1, 6 * 70 * 7, usize::MAX] {
            let (out, lse) = forward(&q, &k, &v, scale, budget);
            let err: f32 = (out - expected.clone()).abs().max().into_scalar();
            // f32 summation order only; measured ~3e-7.
            assert!(err < 1e-5, "budget {budget}: output off by {err}");
            let err: f32 = (lse - expected_lse.clone()).abs().max().into_scalar();
            assert!(err < 1e-5, "budget {budget}: log-sum-exp off by {err}");
        }
    }

    /// The graph operation's gradients (through burn's generic backward step, here on
    /// `Autodiff<Flex>`) against the softmax formula's, with and without a constant q, with
    /// and without gradient checkpointing, in one block and in many.
    #[test]
    fn graph_operation_has_the_softmax_gradients() {
        for budget in [usize::MAX, 2 * 2 * 77 * 9] {
            let plain = |q: Tensor<4>, k: Tensor<4>, v: Tensor<4>| {
                let scale = 1.0 / (q.dims()[3] as f64).sqrt();
                attend::<Flex, NoCheckpointing>(&q, &k, &v, scale, budget)
                    .expect("an autodiff flex device")
            };
            check_gradients(
                &Device::flex().autodiff(),
                [1, 2, 300, 300, 8],
                false,
                plain,
            );
            check_gradients(&Device::flex().autodiff(), [2, 2, 200, 77, 40], true, plain);
            let checkpointed = |q: Tensor<4>, k: Tensor<4>, v: Tensor<4>| {
                let scale = 1.0 / (q.dims()[3] as f64).sqrt();
                attend::<Flex, BalancedCheckpointing>(&q, &k, &v, scale, budget)
                    .expect("a checkpointing autodiff flex device")
            };
            let device = Device::flex().autodiff().gradient_checkpointing();
            check_gradients(&device, [1, 2, 300, 300, 8], false, checkpointed);
        }
        let plain = Device::flex();
        let q = Tensor::<4>::random([1, 1, 4, 8], Distribution::Default, &plain);
        assert!(
            attend::<Flex, NoCheckpointing>(&q, &q, &q, 1.0, usize::MAX).is_none(),
            "no autodiff"
        );
    }
}
