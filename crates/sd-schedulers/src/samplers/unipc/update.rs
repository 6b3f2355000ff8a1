//! One multistep UniPC step (`multistep_uni_pc_bh_update` / `multistep_uni_pc_vary_update`,
//! data prediction, no thresholding): the predictor from the stored data predictions, then
//! — except on the last step — one model evaluation at the predicted point and the corrector.

use burn::tensor::Tensor;

use super::coefficients;
use super::vp::VpNoiseSchedule;
use super::{Model, Variant};
use crate::samplers::Stop;

/// What a step returns: the new x and, when the corrector ran, the data prediction at the
/// predictor's x (UniPC reuses it as the next step's newest model value).
pub(crate) struct Stepped {
    pub(crate) x: Tensor<4>,
    pub(crate) model_t: Option<Tensor<4>>,
}

/// Σ_j c_j · t_j (`torch.einsum('k,bkchw->bchw', c, t)`).
fn combine(coeffs: &[f32], tensors: &[Tensor<4>]) -> Option<Tensor<4>> {
    coeffs
        .iter()
        .zip(tensors)
        .map(|(&c, t)| t.clone().mul_scalar(c))
        .reduce(|a, b| a + b)
}

/// One step from `t_prev.last()` to `t` of order `order` (≤ the number of stored points).
#[allow(clippy::too_many_arguments)]
pub(crate) fn step<E>(
    model: &mut Model<'_, '_, E>,
    vp: &VpNoiseSchedule,
    variant: Variant,
    x: &Tensor<4>,
    model_prev: &[Tensor<4>],
    t_prev: &[f32],
    t: f32,
    order: usize,
    use_corrector: bool,
) -> Result<Stepped, Stop<E>> {
    let n = model_prev.len();
    let t_prev_0 = t_prev[n - 1];
    let model_prev_0 = &model_prev[n - 1];
    let lambda_prev_0 = vp.lambda(t_prev_0);
    let lambda_t = vp.lambda(t);
    let (sigma_prev_0, sigma_t) = (vp.std(t_prev_0), vp.std(t));
    let alpha_t = vp.alpha(t);
    let h = lambda_t - lambda_prev_0;

    // The ratios of the older log-SNR steps to this one, and the divided differences.
    let mut rks = Vec::with_capacity(order);
    let mut d1s = Vec::with_capacity(order);
    for i in 1..order {
        let rk = (vp.lambda(t_prev[n - 1 - i]) - lambda_prev_0) / h;
        rks.push(rk);
        d1s.push((model_prev[n - 1 - i].clone() - model_prev_0.clone()).div_scalar(rk));
    }
    rks.push(1.0);
    let hh = -h;

    match variant {
        Variant::Bh1 | Variant::Bh2 => {
            let c = coefficients::bh(variant, hh, &rks);
            let x_t_ = x.clone().mul_scalar(sigma_t / sigma_prev_0)
                - model_prev_0.clone().mul_scalar(alpha_t * c.h_phi_1);
            let scale = alpha_t * c.b_h;
            let x_t = match combine(&c.rhos_p, &d1s) {
                Some(pred_res) => x_t_.clone() - pred_res.mul_scalar(scale),
                None => x_t_.clone(),
            };
            if !use_corrector {
                return Ok(Stepped {
                    x: x_t,
                    model_t: None,
                });
            }
            let model_t = model.data_prediction(&x_t, t)?;
            let d1_t = model_t.clone() - model_prev_0.clone();
            let last = c.rhos_c[c.rhos_c.len() - 1];
            let res = match combine(&c.rhos_c[..c.rhos_c.len() - 1], &d1s) {
                Some(corr_res) => corr_res + d1_t.mul_scalar(last),
                None => d1_t.mul_scalar(last),
            };
            Ok(Stepped {
                x: x_t_ - res.mul_scalar(scale),
                model_t: Some(model_t),
            })
        }
        Variant::VaryCoeff => {
            let k_len = rks.len();
            let c = coefficients::vary(hh, &rks);
            let x_t_ = x.clone().mul_scalar(sigma_t / sigma_prev_0)
                - model_prev_0.clone().mul_scalar(alpha_t * c.h_phi_ks[0]);
            let mut x_t = x_t_.clone();
            for k in 0..k_len - 1 {
                if let Some(r) = combine(&c.a_p[k], &d1s) {
                    x_t = x_t - r.mul_scalar(alpha_t * c.h_phi_ks[k + 1]);
                }
            }
            if !use_corrector {
                return Ok(Stepped {
                    x: x_t,
                    model_t: None,
                });
            }
            let model_t = model.data_prediction(&x_t, t)?;
            let d1_t = model_t.clone() - model_prev_0.clone();
            let mut x_t = x_t_;
            for k in 0..k_len - 1 {
                if let Some(r) = combine(&c.a_c[k][..k_len - 1], &d1s) {
                    x_t = x_t - r.mul_scalar(alpha_t * c.h_phi_ks[k + 1]);
                }
            }
            // uni_pc.py weights D1_t with the last entry of row `k` as its loop left it: row
            // K − 2 (row 0 at order 1), not the last row K − 1. Kept as it is.
            let row = k_len.saturating_sub(2);
            let w = c.a_c[row][k_len - 1];
            x_t = x_t - d1_t.mul_scalar(w).mul_scalar(alpha_t * c.h_phi_ks[k_len]);
            Ok(Stepped {
                x: x_t,
                model_t: Some(model_t),
            })
        }
    }
}
