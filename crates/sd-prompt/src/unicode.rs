//! Python's `re` character classes for `str` patterns (`\s`, `\w`, `\d`), which A1111's
//! regexes (`re_AND`, `re_weight`, `re_break`, `re_attention`) and lark's `WHITESPACE`
//! terminal use. Rust's `char::is_whitespace` and `char::is_alphanumeric` differ from them
//! (Python counts U+001C..U+001F as space and leaves combining marks out of `\w`), so the
//! tables are generated from Python by `tools/prompt_reference.py --unicode-tables`.
//!
//! Public because other A1111 text formats (the infotext parser of `sd-infotext`) use the same
//! classes.
//!
//! ```
//! use sd_prompt::unicode::{is_space, is_word};
//! assert!(is_space('\x1c') && !is_word('-'));
//! ```

use crate::unicode_tables::{DECIMAL, SPACE, WORD};

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    table
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

/// Python `\s` (`str.isspace()`).
pub fn is_space(c: char) -> bool {
    if c.is_ascii() {
        matches!(c, '\t'..='\r' | '\x1c'..=' ')
    } else {
        in_table(SPACE, c)
    }
}

/// Python `\w` (`str.isalnum()` or `_`), the class behind `\b`.
pub fn is_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        in_table(WORD, c)
    }
}

/// The value of a Python `\d` character (Unicode category Nd), as `float()` reads it.
pub fn decimal_value(c: char) -> Option<u8> {
    if c.is_ascii_digit() {
        return Some(c as u8 - b'0');
    }
    let u = u32::from(c);
    let &(lo, _) = DECIMAL.iter().find(|&&(lo, hi)| lo <= u && u <= hi)?;
    // Each range is whole runs of 0..=9 (the generator asserts it).
    u8::try_from((u - lo) % 10).ok()
}

/// Whether a `\b` boundary lies at byte `at` of `s` (between `s[..at]` and `s[at..]`).
pub fn is_word_boundary(s: &str, at: usize) -> bool {
    let before = s[..at].chars().next_back().is_some_and(is_word);
    let after = s[at..].chars().next().is_some_and(is_word);
    before != after
}

/// `s` without trailing Python whitespace.
pub fn trim_end_space(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_python() {
        // Python: '\x1c'.isspace() is True, '\u200b'.isspace() is False.
        assert!(is_space('\x1c') && is_space('\u{3000}') && !is_space('\u{200b}'));
        // Python: '\u0903'.isalnum() is False (a spacing mark), 'é'.isalnum() is True.
        assert!(!is_word('\u{0903}') && is_word('é') && is_word('_') && !is_word('-'));
        // Python: float('\u0663') == 3.0 (ARABIC-INDIC DIGIT THREE).
        assert_eq!(decimal_value('\u{0663}'), Some(3));
        assert_eq!(decimal_value('½'), None);
    }
}
