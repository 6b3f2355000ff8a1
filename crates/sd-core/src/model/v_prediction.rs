//! Telling SD 2.x ε-prediction (512) from v-prediction (768-v) checkpoints, which have the
//! same tensors: A1111's `is_using_v_parameterization_for_sd2` test.

use burn::tensor::{Device, Tensor};
use sd_unet::{UNet2DConditionModel, UNetError};

/// Runs the UNet once on a constant input, as A1111 does: latent `[1, 4, 8, 8]` of 0.5,
/// timestep 999, a 2-token context of 0.5. At the noisiest timestep an ε-model returns
/// roughly the noise (mean of `out − x` near 0); a v-model returns roughly `−x₀`-weighted
/// velocity, and `mean(out − x) < −1` marks it.
///
/// # Errors
/// When the UNet refuses the input (it cannot for an SD 2.x architecture).
pub(crate) fn is_v_prediction(
    unet: &UNet2DConditionModel,
    context_dim: usize,
    device: &Device,
) -> Result<bool, UNetError> {
    let x: Tensor<4> = Tensor::ones([1, 4, 8, 8], device).mul_scalar(0.5);
    let context: Tensor<3> = Tensor::ones([1, 2, context_dim], device).mul_scalar(0.5);
    let t: Tensor<1> = Tensor::from_floats([999.0], device);
    let out = unet.forward(x.clone(), t, context)?;
    let mean: f32 = (out - x).mean().into_scalar();
    Ok(mean < -1.0)
}
