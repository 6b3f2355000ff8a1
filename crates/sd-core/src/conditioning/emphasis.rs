//! A1111's emphasis (`modules/sd_emphasis.py`): the per-token weights of `(word:1.2)` applied
//! to the text encoder's output.
//!
//! "Original" is `z · w`, then `· mean(z) / mean(z · w)` over the whole batch. Two cases need
//! care beyond A1111's one line:
//! - **Every weight 1.** A1111's ratio is then exactly 1 (torch reduces both means of the same
//!   bits alike), so its output is `z`. Here too, bit for bit, without computing the ratio:
//!   reducing the two means in different orders would turn it into a ratio of two rounding
//!   errors whenever `mean(z)` is ~0 — which it is for every CLIP that ends in a LayerNorm with
//!   bias 0 (any freshly initialised model), and can be for fine-tuned ones.
//! - **`mean(z · w)` below rounding noise.** Then the ratio is noise over noise in A1111 as
//!   well (any sign, any size), and restoring the mean is meaningless: the weights are applied
//!   and the mean is left alone ("No norm"), instead of scaling the conditioning by a random
//!   factor that sends a UNet, and a training loss, to infinity.
//!
//! Elsewhere the result is A1111's formula as written, differentiable in `z` (the ratio too).

use burn::tensor::Tensor;

use super::chunk::Emphasis;

/// Below this fraction of `mean(|z · w|)`, `mean(z · w)` is indistinguishable from f32
/// rounding: a sum of `n` values of size `s` carries errors up to about `√n · 2⁻²⁴ · s` (for a
/// batch of two SD 1.x chunks, `n` = 118 272: ~2e-5 · s). Real checkpoints' conditioning means
/// are 1e-2 to 1e-1 of that scale, far above.
const NOISE_FRACTION: f64 = 1e-4;

/// Applies `emphasis` to `z` with the per-token `weights` (`[batch, tokens]`, row-major).
///
/// # Shapes
/// - `z`: `[batch, tokens, hidden]`
/// - output: `[batch, tokens, hidden]`
pub(crate) fn apply_emphasis(emphasis: Emphasis, z: Tensor<3>, weights: &[f32]) -> Tensor<3> {
    match emphasis {
        Emphasis::None | Emphasis::Ignore => z,
        // `z · 1` is `z`: skip the multiplication when every weight is 1.
        Emphasis::NoNorm | Emphasis::Original if weights.iter().all(|&w| w == 1.0) => z,
        Emphasis::NoNorm => {
            let w = weight_tensor(&z, weights);
            z * w
        }
        Emphasis::Original => {
            let original_mean = z.clone().mean();
            let w = weight_tensor(&z, weights);
            let weighted = z * w;
            let new_mean = weighted.clone().mean();
            if restores_mean(&weighted, &original_mean, &new_mean) {
                let ratio = (original_mean / new_mean).reshape([1, 1, 1]);
                weighted * ratio
            } else {
                tracing::debug!(
                    "emphasis: the weighted conditioning's mean is below rounding noise; \
                     weights applied without restoring the mean"
                );
                weighted
            }
        }
    }
}

/// The weights as a `[batch, tokens, 1]` tensor on `z`'s device.
fn weight_tensor(z: &Tensor<3>, weights: &[f32]) -> Tensor<3> {
    let [batch, tokens, _] = z.dims();
    Tensor::<3>::from_data(
        burn::tensor::TensorData::new(weights.to_vec(), [batch, tokens, 1]),
        &z.device(),
    )
}

/// Whether `mean(z) / mean(z · w)` is a number worth multiplying by: the denominator above
/// rounding noise and the ratio finite (read from the values; no gradient flows through this
/// decision).
fn restores_mean(weighted: &Tensor<3>, original_mean: &Tensor<1>, new_mean: &Tensor<1>) -> bool {
    let scale = f64::from(weighted.clone().abs().mean().into_scalar::<f32>());
    let original = f64::from(original_mean.clone().into_scalar::<f32>());
    let new = f64::from(new_mean.clone().into_scalar::<f32>());
    new.abs() > NOISE_FRACTION * scale && (original / new).is_finite()
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn tensor(values: Vec<f32>, shape: [usize; 3]) -> Tensor<3> {
        Tensor::from_data(TensorData::new(values, shape), &Device::default())
    }

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.to_data().iter::<f32>().collect()
    }

    /// Rows of mean exactly 0 up to rounding: what a LayerNorm with bias 0 gives.
    fn zero_mean_rows(batch: usize, tokens: usize, hidden: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(batch * tokens * hidden);
        for r in 0..batch * tokens {
            let row: Vec<f32> = (0..hidden)
                .map(|i| ((r * 31 + i * 17) as f32 * 0.37).sin() * 1.7)
                .collect();
            let mean = row.iter().sum::<f32>() / hidden as f32;
            v.extend(row.iter().map(|x| x - mean));
        }
        v
    }

    #[test]
    fn unit_weights_leave_z_bit_for_bit() {
        let z = zero_mean_rows(2, 5, 8);
        for emphasis in [Emphasis::Original, Emphasis::NoNorm] {
            let out = apply_emphasis(emphasis, tensor(z.clone(), [2, 5, 8]), &[1.0; 10]);
            assert_eq!(values(out), z);
        }
    }

    #[test]
    fn original_restores_the_mean_as_a1111_writes_it() {
        // A healthy mean (0.5 + ...): A1111's formula, evaluated here in f64.
        let z: Vec<f32> = (0..40).map(|i| 0.5 + (i as f32 * 0.3).sin()).collect();
        let w: Vec<f32> = (0..10).map(|i| 1.0 + 0.1 * i as f32).collect();
        let out = values(apply_emphasis(
            Emphasis::Original,
            tensor(z.clone(), [2, 5, 4]),
            &w,
        ));
        let weighted: Vec<f64> = z
            .iter()
            .enumerate()
            .map(|(i, &v)| f64::from(v) * f64::from(w[i / 4]))
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let z64: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        let ratio = mean(&z64) / mean(&weighted);
        for (o, e) in out.iter().zip(&weighted) {
            // f32 products and means against f64: a few ulps of values up to ~2.6.
            assert!(
                (f64::from(*o) - e * ratio).abs() < 2e-6,
                "{o} vs {}",
                e * ratio
            );
        }
    }

    #[test]
    fn a_noise_level_mean_applies_the_weights_without_rescaling() {
        // Zero-mean rows: mean(z · w) is rounding noise, A1111's ratio would be noise / noise.
        let z = zero_mean_rows(2, 6, 16);
        let w: Vec<f32> = (0..12)
            .map(|i| if i % 3 == 0 { 1.3 } else { 1.0 })
            .collect();
        let out = values(apply_emphasis(
            Emphasis::Original,
            tensor(z.clone(), [2, 6, 16]),
            &w,
        ));
        let weighted = values(tensor(z, [2, 6, 16]) * weight_tensor_for_test(&w, [2, 6, 1]));
        assert_eq!(out, weighted);
    }

    fn weight_tensor_for_test(w: &[f32], shape: [usize; 3]) -> Tensor<3> {
        tensor(w.to_vec(), shape)
    }
}
