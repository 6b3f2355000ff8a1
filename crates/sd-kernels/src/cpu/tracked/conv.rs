//! The convolution of frozen weights as one graph operation that keeps only the weight (which
//! the module holds anyway), not its input; its backward step is the input gradient, a
//! transposed convolution. Both run by Winograd where [`winograd_shape`] allows (and
//! [`convolution_3x3`] is Winograd), else by burn's own ops.

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
use burn::tensor::{DType, Tensor};

use crate::conv::{Convolution3x3, convolution_3x3};
use crate::cpu::winograd::{KernelOrientation, conv3x3_flex, winograd_shape};

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
    let options = conv_options(conv)?;
    conv_on::<NoCheckpointing>(x, &weight, bias.as_ref(), &options)
        .or_else(|| conv_on::<BalancedCheckpointing>(x, &weight, bias.as_ref(), &options))
}

/// The options of `conv`: `None` for asymmetric or `Same` padding.
pub(crate) fn conv_options(conv: &Conv2d) -> Option<ConvOptions<2>> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return None,
    };
    Some(ConvOptions::new(
        conv.stride,
        padding,
        conv.dilation,
        conv.groups,
    ))
}

/// Whether the Winograd kernel is chosen.
fn winograd_chosen() -> bool {
    convolution_3x3() == Convolution3x3::Winograd
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
    let bias_len = bias.map(|b| b.dims()[0]);
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
    let x_dims = x.dims();
    let [_, _, height, width] = x_dims;
    let [_, _, kernel_height, kernel_width] = weight_dims;
    let x = x.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?;
    let out = match winograd_shape(x_dims, weight_dims, bias_len, options)
        .filter(|_| winograd_chosen())
    {
        Some(shape) => conv3x3_flex(
            x.primitive(),
            shape,
            &weight,
            KernelOrientation::Forward,
            bias.as_ref(),
        ),
        None => <Flex as ModuleOps<Flex>>::conv2d(
            x.primitive().clone(),
            weight.clone(),
            bias,
            options.clone(),
        ),
    };
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
        let [out_channels, in_channels] = [weight.layout().shape()[0], weight.layout().shape()[1]];
        // The input gradient is itself a stride-1, padding-1 3×3 convolution (of the output
        // gradient, with the kernel turned and transposed) where the forward one was.
        let gradient_shape = winograd_shape(
            [shape[0], shape[1], shape[2], shape[3]],
            [in_channels, out_channels, kernel[0], kernel[1]],
            None,
            &options,
        );
        if let Some(gradient_shape) = gradient_shape.filter(|_| winograd_chosen()) {
            let d_x = conv3x3_flex(
                &d_out,
                gradient_shape,
                &weight,
                KernelOrientation::Transposed,
                None,
            );
            grads.register::<Flex>(parent.id, d_x);
            return;
        }
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
