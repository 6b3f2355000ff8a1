//! The scalar side of a UniPC step: φ-functions of the log-SNR step, the B(h) variants'
//! ρ vectors and the `vary_coeff` variant's inverted Taylor matrices.
//!
//! Computed in float32 in the reference's operation order (where it matters: the φ recursion
//! cancels), except the small linear solves, which LAPACK does in float32 with its own
//! operation order; we solve in float64 and round, which agrees to a few ulp.

use super::Variant;

/// `torch.pow(r, n)` of a float32 tensor: torch multiplies for n ≤ 3, else calls `pow`.
fn pow_n(r: f32, n: usize) -> f32 {
    match n {
        0 => 1.0,
        1 => r,
        2 => r * r,
        3 => r * r * r,
        _ => r.powf(n as f32),
    }
}

/// `1 / k!` as the reference writes it: a Python float, rounded to float32 when it meets a
/// float32 tensor.
fn inv_factorial(k_factorial: f64) -> f32 {
    (1.0 / k_factorial) as f32
}

/// The B(h) variants' coefficients of one step (`multistep_uni_pc_bh_update`).
pub(crate) struct BhCoefficients {
    /// `h_phi_1` = e^{hh} − 1.
    pub(crate) h_phi_1: f32,
    /// `B_h`: hh for bh1, e^{hh} − 1 for bh2.
    pub(crate) b_h: f32,
    /// The predictor's weights of the divided differences (`rhos_p`; none at order 1).
    pub(crate) rhos_p: Vec<f32>,
    /// The corrector's weights (`rhos_c`): one per divided difference, then D1_t's.
    pub(crate) rhos_c: Vec<f32>,
}

/// `hh` = −h (data prediction), `rks` the step ratios of the older points, then 1.
pub(crate) fn bh(variant: Variant, hh: f32, rks: &[f32]) -> BhCoefficients {
    let order = rks.len();
    let h_phi_1 = hh.exp_m1();
    let b_h = match variant {
        Variant::Bh2 => hh.exp_m1(),
        _ => hh,
    };
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let mut factorial = 1f64;
    let mut r = Vec::with_capacity(order);
    let mut b = Vec::with_capacity(order);
    for i in 1..=order {
        r.push(rks.iter().map(|&v| pow_n(v, i - 1)).collect::<Vec<f32>>());
        b.push(h_phi_k * factorial as f32 / b_h);
        factorial *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - inv_factorial(factorial);
    }
    let rhos_p = match order {
        1 => Vec::new(),
        // "for order 2, we use a simplified version"
        2 => vec![0.5],
        _ => solve(
            &r[..order - 1]
                .iter()
                .map(|row| row[..order - 1].to_vec())
                .collect::<Vec<_>>(),
            &b[..order - 1],
        ),
    };
    let rhos_c = if order == 1 { vec![0.5] } else { solve(&r, &b) };
    BhCoefficients {
        h_phi_1,
        b_h,
        rhos_p,
        rhos_c,
    }
}

/// The `vary_coeff` variant's coefficients of one step (`multistep_uni_pc_vary_update`).
pub(crate) struct VaryCoefficients {
    /// `h_phi_ks`: h·φ_1(h), then each `h_phi_k / hh − 1/k!` (K + 1 values).
    pub(crate) h_phi_ks: Vec<f32>,
    /// The predictor's matrix, `inv(C[:-1, :-1])` (empty at order 1).
    pub(crate) a_p: Vec<Vec<f32>>,
    /// The corrector's matrix, `inv(C)`.
    pub(crate) a_c: Vec<Vec<f32>>,
}

/// `hh` = −h, `rks` the step ratios of the older points, then 1.
pub(crate) fn vary(hh: f32, rks: &[f32]) -> VaryCoefficients {
    let k_len = rks.len();
    // C[i][k] = rks_i^k / (k+1)!, built column by column as `col * rks / (k + 1)`.
    let mut c = vec![vec![0f32; k_len]; k_len];
    let mut col = vec![1f32; k_len];
    for k in 1..=k_len {
        for (i, row) in c.iter_mut().enumerate() {
            row[k - 1] = col[i];
        }
        col = col
            .iter()
            .zip(rks)
            .map(|(c, r)| c * r / (k + 1) as f32)
            .collect();
    }
    let a_p = if k_len > 1 {
        inverse(
            &c[..k_len - 1]
                .iter()
                .map(|row| row[..k_len - 1].to_vec())
                .collect::<Vec<_>>(),
        )
    } else {
        Vec::new()
    };
    let a_c = inverse(&c);
    let mut h_phi_ks = Vec::with_capacity(k_len + 1);
    let mut h_phi_k = hh.exp_m1();
    let mut factorial = 1f64;
    for k in 1..=k_len + 1 {
        h_phi_ks.push(h_phi_k);
        h_phi_k = h_phi_k / hh - inv_factorial(factorial);
        factorial *= (k + 1) as f64;
    }
    VaryCoefficients { h_phi_ks, a_p, a_c }
}

/// Solves `a · x = b` (Gaussian elimination with partial pivoting, in float64).
fn solve(a: &[Vec<f32>], b: &[f32]) -> Vec<f32> {
    let n = b.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(row, &bi)| {
            row.iter()
                .map(|&v| v as f64)
                .chain(std::iter::once(bi as f64))
                .collect()
        })
        .collect();
    eliminate(&mut m, n);
    m.iter().map(|row| row[n] as f32).collect()
}

/// `torch.linalg.inv` (Gauss–Jordan with partial pivoting, in float64).
fn inverse(a: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let n = a.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .map(|&v| v as f64)
                .chain((0..n).map(|j| if i == j { 1.0 } else { 0.0 }))
                .collect()
        })
        .collect();
    eliminate(&mut m, n);
    m.iter()
        .map(|row| row[n..].iter().map(|&v| v as f32).collect())
        .collect()
}

/// Reduces the augmented `n`-row matrix `m` to `[I | A⁻¹·rest]` (Gauss–Jordan).
fn eliminate(m: &mut [Vec<f64>], n: usize) {
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        let p = m[col][col];
        for v in m[col].iter_mut() {
            *v /= p;
        }
        let pivot_row = m[col].clone();
        for (i, row) in m.iter_mut().enumerate() {
            if i != col {
                let f = row[col];
                for (v, pv) in row.iter_mut().zip(&pivot_row) {
                    *v -= f * pv;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_and_inverse_agree() {
        let a = vec![
            vec![1.0, 1.0, 1.0],
            vec![-1.0, -2.0, 1.0],
            vec![1.0, 4.0, 1.0],
        ];
        let x = solve(&a, &[1.0, 2.0, 3.0]);
        let inv = inverse(&a);
        for i in 0..3 {
            let via_inv: f32 = (0..3).map(|j| inv[i][j] * [1.0, 2.0, 3.0][j]).sum();
            assert!((x[i] - via_inv).abs() < 1e-5);
        }
        // a · x = b
        for (row, b) in a.iter().zip([1.0, 2.0, 3.0]) {
            let ax: f32 = row.iter().zip(&x).map(|(r, x)| r * x).sum();
            assert!((ax - b).abs() < 1e-5);
        }
    }

    #[test]
    fn first_order_bh_is_the_trapezoid_corrector() {
        let c = bh(Variant::Bh1, -0.3, &[1.0]);
        assert!(c.rhos_p.is_empty());
        assert_eq!(c.rhos_c, vec![0.5]);
        assert_eq!(c.b_h, -0.3);
    }
}
