//! Python's `int()` and `float()` of a string, for the settings A1111 reads with them (the
//! learning-rate schedules' numbers, extra-network multipliers): surrounding white space,
//! signs, PEP 515 underscores, `inf`/`nan` spellings, and nothing Rust accepts beyond them.

/// Python's `str.isspace()` for the characters `int()`/`float()`/`strip()` skip: Unicode
/// White_Space plus the ASCII separators U+001C..U+001F that Python also counts.
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` of the characters it counts as white space.
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(python_space)
}

/// Python's PEP 515 underscores: only single ones between two digits. Returns the text
/// without them, or `None` if one is misplaced.
fn strip_underscores(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        if c == '_' {
            let before = i > 0 && b[i - 1].is_ascii_digit();
            let after = b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(before && after) {
                return None;
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Python's `int(text)` in base 10 (ASCII digits only; Python also takes other Unicode
/// decimal digits). Saturates far beyond any step count instead of growing unboundedly.
pub fn python_int(text: &str) -> Option<i128> {
    let t = strip_underscores(python_strip(text))?;
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, &t[..]),
    };
    if digits.is_empty() || !digits.bytes().all(|d| d.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for d in digits.bytes() {
        v = v.saturating_mul(10).saturating_add(i128::from(d - b'0'));
    }
    Some(if neg { -v } else { v })
}

/// Python's `float(text)`: decimal or exponent notation, `inf`/`infinity`/`nan` with a sign,
/// surrounding whitespace and PEP 515 underscores.
pub fn python_float(text: &str) -> Option<f64> {
    let t = strip_underscores(python_strip(text))?;
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(&t);
    // Rust also accepts these words, but only Python's spellings may pass.
    if unsigned
        .bytes()
        .any(|c| c.is_ascii_alphabetic() && !matches!(c, b'e' | b'E'))
    {
        let word = unsigned.to_ascii_lowercase();
        if !matches!(word.as_str(), "inf" | "infinity" | "nan") {
            return None;
        }
    }
    t.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_numbers_parse_as_int_and_float_do() {
        assert_eq!(python_int(" +1_000 "), Some(1000));
        assert_eq!(python_int("-1"), Some(-1));
        assert_eq!(python_int("010"), Some(10));
        assert_eq!(python_int("1e3"), None);
        assert_eq!(python_int("1__0"), None);
        assert_eq!(python_int("_1"), None);
        assert_eq!(python_float("1e-5"), Some(1e-5));
        assert_eq!(python_float(".5"), Some(0.5));
        assert_eq!(python_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(python_float("nan").is_some_and(f64::is_nan));
        assert_eq!(python_float("0x10"), None);
        assert_eq!(python_float("abc"), None);
        assert_eq!(python_float(""), None);
    }
}
