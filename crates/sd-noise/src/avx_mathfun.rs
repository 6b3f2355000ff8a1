//! PyTorch's AVX2 `log256_ps` and `sincos256_ps`, one lane at a time, bit for bit.
//!
//! torch's CPU `randn` (see [`super::torch_cpu`]) runs Box-Muller through
//! `aten/src/ATen/native/cpu/avx_mathfun.h` (Julien Pommier's Cephes-based
//! `sse_mathfun`, ported to AVX by Giovanni Garberoglio, zlib licence). The lanes of
//! those routines never interact, so evaluating the same operations on one `f32`
//! gives the same bits as the vector code.
//!
//! The C source writes separate multiplies and adds, but GCC contracts several of
//! them into fused multiply-adds when it builds torch's AVX2 kernels (`-mfma`). The
//! contractions below were read off the disassembly of
//! `NormalFill16<float, true>::operator()` in `libtorch_cpu.so` (torch 2.15.0,
//! x86-64); each `mul_add` marks one `vfmadd*`/`vfmsub*` there. Replacing them with
//! a separate multiply and add changes about one value in three by an ulp or two.

// The constants are given by their bits, copied from the `.rodata` that torch's
// kernel loads, so no decimal-to-float rounding question can arise.

/// `cephes_SQRTHF` (0.70710677): below it the mantissa is doubled so that the
/// polynomial argument stays in [sqrt(1/2) - 1, sqrt(2) - 1].
const SQRTHF: f32 = f32::from_bits(0x3f35_04f3);
/// Cephes `logf` polynomial `cephes_log_p0..p8` (0.070376836 ... 0.33333331),
/// highest degree first.
const LOG_P: [f32; 9] = [
    f32::from_bits(0x3d90_21bb),
    f32::from_bits(0xbdeb_d1b8),
    f32::from_bits(0x3def_251a),
    f32::from_bits(0xbdfe_5d4f),
    f32::from_bits(0x3e11_e9bf),
    f32::from_bits(0xbe2a_ae50),
    f32::from_bits(0x3e4c_ceac),
    f32::from_bits(0xbe7f_fffc),
    f32::from_bits(0x3eaa_aaaa),
];
/// ln 2 split in two (`cephes_log_q1` = -2.1219444e-4, `cephes_log_q2` = 0.693359375)
/// so that `e * ln 2` keeps its precision.
const LOG_Q1: f32 = f32::from_bits(0xb95e_8083);
const LOG_Q2: f32 = f32::from_bits(0x3f31_8000);
/// The smallest normal float: `log256_ps` clamps its input to it.
const MIN_NORM_POS: f32 = f32::MIN_POSITIVE;

/// `cephes_FOPI` = 4 / pi (1.2732395).
const FOPI: f32 = f32::from_bits(0x3fa2_f983);
/// -pi/4 in three parts (`minus_cephes_DP1..3`) for the extended-precision
/// argument reduction.
const DP1: f32 = f32::from_bits(0xbf49_0000);
const DP2: f32 = f32::from_bits(0xb97d_a000);
const DP3: f32 = f32::from_bits(0xb322_2169);
/// Cephes `sinf` polynomial on [-pi/4, pi/4] (`sincof_p0..p2`).
const SINCOF: [f32; 3] = [
    f32::from_bits(0xb94c_a1f9),
    f32::from_bits(0x3c08_839e),
    f32::from_bits(0xbe2a_aaa3),
];
/// Cephes `cosf` polynomial on [-pi/4, pi/4] (`coscof_p0..p2`).
const COSCOF: [f32; 3] = [
    f32::from_bits(0x37cc_f5ce),
    f32::from_bits(0xbab6_061a),
    f32::from_bits(0x3d2a_aaa5),
];

/// A lane kept by a mask, or the +0.0 that `vandps` leaves where the mask is clear.
#[inline]
fn masked(keep: bool, v: f32) -> f32 {
    if keep { v } else { 0.0 }
}

