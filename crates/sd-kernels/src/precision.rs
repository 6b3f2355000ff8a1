//! Half-precision compute: a network's weights cast to f16 or bf16, and the casts at its
//! edges that let f32 callers use it unchanged (diffusers' `torch_dtype=torch.float16`, with
//! the inputs cast to the weights' type on the way in and the outputs back on the way out).
//!
//! The norms and activations of half-precision tensors run in f32 and round once
//! ([`in_f32`]), as PyTorch's kernels do; the products (linear layers, convolutions,
//! attention) run in the half type through burn's own ops, since this crate's kernels take
//! f32 only.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, FloatDType, Tensor};

/// `tensor` as `dtype`: the tensor itself when it already is (no operation is recorded, so
/// f32 models compute exactly as before) or when `dtype` is not a float type (a quantized
/// weight's), else a cast.
///
/// ```
/// use burn::tensor::{DType, Device, Tensor};
///
/// let x = Tensor::<1>::from_floats([1.0, 2.5], &Device::default());
/// assert_eq!(sd_kernels::precision::to_dtype(x, DType::F32).dtype(), DType::F32);
/// ```
pub fn to_dtype<const D: usize>(tensor: Tensor<D>, dtype: DType) -> Tensor<D> {
    if tensor.dtype() == dtype || !dtype.is_float() {
        tensor
    } else {
        tensor.cast(FloatDType::from(dtype))
    }
}

/// `op(x)` computed in f32 and rounded once to `x`'s type when `x` is f16 or bf16 (PyTorch's
/// kernels compute their elementwise functions and norms in f32 likewise); `op(x)` itself
/// for any other type. burn's composite functions (`silu` is `x · sigmoid(x)`, GELU's
/// erf form, a norm's affine) would otherwise round after every op, which measured about
/// twice PyTorch's f16 error in the VAE.
///
/// ```
/// use burn::tensor::{DType, Device, FloatDType, Tensor};
/// use burn::tensor::activation::silu;
///
/// let x = Tensor::<1>::from_floats([1.0, -2.0], &Device::default()).cast(FloatDType::F16);
/// let y = sd_kernels::precision::in_f32(x, silu);
/// assert_eq!(y.dtype(), DType::F16);
/// ```
pub fn in_f32<const D: usize, const E: usize>(
    x: Tensor<D>,
    op: impl FnOnce(Tensor<D>) -> Tensor<E>,
) -> Tensor<E> {
    match x.dtype() {
        dtype @ (DType::F16 | DType::BF16) => to_dtype(op(to_dtype(x, DType::F32)), dtype),
        _ => op(x),
    }
}

/// `module` with every float parameter cast to `dtype` (parameters already of that type are
/// kept as they are). Whether a parameter wants gradients is kept.
///
/// ```
/// use burn::nn::LinearConfig;
/// use burn::tensor::{DType, Device, FloatDType};
///
/// let layer = LinearConfig::new(4, 2).init(&Device::default());
/// let layer = sd_kernels::precision::cast_params(layer, FloatDType::F16);
/// assert_eq!(layer.weight.val().dtype(), DType::F16);
/// ```
pub fn cast_params<M: Module>(module: M, dtype: FloatDType) -> M {
    module.map(&mut CastParams {
        dtype: DType::from(dtype),
    })
}

/// The [`ModuleMapper`] behind [`cast_params`].
struct CastParams {
    dtype: DType,
}

impl ModuleMapper for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.dtype;
        if param.val().dtype() == dtype {
            return param;
        }
        param.map(|tensor| to_dtype(tensor, dtype))
    }
}
