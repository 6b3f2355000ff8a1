//! The attention as one graph operation: the forward pass is the CPU kernel, which also
//! returns each query row's log-sum-exp; the backward step keeps `q`, `k`, `v`, the output
//! and that log-sum-exp, and recomputes the softmax block by block.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{DType, Tensor, TensorData};

use crate::cpu::attention::{AttentionShape, SavedForward, Wanted, attention, attention_backward};
use crate::cpu::{contiguous_f32, values};

/// `softmax(q kᵀ · scale) v` for f32 tensors on an autodiff `flex` device (either gradient
/// checkpointing strategy), as one graph operation with a memory-bounded backward pass;
/// `None` for anything else, which the caller computes another way.
///
/// # Shapes
/// - `q`: `[batch, heads, queries, head_dim]`
/// - `k`, `v`: `[batch, heads, keys, head_dim]`, `[batch, heads, keys, value_dim]`
/// - output: `[batch, heads, queries, value_dim]`
pub(crate) fn tracked_attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f32,
) -> Option<Tensor<4>> {
    if [q, k, v].iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    attend::<NoCheckpointing>(q, k, v, scale)
        .or_else(|| attend::<BalancedCheckpointing>(q, k, v, scale))
}

/// [`tracked_attention`] for one checkpointing strategy `C`; `None` when the tensors are not
/// on `Autodiff<Flex, C>`.
fn attend<C: CheckpointStrategy>(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f32,
) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let [batch, heads, queries, _] = q.dims();
    let shape = AttentionShape::of(q.dims(), v.dims());
    let q = q.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?;
    let k = k.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?;
    let v = v.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?;
    let (q_values, k_values, v_values) = (
        contiguous_f32(q.primitive()),
        contiguous_f32(k.primitive()),
        contiguous_f32(v.primitive()),
    );
    let (out, lse) = attention(
        values(&q_values),
        values(&k_values),
        values(&v_values),
        shape,
        scale,
    );
    let out = FlexTensor::from_data(TensorData::new(
        out,
        [batch, heads, queries, shape.value_dim],
    ));
    let output = match FlashAttention
        .prepare::<C>([q.node(), k.node(), v.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                q: q_values,
                k: k_values,
                v: v_values,
                out: out.clone(),
                lse: Arc::new(lse),
                shape,
                scale,
                batch_heads: [batch, heads],
            };
            prep.finish(saved, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(output))
}

/// The attention's backward step.
#[derive(Debug)]
struct FlashAttention;

/// What the backward step keeps of the forward pass: `O(tokens × head_dim)`, no scores.
#[derive(Debug, Clone)]
struct Saved {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    out: FlexTensor,
    lse: Arc<Vec<f32>>,
    shape: AttentionShape,
    scale: f32,
    batch_heads: [usize; 2],
}

impl Saved {
    /// The dimensions of `q`, `k` and `v`.
    fn dims(&self) -> [[usize; 4]; 3] {
        let [batch, heads] = self.batch_heads;
        let AttentionShape {
            queries,
            keys,
            head_dim,
            value_dim,
            ..
        } = self.shape;
        [
            [batch, heads, queries, head_dim],
            [batch, heads, keys, head_dim],
            [batch, heads, keys, value_dim],
        ]
    }
}

impl Backward<Flex, 3> for FlashAttention {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q_parent, k_parent, v_parent] = ops.parents;
        let d_out = contiguous_f32(&grads.consume::<Flex>(&ops.node));
        let saved = ops.state;
        let wanted = Wanted {
            q: q_parent.is_some(),
            kv: k_parent.is_some() || v_parent.is_some(),
        };
        let forward = SavedForward {
            q: values(&saved.q),
            k: values(&saved.k),
            v: values(&saved.v),
            out: values(&saved.out),
            lse: &saved.lse,
        };
        let gradients =
            attention_backward(forward, values(&d_out), saved.shape, saved.scale, wanted);
        for (parent, gradient, dims) in [
            (q_parent, gradients.q, saved.dims()[0]),
            (k_parent, gradients.k, saved.dims()[1]),
            (v_parent, gradients.v, saved.dims()[2]),
        ] {
            if let (Some(parent), Some(gradient)) = (parent, gradient) {
                let gradient = FlexTensor::from_data(TensorData::new(gradient, dims));
                grads.register::<Flex>(parent.id, gradient);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;

    /// The operation takes f32 tensors on both autodiff `flex` devices, and nothing else
    /// (the caller then computes the attention another way).
    #[test]
    fn takes_f32_on_autodiff_flex_only() {
        let inputs = |device: &Device| {
            let dims = [1, 2, 10, 8];
            [0, 1, 2].map(|_| Tensor::<4>::random(dims, Distribution::Default, device))
        };
        for device in [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ] {
            let [q, k, v] = inputs(&device);
            let q = q.require_grad();
            let out = tracked_attention(&q, &k, &v, 0.5).expect("an autodiff flex device");
            assert_eq!(out.dims(), [1, 2, 10, 8]);
            let grads = out.sum().backward();
            assert_eq!(q.grad(&grads).map(|g| g.dims()), Some([1, 2, 10, 8]));
            let [q, k, v] = inputs(&device).map(|t| t.cast(DType::F16));
            assert!(tracked_attention(&q, &k, &v, 0.5).is_none(), "f16");
        }
        let [q, k, v] = inputs(&Device::flex());
        assert!(tracked_attention(&q, &k, &v, 0.5).is_none(), "no autodiff");
    }
}