/// Natural logarithm, as torch's `log256_ps` computes one lane (NaN for `x <= 0`).
///
/// ```
/// use sd_noise::avx_log;
/// assert!((avx_log(2.0) - std::f32::consts::LN_2).abs() < 1e-7);
/// assert!(avx_log(-1.0).is_nan());
/// ```
pub fn avx_log(x_in: f32) -> f32 {
    // `_CMP_LE_OS` is false for NaN, so a NaN input falls through the maths below.
    let invalid = x_in <= 0.0;
    // `vmaxps` returns the second operand when the first is NaN.
    let x = if x_in > MIN_NORM_POS {
        x_in
    } else {
        MIN_NORM_POS
    };
    let bits = x.to_bits();
    let exponent = (bits >> 23) as i32 - 0x7f;
    let mut x = f32::from_bits((bits & !0x7f80_0000) | 0.5f32.to_bits());
    let mut e = exponent as f32 + 1.0;
    let below = x < SQRTHF;
    let tmp = masked(below, x);
    x += -1.0;
    e -= masked(below, 1.0);
    x += tmp;
    let z = x * x;
    let mut y = LOG_P[0];
    for &p in &LOG_P[1..] {
        y = y.mul_add(x, p);
    }
    y = (y * x).mul_add(z, e * LOG_Q1);
    y = (-z).mul_add(0.5, y);
    x += y;
    let out = e.mul_add(LOG_Q2, x);
    if invalid {
        f32::from_bits(out.to_bits() | 0xffff_ffff)
    } else {
        out
    }
}

/// Sine and cosine, as torch's `sincos256_ps` computes one lane; returns `(sin, cos)`.
///
/// Accurate for |x| < 8192 (the Cephes reduction); torch only feeds it [0, 2 pi).
///
/// ```
/// use sd_noise::avx_sincos;
/// let (s, c) = avx_sincos(1.0);
/// assert!((s - 1f32.sin()).abs() < 1e-7 && (c - 1f32.cos()).abs() < 1e-7);
/// ```
pub fn avx_sincos(x_in: f32) -> (f32, f32) {
    let mut sign_sin = x_in.to_bits() & 0x8000_0000;
    let x = x_in.abs();
    // `vcvttps2dq`: truncation, with 0x8000_0000 for out-of-range or NaN lanes.
    let scaled = x * FOPI;
    let mut j = if scaled.is_nan() || scaled >= 2_147_483_648.0 {
        i32::MIN
    } else {
        scaled as i32
    };
    j = j.wrapping_add(1) & !1;
    let yf = j as f32;
    let swap_sin = ((j & 4) as u32) << 29;
    let poly_mask = j & 2 == 0;
    sign_sin ^= swap_sin;
    let x = yf.mul_add(DP1, x);
    let x = yf.mul_add(DP2, x);
    let x = yf.mul_add(DP3, x);
    let sign_cos = ((!j.wrapping_sub(2) & 4) as u32) << 29;

    let z = x * x;
    let tmp = z * 0.5;
    let mut yc = COSCOF[0].mul_add(z, COSCOF[1]);
    yc = yc.mul_add(z, COSCOF[2]);
    yc = z.mul_add(z * yc, -tmp);
    yc += 1.0;

    let mut ys = SINCOF[0].mul_add(z, SINCOF[1]);
    ys = ys.mul_add(z, SINCOF[2]);
    ys = x.mul_add(z * ys, x);

    // The blend is done with masks and adds (not a select), which matters for zeros.
    let ysin2 = masked(poly_mask, ys);
    let ysin1 = masked(!poly_mask, yc);
    let yc_rest = yc - ysin1;
    let ys_rest = ys - ysin2;
    let s = ysin1 + ysin2;
    let c = ys_rest + yc_rest;
    (
        f32::from_bits(s.to_bits() ^ sign_sin),
        f32::from_bits(c.to_bits() ^ sign_cos),
    )
}
