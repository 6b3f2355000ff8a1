//! The numbers of the prompt language, read exactly as A1111 reads them.
//!
//! * The `when` of prompt editing is lark's `common.SIGNED_NUMBER` (ASCII digits, optional
//!   exponent), matched by lark's dynamic lexer as one regex match, then `float()`-ed.
//! * The weight of `(text:weight)` is `re_attention`'s `[+-]?[.\d]+` (Unicode digits) and the
//!   weight of an AND subprompt is `re_weight`'s `[-+]?(?:\d+\.?|\d*\.\d+)`; both go through
//!   Python's `float()`, which reads any Unicode decimal digit.

use crate::unicode::{decimal_value, is_space};

/// Length in bytes of lark's `SIGNED_NUMBER` match at the start of `s`, if any.
///
/// lark orders the alternatives as `INT _EXP | DECIMAL _EXP? | INT` and Python's `re` takes
/// the first that matches, which for this grammar is the longest number-shaped prefix.
fn lark_number_len(s: &[u8]) -> Option<usize> {
    let digits = |from: usize| {
        s[from.min(s.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let exponent = |from: usize| -> usize {
        if from < s.len() && matches!(s[from], b'e' | b'E') {
            let mut at = from + 1;
            if at < s.len() && matches!(s[at], b'+' | b'-') {
                at += 1;
            }
            let n = digits(at);
            if n > 0 {
                return at + n - from;
            }
        }
        0
    };
    let mut at = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let int = digits(at);
    if at + int < s.len() && s[at + int] == b'.' {
        let frac = digits(at + int + 1);
        if int == 0 && frac == 0 {
            return None;
        }
        at += int + 1 + frac;
        return Some(at + exponent(at));
    }
    if int == 0 {
        return None;
    }
    at += int;
    Some(at + exponent(at))
}

/// Python's `float()` of an ASCII number that is already known to be well formed.
fn float_ascii(s: &str) -> f64 {
    // Rust's parser wants a digit on each side of the point; Python's does not.
    let mut t = String::with_capacity(s.len() + 2);
    let mut prev_digit = false;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'.' {
            if !prev_digit {
                t.push('0');
            }
            t.push('.');
            if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                t.push('0');
            }
        } else {
            t.push(char::from(b));
        }
        prev_digit = b.is_ascii_digit();
    }
    t.parse().unwrap_or(f64::NAN)
}

/// The `when` of `[from:to:when]`: the segment must be `[WHITESPACE] NUMBER [WHITESPACE]`.
/// Returns the number's byte range within `seg`, its value and whether it holds a `.`.
pub(crate) fn parse_when(seg: &str) -> Option<(usize, usize, f64, bool)> {
    let start = seg.len() - seg.trim_start_matches(is_space).len();
    let len = lark_number_len(&seg.as_bytes()[start..])?;
    let end = start + len;
    if !seg[end..].chars().all(is_space) {
        return None;
    }
    let text = &seg[start..end];
    Some((start, end, float_ascii(text), text.contains('.')))
}

/// Python's `float()` of a string of optional sign, Unicode decimal digits and dots, or
/// `None` where `float()` raises (`"."`, `"1.2.3"`).
pub(crate) fn parse_python_decimal(s: &str) -> Option<f64> {
    let mut ascii = String::with_capacity(s.len());
    let mut dots = 0;
    let mut digits = 0;
    for (i, c) in s.char_indices() {
        match c {
            '+' | '-' if i == 0 => ascii.push(c),
            '.' => {
                dots += 1;
                ascii.push('.');
            }
            _ => {
                ascii.push(char::from(b'0' + decimal_value(c)?));
                digits += 1;
            }
        }
    }
    (dots <= 1 && digits > 0).then(|| float_ascii(&ascii))
}

/// Whether `c` is in `re_attention`'s `[.\d]`.
pub(crate) fn is_dot_or_decimal(c: char) -> bool {
    c == '.' || decimal_value(c).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lark_numbers() {
        for (s, n) in [
            ("3", 1),
            ("-3", 2),
            ("+.5", 3),
            ("5.", 2),
            ("1e5", 3),
            ("1e", 1),
            ("1.5e-3x", 6),
            ("5.e3", 4),
        ] {
            assert_eq!(lark_number_len(s.as_bytes()), Some(n), "{s}");
        }
        for s in [".", "-", "e5", "", "+"] {
            assert_eq!(lark_number_len(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn python_float() {
        assert_eq!(float_ascii("5."), 5.0);
        assert_eq!(float_ascii("+.5"), 0.5);
        assert_eq!(float_ascii("5.e3"), 5000.0);
        assert_eq!(parse_python_decimal("\u{0661}.\u{0665}"), Some(1.5));
        assert_eq!(parse_python_decimal("1.2.3"), None);
        assert_eq!(parse_python_decimal("-."), None);
        assert_eq!(parse_when(" 0.25 "), Some((1, 5, 0.25, true)));
        assert_eq!(parse_when("1 x"), None);
    }
}
