//! Numbers printed as A1111 prints them: `str()` of the Python value create_infotext holds.

/// Python's `repr(float)` (also `str(float)`): the shortest digits that read back to the same
/// value, positional for decimal exponents -4..=15 (with `.0` when integral), otherwise
/// `1e-05` / `1.5e+16` style; `inf`, `-inf`, `nan`.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` gives the shortest round-trip digits as `d.ddde-N`.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') { s } else { s + ".0" }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

/// A float parameter as A1111 writes it when the value came from its UI: gradio hands an
/// integral slider value over as a JSON integer, so `7.0` is printed `7` and `7.5` is `7.5`.
/// Values of 1e16 and beyond, and non-finite ones, print as Python floats.
pub fn ui_number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
        // Integral and below 2^53-ish: exact as an i64; -0.0 prints as JSON does, "0".
        format!("{}", x as i64)
    } else {
        py_float_repr(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr() {
        // Python 3.11: repr() of each value.
        let cases = [
            (7.0, "7.0"),
            (7.5, "7.5"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (-0.0, "-0.0"),
            (123456789.123, "123456789.123"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(x), want);
        }
        assert_eq!(ui_number(7.0), "7");
        assert_eq!(ui_number(-0.0), "0");
        assert_eq!(ui_number(0.75), "0.75");
    }
}
