//! The GEGLU gate as one graph operation that keeps only the projection for its backward
//! pass, which recomputes the gate's GELU and its derivative.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{DType, Tensor, TensorData};

use crate::cpu::geglu::{geglu, geglu_backward};
use crate::cpu::{contiguous_f32, values};

/// `value · gelu(gate)` of a `[batch, tokens, 2 · inner]` projection whose rows are
/// `[value | gate]`, for f32 on an autodiff `flex` device, as one graph operation that keeps
/// only the projection for its backward pass; `None` for anything else.
pub(crate) fn tracked_geglu(projected: &Tensor<3>) -> Option<Tensor<3>> {
    if projected.dtype() != DType::F32 {
        return None;
    }
    geglu_on::<NoCheckpointing>(projected).or_else(|| geglu_on::<BalancedCheckpointing>(projected))
}

/// [`tracked_geglu`] for one checkpointing strategy `C`.
fn geglu_on<C: CheckpointStrategy>(projected: &Tensor<3>) -> Option<Tensor<3>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let [batch, tokens, double] = projected.dims();
    let inner = double / 2;
    let projected = projected
        .clone()
        .try_into_primitive::<Autodiff<Flex, C>>()
        .ok()?;
    let values_in = contiguous_f32(projected.primitive());
    let out = geglu(values(&values_in), inner);
    let out = FlexTensor::from_data(TensorData::new(out, [batch, tokens, inner]));
    let output = match GegluGate
        .prepare::<C>([projected.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((values_in, [batch, tokens, double]), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(output))
}

/// The GEGLU gate's backward step; its state is the (contiguous f32) projection and its
/// dimensions.
#[derive(Debug)]
struct GegluGate;

impl Backward<Flex, 1> for GegluGate {
    type State = (FlexTensor, [usize; 3]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let d_out = contiguous_f32(&grads.consume::<Flex>(&ops.node));
        let Some(parent) = parent else {
            return;
        };
        let (projected, dims) = ops.state;
        let d_projected = geglu_backward(values(&projected), values(&d_out), dims[2] / 2);
        let d_projected = FlexTensor::from_data(TensorData::new(d_projected, dims));
        grads.register::<Flex>(parent.id, d_projected);
    }
}
