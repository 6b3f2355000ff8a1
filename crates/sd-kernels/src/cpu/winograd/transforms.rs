//! The three transforms of Winograd's F(4×4, 3×3) (Lavin & Gray 2016, interpolation points
//! 0, ±1, ±2 and ∞): a 3×3 kernel `g` becomes `U = G g Gᵀ` (6×6), a 6×6 input tile `d`
//! becomes `V = Bᵀ d B`, and the 6×6 product `M = U ⊙ V` (summed over input channels)
//! becomes the 4×4 output tile `Y = Aᵀ M A`.
//!
//! The input and output transforms work on vectors: entry `(i, j)` of a tile is a slice
//! over channels, so each line below is a loop that the compiler vectorises (the callers
//! run it inside `pulp`'s dispatch, compiled for the CPU's widest SIMD).

/// `G g` for one column (or row) `g` of a 3×3 kernel: 6 values. (Products with the
/// reciprocals, not divisions: this runs for every channel pair of every call.)
#[inline(always)]
pub(super) fn kernel_1d(g: [f32; 3]) -> [f32; 6] {
    const SIXTH: f32 = 1.0 / 6.0;
    const TWELFTH: f32 = 1.0 / 12.0;
    const TWENTY_FOURTH: f32 = 1.0 / 24.0;
    let [g0, g1, g2] = g;
    let outer = g0 * TWENTY_FOURTH + g2 * SIXTH;
    [
        g0 * 0.25,
        -(g0 + g1 + g2) * SIXTH,
        -(g0 - g1 + g2) * SIXTH,
        outer + g1 * TWELFTH,
        outer - g1 * TWELFTH,
        g2,
    ]
}

/// `U = G g Gᵀ` for a 3×3 kernel `g` (row-major), row-major 6×6.
#[inline(always)]
pub(super) fn kernel_2d(g: &[f32; 9]) -> [[f32; 6]; 6] {
    // Columns first: `G g` is 6×3, from the three column transforms.
    let columns: [[f32; 6]; 3] =
        std::array::from_fn(|col| kernel_1d([g[col], g[3 + col], g[6 + col]]));
    let rows: [[f32; 3]; 6] = std::array::from_fn(|row| columns.map(|column| column[row]));
    rows.map(kernel_1d)
}

/// `Bᵀ d` along one line of a tile: six input vectors to six transformed vectors.
#[inline(always)]
pub(super) fn input_1d(d: [&[f32]; 6], out: [&mut [f32]; 6]) {
    let n = out[0].len();
    let [d0, d1, d2, d3, d4, d5] = d.map(|d| &d[..n]);
    let [o0, o1, o2, o3, o4, o5] = out.map(|o| &mut o[..n]);
    for c in 0..n {
        let (x0, x1, x2, x3, x4, x5) = (d0[c], d1[c], d2[c], d3[c], d4[c], d5[c]);
        // Shared sums, as the transform is usually written out.
        let a = x4 - 4.0 * x2;
        let b = x3 - 4.0 * x1;
        let e = x4 - x2;
        let f = 2.0 * (x3 - x1);
        o0[c] = 4.0 * x0 - 5.0 * x2 + x4;
        o1[c] = a + b;
        o2[c] = a - b;
        o3[c] = e + f;
        o4[c] = e - f;
        o5[c] = 4.0 * x1 - 5.0 * x3 + x5;
    }
}

/// `Aᵀ m` along one line of a product tile: six vectors to four output vectors.
#[inline(always)]
pub(super) fn output_1d(m: [&[f32]; 6], out: [&mut [f32]; 4]) {
    let n = out[0].len();
    let [m0, m1, m2, m3, m4, m5] = m.map(|m| &m[..n]);
    let [o0, o1, o2, o3] = out.map(|o| &mut o[..n]);
    for c in 0..n {
        let (x1, x2, x3, x4) = (m1[c], m2[c], m3[c], m4[c]);
        let sum12 = x1 + x2;
        let diff12 = x1 - x2;
        let sum34 = x3 + x4;
        let diff34 = x3 - x4;
        o0[c] = m0[c] + sum12 + sum34;
        o1[c] = diff12 + 2.0 * diff34;
        o2[c] = sum12 + 4.0 * sum34;
        o3[c] = diff12 + 8.0 * diff34 + m5[c];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1-D algorithm F(4, 3): `Aᵀ[(G g) ⊙ (Bᵀ d)]` is the correlation of `d` (6 values)
    /// with `g` (3 values), within f32 rounding.
    #[test]
    fn f4_3_is_a_correlation() {
        let g = [0.3f32, -1.2, 0.7];
        let d = [1.0f32, -2.0, 0.5, 3.0, -0.25, 2.0];
        let u = kernel_1d(g);
        let d: [[f32; 1]; 6] = d.map(|x| [x]);
        let mut v = [[0f32; 1]; 6];
        input_1d(
            std::array::from_fn(|i| &d[i][..]),
            v.each_mut().map(|v| &mut v[..]),
        );
        let m: [[f32; 1]; 6] = std::array::from_fn(|i| [u[i] * v[i][0]]);
        let mut y = [[0f32; 1]; 4];
        output_1d(
            std::array::from_fn(|i| &m[i][..]),
            y.each_mut().map(|y| &mut y[..]),
        );
        let d = d.map(|[x]| x);
        for (i, y) in y.iter().enumerate() {
            let expected: f32 = (0..3).map(|k| d[i + k] * g[k]).sum();
            assert!(
                (y[0] - expected).abs() < 1e-5,
                "{i}: {} vs {expected}",
                y[0]
            );
        }
    }
}
