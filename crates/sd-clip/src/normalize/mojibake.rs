//! ftfy's `fix_encoding`: undo text that was encoded in UTF-8 and decoded in a single-byte
//! codec (`cafÃ©` → `café`), step by step until nothing changes.
//!
//! One step (ftfy's `_fix_encoding_one_step_and_explain`): ASCII text and text that does not
//! look bad ([`badness::is_bad`]) stay; else the first of ftfy's single-byte codecs that can
//! encode the whole text and whose bytes (after `restore_byte_a0` and, for the sloppy codecs,
//! `replace_lossy_sequences`) decode as UTF-8 wins; else mojibake embedded in good text is
//! fixed piece by piece (`decode_inconsistent_utf8`); else C1 controls are read as
//! Windows-1252.

use super::{
    badness::is_bad,
    chars::{self, class},
    encoding::{self, Codec},
    fixes,
};

/// How many steps one `fix_encoding` takes at most. ftfy loops until nothing changes, which
/// takes a handful of steps; the cap only guards against a cycle.
const MAX_STEPS: usize = 64;

/// ftfy 6.3.1's `fix_encoding` with its default settings.
pub(super) fn fix_encoding(text: &str) -> String {
    let mut text = text.to_owned();
    for _ in 0..MAX_STEPS {
        match one_step(&text) {
            Some(fixed) if fixed != text => text = fixed,
            _ => break,
        }
    }
    text
}

/// One step; `None` when the text stays as it is.
fn one_step(text: &str) -> Option<String> {
    if text.is_ascii() || !is_bad(text) {
        return None;
    }
    let mut latin1_possible = false;
    for codec in Codec::TRIED {
        let Some(mut bytes) = codec.encode(text) else {
            continue;
        };
        latin1_possible |= codec == Codec::Latin1;
        if codec != Codec::MacRoman && encoding::has_altered_utf8(&bytes) {
            bytes = encoding::restore_byte_a0(&bytes);
        }
        if codec.is_sloppy() {
            bytes = encoding::replace_lossy_sequences(&bytes);
        }
        if let Some(fixed) = encoding::decode_utf8_variants(&bytes) {
            return Some(fixed);
        }
    }
    if utf8_detector_matches(text) {
        let fixed = decode_inconsistent_utf8(text);
        if fixed != text {
            return Some(fixed);
        }
    }
    // ftfy then asks whether "windows-1252" is among the possible codecs, which lists only
    // "sloppy-windows-1252": the test is never true, so Latin-1 text goes on to strict
    // Windows-1252.
    if latin1_possible
        && let Some(fixed) = Codec::Latin1
            .encode(text)
            .and_then(|bytes| Codec::Windows1252.decode(&bytes))
            .filter(|fixed| fixed != text)
    {
        return Some(fixed);
    }
    if text.chars().any(is_c1) {
        return Some(fixes::fix_c1_controls(text));
    }
    None
}

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

/// ftfy's `decode_inconsistent_utf8`: each stretch that looks like UTF-8 read as a
/// single-byte codec (`UTF8_DETECTOR_RE`), shorter than the whole text and bad, is fixed on
/// its own.
fn decode_inconsistent_utf8(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let len = detector_match(&chars, i);
        if len == 0 {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let piece: String = chars[i..i + len].iter().collect();
        if len < chars.len() && is_bad(&piece) {
            out.push_str(&fix_encoding(&piece));
        } else {
            out.push_str(&piece);
        }
        i += len;
    }
    out
}

fn utf8_detector_matches(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len()).any(|i| detector_match(&chars, i) > 0)
}

/// The length (in characters) of the `UTF8_DETECTOR_RE` match starting at `i`, 0 if none:
/// not right after a strict continuation character, then one or more "lead character +
/// 1..3 continuation characters" groups, each the first alternative that fits.
fn detector_match(s: &[char], i: usize) -> usize {
    if i > 0 && chars::classes(s[i - 1]) & class::CONTINUATION_STRICT != 0 {
        return 0;
    }
    let continuations = |from: usize, n: usize| {
        s.len() >= from + n
            && s[from..from + n]
                .iter()
                .all(|&c| chars::classes(c) & class::CONTINUATION != 0)
    };
    let mut j = i;
    while j < s.len() {
        let lead = chars::classes(s[j]);
        let group = [
            (class::FIRST_OF_2, 1),
            (class::FIRST_OF_3, 2),
            (class::FIRST_OF_4, 3),
        ]
        .into_iter()
        .find(|&(first, n)| lead & first != 0 && continuations(j + 1, n));
        match group {
            Some((_, n)) => j += 1 + n,
            None => break,
        }
    }
    j - i
}

#[cfg(test)]
mod tests {
    use super::fix_encoding;

    #[test]
    fn fixes_mojibake_like_ftfy() {
        // ftfy 6.3.1's fix_encoding on each.
        let cases = [
            ("sÃ³", "só"),
            ("cafÃ©", "café"),
            ("voilÃ le travail", "voilà le travail"),
            ("âœ” No problems", "✔ No problems"),
            ("â€œ like this â€\u{fffd}", "“ like this \u{fffd}"),
            ("ÐŸÑ€Ð¸Ð²ÐµÑ‚", "Привет"),
            ("Ã³ and cafÃ©", "ó and café"),
            ("&ATILDE;&SUP3;", "&ATILDE;&SUP3;"),
            ("café", "café"),
            ("\u{80}x", "€x"),
            ("í\u{a0}½í²©", "\u{1f4a9}"),
        ];
        for (input, want) in cases {
            assert_eq!(fix_encoding(input), want, "{input:?}");
        }
    }
}
