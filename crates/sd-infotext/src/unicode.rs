//! Python's `str.strip()` and `int()` of a run of `\d` characters, over the character classes
//! of [`sd_prompt::unicode`] (the same tables A1111's prompt regexes need).

pub(super) use sd_prompt::unicode::{decimal_value, is_space, is_word};

/// Python `str.strip()`.
pub(super) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python `int(s)` for a string of `\d` characters only (what `re_imagesize` captures);
/// `None` where Python would raise or the value does not fit.
pub(super) fn py_int_digits(s: &str) -> Option<i64> {
    let s = py_strip(s);
    if s.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for c in s.chars() {
        let d = decimal_value(c)?;
        value = value.checked_mul(10)?.checked_add(i64::from(d))?;
    }
    Some(value)
}
