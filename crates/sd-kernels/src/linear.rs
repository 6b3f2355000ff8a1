//! Linear layers (`x · w + b` over the last dimension) through this crate's matrix product
//! where it runs (f32 on burn's CPU backend at inference, at least [`MIN_ROWS`] rows) and
//! through burn's `Linear` everywhere else (other backends, autodiff).
//!
//! SD's projections have a short inner dimension (320 to 1280): burn-flex's product (the
//! `gemm` crate) reaches about half of the machine's peak there, the packed micro-kernel of
//! this crate about three quarters.

use burn::nn::Linear;
use burn::tensor::Tensor;

/// The fewest rows (tokens × batch) worth packing the weight for.
pub const MIN_ROWS: usize = 32;

/// `linear(x)`, for `x: [..., d_input]`: the same values as `linear.forward(x)` (within f32
/// rounding: the sums run in another order).
///
/// ```
/// use burn::nn::LinearConfig;
/// use burn::tensor::{Device, Distribution, Tensor};
///
/// let device = Device::default();
/// let layer = LinearConfig::new(64, 96).init(&device);
/// let x = Tensor::<3>::random([2, 77, 64], Distribution::Default, &device);
/// assert_eq!(sd_kernels::linear(&layer, x).dims(), [2, 77, 96]);
/// ```
pub fn linear<const D: usize>(linear: &Linear, x: Tensor<D>) -> Tensor<D> {
    match on_cpu(linear, &x) {
        Some(out) => out,
        None => linear.forward(x),
    }
}

/// The CPU kernel's result, where it applies.
#[cfg(feature = "flex")]
fn on_cpu<const D: usize>(linear: &Linear, x: &Tensor<D>) -> Option<Tensor<D>> {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::TensorData;

    use crate::cpu::matmul::matmul;
    use crate::cpu::{contiguous_f32, kernels_take, values};

    let device = x.device();
    if !kernels_take(&device, x.dtype()) {
        return None;
    }
    let dims = x.dims();
    let inner = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let weight = linear.weight.val();
    let [d_input, d_output] = weight.dims();
    let bias_fits = linear
        .bias
        .as_ref()
        .is_none_or(|b| b.val().dims() == [d_output]);
    if rows < MIN_ROWS || d_input != inner || !bias_fits {
        return None;
    }
    let primitive = |t: FlexTensor| contiguous_f32(&t);
    let x = primitive(x.clone().try_into_primitive::<Flex>().ok()?);
    let weight = primitive(weight.try_into_primitive::<Flex>().ok()?);
    let bias = match &linear.bias {
        Some(bias) => Some(primitive(bias.val().try_into_primitive::<Flex>().ok()?)),
        None => None,
    };
    let out = matmul(
        values(&x),
        rows,
        inner,
        values(&weight),
        d_output,
        bias.as_ref().map(values),
    );
    let mut out_dims = dims;
    out_dims[D - 1] = d_output;
    Some(Tensor::from_data(TensorData::new(out, out_dims), &device))
}

/// Without the CPU backend there is no CPU kernel.
#[cfg(not(feature = "flex"))]
fn on_cpu<const D: usize>(_: &Linear, _: &Tensor<D>) -> Option<Tensor<D>> {
    None
}

// The tests check the CPU kernel path against burn's ops, so they need the CPU backend.
#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution};

    use super::*;

    /// Equal to burn's `Linear` within f32 rounding, with and without bias, and burn's own
    /// path below [`MIN_ROWS`] rows and under autodiff.
    #[test]
    fn matches_burns_linear() {
        let device = Device::flex();
        for bias in [true, false] {
            let layer = LinearConfig::new(320, 200).with_bias(bias).init(&device);
            let x = Tensor::<3>::random([2, 50, 320], Distribution::Default, &device);
            let ours = on_cpu(&layer, &x).expect("the CPU kernel");
            let expected = layer.forward(x);
            let err: f32 = (ours - expected).abs().max().into_scalar();
            assert!(err < 1e-5, "bias {bias}: error {err:e}");
        }
        // A bias of the wrong length (a broken file) is left to burn, not indexed out of range.
        let mut layer = LinearConfig::new(8, 4).init(&device);
        let x = Tensor::<2>::random([64, 8], Distribution::Default, &device);
        layer.bias = layer.bias.map(|p| p.map(|_| Tensor::zeros([3], &device)));
        assert!(on_cpu(&layer, &x).is_none());
        let layer = LinearConfig::new(8, 4).init(&device);
        let few = Tensor::<2>::random([MIN_ROWS - 1, 8], Distribution::Default, &device);
        assert!(on_cpu(&layer, &few).is_none());
        let autodiff = Device::flex().autodiff();
        let layer = LinearConfig::new(8, 4).init(&autodiff);
        let x = Tensor::<2>::random([64, 8], Distribution::Default, &autodiff);
        assert!(on_cpu(&layer, &x).is_none());
    }
}
