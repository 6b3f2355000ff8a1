//! LMS: linear multistep in σ (k-diffusion `sample_lms`, `linear_multistep_coeff`).

use burn::tensor::Tensor;

use super::{Ctx, Stop, to_d};

/// ∫ from t[i] to t[i+1] of the Lagrange basis polynomial j through t[i], t[i-1], ...
///
/// k-diffusion integrates it with `scipy.integrate.quad` (epsrel 1e-4); the integrand is a
/// polynomial of degree < 4, which quad's 21-point Gauss–Kronrod rule integrates exactly on
/// its first pass, so an exact 4-point Gauss–Legendre rule gives the same number. The
/// denominators are differences of the float32 σ array, computed in float32 as numpy does.
fn linear_multistep_coeff(order: usize, t: &[f32], i: usize, j: usize) -> f64 {
    let f = |tau: f64| -> f64 {
        let mut prod = 1.0;
        for k in 0..order {
            if j == k {
                continue;
            }
            let denom = (t[i - j] - t[i - k]) as f64;
            prod *= (tau - t[i - k] as f64) / denom;
        }
        prod
    };
    // Gauss–Legendre, 4 nodes: exact for degree <= 7.
    const NODES: [(f64, f64); 4] = [
        (-0.861_136_311_594_052_6, 0.347_854_845_137_453_85),
        (-0.339_981_043_584_856_26, 0.652_145_154_862_546_1),
        (0.339_981_043_584_856_26, 0.652_145_154_862_546_1),
        (0.861_136_311_594_052_6, 0.347_854_845_137_453_85),
    ];
    let (a, b) = (t[i] as f64, t[i + 1] as f64);
    let (half, mid) = ((b - a) / 2.0, (a + b) / 2.0);
    NODES
        .iter()
        .map(|(x, w)| w * f(mid + half * x))
        .sum::<f64>()
        * half
}

/// "LMS" of order 4.
pub(crate) fn sample_lms<E>(
    ctx: &mut Ctx<'_, E>,
    mut x: Tensor<4>,
    sigmas: &[f32],
    order: usize,
) -> Result<Tensor<4>, Stop<E>> {
    let mut ds: Vec<Tensor<4>> = Vec::new();
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        let d = to_d(&x, sigmas[i], &denoised);
        ds.push(d);
        if ds.len() > order {
            ds.remove(0);
        }
        ctx.report(i, sigmas[i], sigmas[i], &x, &denoised)?;
        let cur_order = (i + 1).min(order);
        // Python's sum() starts from 0 and adds coeff_j * ds[-1-j] in order.
        let mut acc: Option<Tensor<4>> = None;
        for (j, d) in ds.iter().rev().enumerate().take(cur_order) {
            let c = linear_multistep_coeff(cur_order, sigmas, i, j);
            let term = d.clone().mul_scalar(c);
            acc = Some(match acc {
                None => term,
                Some(a) => a + term,
            });
        }
        if let Some(a) = acc {
            x = x + a;
        }
    }
    Ok(x)
}
