//! Character predicates with Python's exact definitions, over the generated [`tables`].
//!
//! Python (3.11, Unicode 14.0) and Rust disagree at the edges of Unicode: `re`'s `\w` is
//! `str.isalnum()` (letters and numbers by general category, not Rust's Alphabetic property),
//! `str.isspace()` counts U+001C..U+001F, and `str.lower()` leaves characters assigned after
//! Unicode 14 alone. These helpers follow Python.

use super::tables::{self, CLASSES, DECIMAL, LOWERED, WORD};

/// ftfy's character classes, one bit each (the order of [`tables::CLASSES`]).
pub(super) mod class {
    pub const COMMON: u32 = 1 << 0;
    pub const C1: u32 = 1 << 1;
    pub const BAD: u32 = 1 << 2;
    pub const LAW: u32 = 1 << 3;
    pub const CURRENCY: u32 = 1 << 4;
    pub const START_PUNCT: u32 = 1 << 5;
    pub const END_PUNCT: u32 = 1 << 6;
    pub const NUMERIC: u32 = 1 << 7;
    pub const KAOMOJI: u32 = 1 << 8;
    pub const UPPER_ACCENTED: u32 = 1 << 9;
    pub const LOWER_ACCENTED: u32 = 1 << 10;
    pub const UPPER_COMMON: u32 = 1 << 11;
    pub const LOWER_COMMON: u32 = 1 << 12;
    pub const BOX: u32 = 1 << 13;
    pub const FIRST_OF_2: u32 = 1 << 14;
    pub const FIRST_OF_3: u32 = 1 << 15;
    pub const FIRST_OF_4: u32 = 1 << 16;
    pub const CONTINUATION: u32 = 1 << 17;
    pub const CONTINUATION_STRICT: u32 = 1 << 18;
}

/// The ftfy classes `c` belongs to (0 for almost every character).
pub(super) fn classes(c: char) -> u32 {
    let c = c as u32;
    // Every classified character is in U+0080..U+FFFF.
    if !(0x80..0x1_0000).contains(&c) {
        return 0;
    }
    CLASSES
        .binary_search_by_key(&c, |&(k, _)| k)
        .map_or(0, |i| CLASSES[i].1)
}

fn in_ranges(ranges: &[(u32, u32)], c: u32) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Python `re`'s `\w` on a `str`.
pub(super) fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || (!c.is_ascii() && in_ranges(WORD, c as u32))
}

/// Python `re`'s `\d` on a `str` (`str.isdecimal()`).
pub(super) fn is_decimal(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && in_ranges(DECIMAL, c as u32))
}

/// Python's `str.isspace()`, which is also `re`'s `\s`: Unicode White_Space plus the four
/// information separators U+001C..U+001F.
pub(super) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The `regex` module's `\s` (what the tokenizers' `whitespace_clean` uses): Unicode
/// White_Space, which is Rust's [`char::is_whitespace`].
pub(super) fn is_regex_space(c: char) -> bool {
    c.is_whitespace()
}

/// Whether Python 3.11's `str.lower()` changes `c`.
pub(super) fn python_lowers(c: char) -> bool {
    let c = c as u32;
    let i = LOWERED.partition_point(|&(first, _, _)| first <= c);
    i > 0 && {
        let (first, last, step) = LOWERED[i - 1];
        c <= last && (c - first).is_multiple_of(step)
    }
}

/// Python's `str.lower()`: Rust's full lower-casing (special casing and final sigma included),
/// applied only to the characters Python's Unicode 14 tables lower-case.
pub fn python_lower(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    // `str::to_lowercase` maps each character to a fixed number of characters (final sigma
    // only chooses between σ and ς), so its output aligns with the input char by char.
    let lowered = text.to_lowercase();
    let mut lowered = lowered.chars();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let n = c.to_lowercase().count();
        if python_lowers(c) {
            out.extend(lowered.by_ref().take(n));
        } else {
            out.push(c);
            lowered.by_ref().take(n).for_each(drop);
        }
    }
    out
}

/// Code points `html.unescape` drops from numeric references.
pub(super) fn is_invalid_codepoint(c: u32) -> bool {
    in_ranges(tables::INVALID_CODEPOINTS, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_space_and_word() {
        assert!(is_py_space('\u{1c}') && !is_regex_space('\u{1c}'));
        assert!(is_regex_space('\u{3000}') && is_py_space('\u{a0}'));
        assert!(!is_regex_space('\u{200b}'));
        assert!(is_word('é') && is_word('_') && is_word('٣') && is_word('一'));
        // Rust calls circled letters alphabetic; Python's isalnum does not.
        assert!('Ⓐ'.is_alphabetic() && !is_word('Ⓐ'));
        assert!(is_decimal('٣') && !is_decimal('²'));
    }

    #[test]
    fn lower_like_python() {
        assert_eq!(
            python_lower("ÉCOLE İ ΣΊΣΥΦΟΣ ẞ"),
            "école i\u{307} σίσυφος ß"
        );
        assert_eq!(python_lower("ΟΔΟΣ Σ"), "οδος σ");
        // U+A7CB (Unicode 15.0) has no lower-case in Python 3.11.
        assert_eq!(python_lower("\u{a7cb}"), "\u{a7cb}");
        assert!(!python_lowers('\u{a7cb}') && python_lowers('A') && !python_lowers('a'));
    }
}
