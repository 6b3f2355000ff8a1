//! Vectorised elementary functions for the kernels, on any of pulp's SIMD types.

use pulp::Simd;

/// `eˣ` for `x ≤ 0` (the softmax's shifted scores), within 2 ulp; below −87 (and for
/// −∞) it returns 2⁻¹²⁶·eʳ, about 10⁻³⁸, which no sum of at least one `e⁰` can see.
///
/// Cody–Waite: `x = n ln 2 + r` with `|r| ≤ ln 2 / 2`, `eʳ` by the Cephes degree-6
/// polynomial, `2ⁿ` built in the exponent bits.
#[inline(always)]
pub(super) fn exp<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let x = simd.max_f32s(x, simd.splat_f32s(-87.0));
    let shifted = simd.mul_add_e_f32s(x, simd.splat_f32s(LOG2_E), simd.splat_f32s(ROUND));
    let n = simd.sub_f32s(shifted, simd.splat_f32s(ROUND));
    let r = simd.mul_add_e_f32s(n, simd.splat_f32s(-LN2_HI), x);
    let r = simd.mul_add_e_f32s(n, simd.splat_f32s(-LN2_LO), r);
    let mut p = simd.splat_f32s(P[0]);
    for &c in &P[1..] {
        p = simd.mul_add_e_f32s(p, r, simd.splat_f32s(c));
    }
    let r2 = simd.mul_f32s(r, r);
    let e_r = simd.add_f32s(simd.mul_add_e_f32s(p, r2, r), simd.splat_f32s(1.0));
    // The low bits of `shifted` hold n; (n + 127) << 23 is 2ⁿ.
    let n_bits = simd.sub_u32s(
        simd.transmute_u32s_f32s(shifted),
        simd.splat_u32s(ROUND.to_bits()),
    );
    let biased = simd.add_u32s(n_bits, simd.splat_u32s(127));
    let two_n = simd.transmute_f32s_u32s(simd.mul_u32s(biased, simd.splat_u32s(1 << 23)));
    simd.mul_f32s(e_r, two_n)
}

/// `erf(x)` within 1.5 × 10⁻⁷ (absolute), by Abramowitz & Stegun 7.1.26:
/// `1 − (a₁t + … + a₅t⁵)·e^(−x²)` with `t = 1 / (1 + p|x|)`, odd in `x`.
#[inline(always)]
pub(super) fn erf<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        1.061_405_4,
        -1.453_152_1,
        1.421_413_8,
        -0.284_496_74,
        0.254_829_6,
    ];
    let sign_bit = simd.splat_u32s(0x8000_0000);
    let bits = simd.transmute_u32s_f32s(x);
    let sign = simd.and_u32s(bits, sign_bit);
    let magnitude = simd.abs_f32s(x);
    let one = simd.splat_f32s(1.0);
    let t = simd.div_f32s(one, simd.mul_add_e_f32s(simd.splat_f32s(P), magnitude, one));
    let mut poly = simd.splat_f32s(A[0]);
    for &a in &A[1..] {
        poly = simd.mul_add_e_f32s(poly, t, simd.splat_f32s(a));
    }
    poly = simd.mul_f32s(poly, t);
    let squared = simd.mul_f32s(magnitude, magnitude);
    let decay = exp(simd, simd.sub_f32s(simd.splat_f32s(0.0), squared));
    let positive = simd.sub_f32s(one, simd.mul_f32s(poly, decay));
    simd.transmute_f32s_u32s(simd.or_u32s(simd.transmute_u32s_f32s(positive), sign))
}
