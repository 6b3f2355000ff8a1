//! GroupNorm (+ SiLU) with frozen parameters as one graph operation that keeps its input and
//! two numbers per group, and recomputes the rest in its backward step.

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

use crate::cpu::group_norm::{Affine, GroupNormShape, group_norm, group_norm_backward};
use crate::cpu::{contiguous_f32, values};

/// `silu?(GroupNorm(x))` with frozen `gamma` and `beta`, for f32 on an autodiff `flex`
/// device, as one graph operation that keeps only `x` and the per-group statistics; `None`
/// for anything else, or when `gamma` or `beta` want gradients.
pub(crate) fn tracked_group_norm(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    groups: usize,
    eps: f32,
    silu: bool,
) -> Option<Tensor<4>> {
    if x.dtype() != DType::F32 || gamma.is_require_grad() || beta.is_require_grad() {
        return None;
    }
    let gamma = Arc::new(
        gamma
            .to_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .ok()?,
    );
    let beta = Arc::new(beta.to_data().convert::<f32>().try_into_vec::<f32>().ok()?);
    let norm = FrozenGroupNorm {
        gamma,
        beta,
        groups,
        eps,
        silu,
    };
    norm.apply::<NoCheckpointing>(x)
        .or_else(|| norm.apply::<BalancedCheckpointing>(x))
}

/// The constant parameters of a GroupNorm (+ SiLU) in the graph.
#[derive(Debug, Clone)]
struct FrozenGroupNorm {
    gamma: Arc<Vec<f32>>,
    beta: Arc<Vec<f32>>,
    groups: usize,
    eps: f32,
    silu: bool,
}

impl FrozenGroupNorm {
    fn shape(&self, dims: [usize; 4]) -> GroupNormShape {
        let [batch, channels, height, width] = dims;
        GroupNormShape {
            batch,
            channels,
            groups: self.groups,
            spatial: height * width,
        }
    }

    fn affine(&self) -> Affine<'_> {
        Affine {
            gamma: &self.gamma,
            beta: &self.beta,
            silu: self.silu,
        }
    }

    fn apply<C: CheckpointStrategy>(&self, x: &Tensor<4>) -> Option<Tensor<4>>
    where
        DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
    {
        let dims = x.dims();
        let shape = self.shape(dims);
        if shape.channels != self.gamma.len() || !shape.channels.is_multiple_of(self.groups) {
            return None;
        }
        let x = x.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?;
        let x_values = contiguous_f32(x.primitive());
        let (out, stats) = group_norm(values(&x_values), shape, self.affine(), self.eps);
        let out = FlexTensor::from_data(TensorData::new(out, dims));
        let output = match GroupNormStep
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let saved = SavedGroupNorm {
                    norm: self.clone(),
                    x: x_values,
                    stats: Arc::new(stats),
                    dims,
                };
                prep.finish(saved, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Some(Tensor::from_primitive::<Autodiff<Flex, C>>(output))
    }
}

/// GroupNorm (+ SiLU)'s backward step.
#[derive(Debug)]
struct GroupNormStep;

/// What the GroupNorm step keeps: its input, parameters and per-group statistics.
#[derive(Debug, Clone)]
struct SavedGroupNorm {
    norm: FrozenGroupNorm,
    x: FlexTensor,
    stats: Arc<Vec<[f32; 2]>>,
    dims: [usize; 4],
}

impl Backward<Flex, 1> for GroupNormStep {
    type State = SavedGroupNorm;

    fn backward(self, ops: Ops<SavedGroupNorm, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let d_out = contiguous_f32(&grads.consume::<Flex>(&ops.node));
        let Some(parent) = parent else {
            return;
        };
        let saved = ops.state;
        let shape = saved.norm.shape(saved.dims);
        let d_x = group_norm_backward(
            values(&saved.x),
            values(&d_out),
            &saved.stats,
            shape,
            saved.norm.affine(),
        );
        grads.register::<Flex>(
            parent.id,
            FlexTensor::from_data(TensorData::new(d_x, saved.dims)),
        );
    }
}
