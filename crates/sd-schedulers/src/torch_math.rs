//! Host-side helpers that reproduce how torch and numpy compute the few vectors schedules are
//! made of, so our sigmas land on the same float32 values as k-diffusion's.

/// `torch.linspace(start, end, n)` in float32: torch's CPU kernel fills the first half as
/// `start + i * step` and the second half as `end - (n - 1 - i) * step` (both ends exact).
pub(crate) fn linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (n - 1) as f32;
            let half = n / 2;
            (0..n)
                .map(|i| {
                    if i < half {
                        start + step * i as f32
                    } else {
                        end - step * (n - 1 - i) as f32
                    }
                })
                .collect()
        }
    }
}

/// `torch.linspace(..., dtype=torch.float64)`, same algorithm as [`linspace_f32`].
pub(crate) fn linspace_f64(start: f64, end: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (n - 1) as f64;
            let half = n / 2;
            (0..n)
                .map(|i| {
                    if i < half {
                        start + step * i as f64
                    } else {
                        end - step * (n - 1 - i) as f64
                    }
                })
                .collect()
        }
    }
}

/// `numpy.linspace(start, stop, num)` (endpoint=True): `i * step + start`, last value `stop`.
pub(crate) fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
            v[num - 1] = stop;
            v
        }
    }
}

/// `numpy.interp(x, xp, fp)` for increasing `xp`, as numpy's C loop computes it.
pub(crate) fn np_interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if x <= xp[0] {
        return fp[0];
    }
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    let j = xp.partition_point(|&v| v <= x) - 1;
    if xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function I_x(a, b).
pub(crate) fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The quantile function of the Beta(a, b) distribution (`scipy.stats.beta.ppf`), found by
/// bisection on [`beta_cdf`] to the last bit of an f64.
pub(crate) fn beta_ppf(q: f64, a: f64, b: f64) -> f64 {
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if beta_cdf(mid, a, b) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_hits_both_ends() {
        let v = linspace_f32(999.0, 0.0, 7);
        assert_eq!(v[0], 999.0);
        assert_eq!(v[6], 0.0);
        assert_eq!(linspace_f32(3.0, 5.0, 1), vec![3.0]);
    }

    #[test]
    fn beta_ppf_inverts_the_cdf() {
        // scipy 1.17.1: stats.beta.ppf(0.3, 0.6, 0.6) = 0.23401700387523572; symmetric at 0.5.
        assert!((beta_ppf(0.3, 0.6, 0.6) - 0.234_017_003_875_235_72).abs() < 1e-12);
        assert!((beta_ppf(0.5, 0.6, 0.6) - 0.5).abs() < 1e-12);
        for q in [0.01, 0.2, 0.7, 0.99] {
            let x = beta_ppf(q, 0.6, 0.6);
            assert!((beta_cdf(x, 0.6, 0.6) - q).abs() < 1e-12);
        }
    }
}
