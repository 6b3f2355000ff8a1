//! ftfy's mojibake heuristic (`ftfy.badness.is_bad`): does the text contain one of the
//! character sequences that are far likelier to be mojibake than intended text?
//!
//! ftfy writes this as one regular expression over ~400 categorised characters; only
//! whether it matches anywhere matters to `fix_text`, so each alternative is checked at each
//! position over the character classes of [`chars::classes`].

use super::chars::{self, class::*};

const ACCENTED: u32 = LOWER_ACCENTED | UPPER_ACCENTED;
const PUNCT: u32 = START_PUNCT | END_PUNCT;

/// Whether ftfy 6.3.1's `is_bad` is true for `text`.
pub(super) fn is_bad(text: &str) -> bool {
    // Every alternative involves at least one classified (non-ASCII) character.
    if text.is_ascii() {
        return false;
    }
    let chars: Vec<char> = text.chars().collect();
    let classes: Vec<u32> = chars.iter().map(|&c| chars::classes(c)).collect();
    (0..chars.len()).any(|i| bad_at(&chars, &classes, i))
}

fn bad_at(s: &[char], k: &[u32], i: usize) -> bool {
    // Class tests at offsets from `i`, false past the end.
    let has = |o: usize, mask: u32| k.get(i + o).is_some_and(|&m| m & mask != 0);
    let ch = |o: usize| s.get(i + o).copied();
    let is = |o: usize, f: &dyn Fn(char) -> bool| ch(o).is_some_and(f);
    let one_of = |o: usize, set: &str| ch(o).is_some_and(|c| set.contains(c));
    let lower = |c: char| c.is_ascii_lowercase();

    has(0, C1)
        || (has(0, BAD | ACCENTED | BOX | PUNCT | CURRENCY | NUMERIC | LAW) && has(1, BAD))
        || (is(0, &|c| c.is_ascii_alphabetic())
            && has(1, LOWER_COMMON | UPPER_COMMON)
            && has(2, BAD))
        || (has(0, BAD) && has(1, ACCENTED | BOX | PUNCT | CURRENCY | NUMERIC | LAW))
        || (has(
            0,
            LOWER_ACCENTED | LOWER_COMMON | BOX | END_PUNCT | CURRENCY | NUMERIC,
        ) && has(1, UPPER_ACCENTED))
        || (has(0, BOX | END_PUNCT | CURRENCY | NUMERIC) && has(1, LOWER_ACCENTED))
        || (has(0, LOWER_ACCENTED | BOX | END_PUNCT) && has(1, CURRENCY))
        || (is(0, &chars::is_py_space) && has(1, UPPER_ACCENTED) && has(2, CURRENCY))
        || (has(0, UPPER_ACCENTED | BOX) && has(1, NUMERIC | LAW))
        || (has(0, ACCENTED | BOX | CURRENCY | END_PUNCT) && has(1, START_PUNCT) && has(2, NUMERIC))
        || (has(0, ACCENTED | CURRENCY | NUMERIC | BOX | LAW)
            && has(1, END_PUNCT)
            && has(2, START_PUNCT))
        || (has(0, CURRENCY | NUMERIC | BOX) && has(1, START_PUNCT))
        || (is(0, &lower) && has(1, UPPER_ACCENTED) && has(2, START_PUNCT | CURRENCY))
        || (has(0, BOX) && has(1, KAOMOJI))
        || (has(0, ACCENTED | CURRENCY | NUMERIC | PUNCT | LAW) && has(1, BOX))
        || (has(0, BOX) && has(1, END_PUNCT))
        || (has(0, ACCENTED) && has(1, PUNCT) && is(2, &chars::is_word))
        || (one_of(0, "Œœ") && is(1, &|c| !c.is_ascii_alphabetic()))
        || (has(0, UPPER_ACCENTED) && ch(1) == Some('°'))
        || (one_of(0, "ÂÃÎÐ") && (one_of(1, "€œŠš¢£Ÿž\u{a0}\u{ad}®©°·»–—´") || has(1, PUNCT)))
        || (ch(0) == Some('×') && one_of(1, "²³"))
        || (one_of(0, "ØÙ") && ardent(s, k, i + 1) && one_of(2, "ØÙ") && ardent(s, k, i + 3))
        || (ch(0) == Some('à') && one_of(1, "²µ¹¼½¾"))
        || (ch(0) == Some('√') && one_of(1, "±∂†≠®™´≤≥¥µø"))
        || (ch(0) == Some('≈') && one_of(1, "°¢"))
        || (ch(0) == Some('‚') && ch(1) == Some('Ä') && one_of(2, "ìîïòôúùû†°¢π"))
        || (ch(0) == Some('‚') && one_of(1, "âó") && one_of(2, "àä°ê"))
        || (ch(0) == Some('в') && ch(1) == Some('Ђ'))
        || (one_of(0, "ВГРС")
            && (has(1, C1 | BAD | PUNCT | CURRENCY) || one_of(1, "°µ"))
            && one_of(2, "ВГРС"))
        || (s[i..].starts_with(&['Г', 'ў', 'В', 'Ђ', 'В'])
            && is(5, &|c| c != '\n')
            && is(6, &|c| c.is_ascii_alphabetic() || c == ' '))
        || (ch(0) == Some('Ã') && one_of(1, "\u{a0}¡"))
        || (is(0, &lower) && one_of(1, "ÃÂ") && ch(2) == Some(' '))
        || (is(0, &lower) && is(1, &chars::is_py_space) && one_of(2, "ÃÂ") && ch(3) == Some(' '))
        || (i == 0 && one_of(0, "ÃÂ") && ch(1) == Some(' '))
        || ((is(0, &|c| c.is_ascii_lowercase() || ".,?!".contains(c)) || has(0, END_PUNCT))
            && ch(1) == Some('Â')
            && (ch(2) == Some(' ') || has(2, PUNCT)))
        || (ch(0) == Some('β') && ch(1) == Some('€') && one_of(2, "™\u{a0}Ά\u{ad}®°"))
        || (one_of(0, "ΒΓΞΟ")
            && (has(1, C1 | BAD | PUNCT | CURRENCY) || ch(1) == Some('°'))
            && one_of(2, "ΒΓΞΟ"))
        || (ch(0) == Some('ā') && ch(1) == Some('€'))
}

/// The second class of the `[ØÙ][…][ØÙ][…]` alternative (Arabic read as Windows-1252).
fn ardent(s: &[char], k: &[u32], j: usize) -> bool {
    k.get(j)
        .is_some_and(|&m| m & (COMMON | CURRENCY | BAD | NUMERIC | START_PUNCT) != 0)
        || s.get(j).is_some_and(|&c| "ŸŠ®°µ»".contains(c))
}

#[cfg(test)]
mod tests {
    use super::is_bad;

    #[test]
    fn mojibake_is_bad() {
        // `ftfy.badness.is_bad` on each (ftfy 6.3.1).
        for bad in [
            "cafÃ©",
            "âœ” No problems",
            "Ã ",
            "Ã©",
            "ÐŸÑ€Ð¸Ð²ÐµÑ‚",
            "\u{80}",
            "sÃ³",
        ] {
            assert!(is_bad(bad), "{bad:?}");
        }
        for good in [
            "café",
            "naïve",
            "",
            "plain ascii",
            "日本語",
            "“quoted”",
            "× 2",
            "Ünïcödé",
        ] {
            assert!(!is_bad(good), "{good:?}");
        }
    }
}
