//! The CPU kernels as operations of burn's autodiff graph, for training on the CPU backend
//! (`flex`): the attention ([`tracked_attention`]), the GEGLU gate ([`tracked_geglu`]),
//! GroupNorm with its SiLU ([`tracked_group_norm`]) and the frozen-weight convolution
//! ([`tracked_conv2d`]).
//!
//! Written with burn's own ops, attention under autodiff keeps a `[queries, keys]` tensor per
//! head for its backward pass: 64 MiB per head of a 64×64 latent's self-attention, 2.5 GiB
//! for SD 1.5's five full-resolution self-attentions in one 512² training step. Here the
//! forward pass is [`super::attention::attention`], which also returns each query row's
//! log-sum-exp, and the operation registers a backward step (burn's [`Backward`]) that keeps
//! only `q`, `k`, `v`, the output and the log-sum-exp — `O(tokens × head_dim)` — and
//! recomputes the softmax block by block ([`super::attention_backward`]).
//!
//! Likewise burn's GEGLU gate keeps each intermediate of its `erf` for the backward pass;
//! [`tracked_geglu`] keeps the projection alone and recomputes the rest
//! ([`super::geglu::geglu_backward`]), and GroupNorm + SiLU keeps its input and two numbers
//! per group instead of about four input-sized tensors ([`super::group_norm`]). burn's
//! `conv2d` keeps its input whenever it is tracked, for a weight gradient that a frozen
//! model never asks for; [`tracked_conv2d`] keeps nothing but the weight the module holds
//! anyway, and its backward pass is burn's own input gradient (a transposed convolution).
//!
//! burn 0.22 reaches a backend's primitives through `Tensor::try_into_primitive` (the
//! `extension` feature): an autodiff tensor on `flex` is an `AutodiffTensor<Flex>`, whose
//! node links the new operation into the graph.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Tensor, TensorData};

use super::attention::{AttentionShape, attention};
use super::attention_backward::{SavedForward, Wanted, attention_backward};
use super::geglu::{geglu, geglu_backward};
use super::group_norm::{Affine, GroupNormShape, group_norm, group_norm_backward};
use super::{contiguous_f32, values};

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

/// `conv(x)` for a convolution whose weight and bias want no gradient, for f32 on an
/// autodiff `flex` device, as one graph operation that keeps only the weight (which the
/// module holds anyway) instead of the input; `None` for anything else: parameters that
/// want gradients, asymmetric or `Same` padding, other backends and dtypes.
pub(crate) fn tracked_conv2d(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    if x.dtype() != DType::F32
        || weight.is_require_grad()
        || bias.as_ref().is_some_and(|b| b.is_require_grad())
    {
        return None;
    }
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return None,
    };
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    conv_on::<NoCheckpointing>(x, &weight, bias.as_ref(), &options)
        .or_else(|| conv_on::<BalancedCheckpointing>(x, &weight, bias.as_ref(), &options))
}

/// [`tracked_conv2d`] for one checkpointing strategy `C`.
fn conv_on<C: CheckpointStrategy>(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    options: &ConvOptions<2>,
) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let primitive = |t: Tensor<4>| {
        t.try_into_primitive::<Autodiff<Flex, C>>()
            .ok()
            .map(|t| t.primitive().clone())
    };
    let weight_dims = weight.dims();
    let weight = primitive(weight.clone())?;
    let bias = match bias {
        Some(bias) => Some(
            bias.clone()
                .try_into_primitive::<Autodiff<Flex, C>>()
                .ok()?
                .primitive()
                .clone(),
        ),
        None => None,
    };
    let [_, _, height, width] = x.dims();
    let [_, _, kernel_height, kernel_width] = weight_dims;
    let x = x.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?;
    let out = <Flex as ModuleOps<Flex>>::conv2d(
        x.primitive().clone(),
        weight.clone(),
        bias,
        options.clone(),
    );
    let output = match FrozenConv
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = SavedConv {
                weight,
                options: options.clone(),
                input_size: [height, width],
                kernel: [kernel_height, kernel_width],
            };
            prep.finish(saved, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(output))
}

/// The frozen-weight convolution's backward step.
#[derive(Debug)]
struct FrozenConv;

/// What the convolution's backward step needs: the weight, the options, and the input's
/// and kernel's spatial sizes (to resolve the transposed convolution's output padding).
#[derive(Debug, Clone)]
struct SavedConv {
    weight: FlexTensor,
    options: ConvOptions<2>,
    input_size: [usize; 2],
    kernel: [usize; 2],
}

impl Backward<Flex, 1> for FrozenConv {
    type State = SavedConv;

    fn backward(self, ops: Ops<SavedConv, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let d_out = grads.consume::<Flex>(&ops.node);
        let Some(parent) = parent else {
            return;
        };
        let SavedConv {
            weight,
            options,
            input_size,
            kernel,
        } = ops.state;
        let shape = d_out.layout().shape();
        let output_size = [shape[2], shape[3]];
        // The transposed convolution's output is (out − 1)·stride − 2·padding +
        // dilation·(kernel − 1) + 1 + padding_out; padding_out makes it the input's size
        // again when the forward division by the stride had a remainder.
        let padding_out: [usize; 2] = std::array::from_fn(|i| {
            let p = options.padding_begin()[i];
            let covered = (output_size[i] - 1) * options.stride[i]
                + options.dilation[i] * (kernel[i] - 1)
                + 1;
            (input_size[i] + 2 * p).saturating_sub(covered)
        });
        let transposed = ConvTransposeOptions::new(
            options.stride,
            options.padding_begin(),
            padding_out,
            options.dilation,
            options.groups,
        );
        let d_x = <Flex as ModuleOps<Flex>>::conv_transpose2d(d_out, weight, None, transposed);
        grads.register::<Flex>(parent.id, d_x);
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
