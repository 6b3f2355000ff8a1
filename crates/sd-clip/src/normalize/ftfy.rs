//! ftfy 6.3.1's `fix_text` with its default `TextFixerConfig` (`ftfy/__init__.py`).
//!
//! The text is fixed line by line (each segment ends after a `\n`, or after 1 000 000
//! characters). HTML entities are unescaped only until a segment containing `<` is seen
//! (then ftfy assumes the text is HTML and leaves every later segment's entities alone).
//! Each segment goes through the fixes below, in this order, again and again until a pass
//! changes nothing: `unescape_html`, `fix_encoding`, `fix_c1_controls`,
//! `fix_latin_ligatures`, `fix_character_width`, `uncurl_quotes`, `fix_line_breaks`,
//! `fix_surrogates` (nothing to do: a Rust `str` holds no surrogates),
//! `remove_terminal_escapes`, `remove_control_chars`, then NFC.

use unicode_normalization::UnicodeNormalization;

use super::{fixes, html, mojibake};

/// ftfy's `max_decode_length`: the longest segment, in characters.
const MAX_SEGMENT_CHARS: usize = 1_000_000;

/// How many passes a segment gets at most. ftfy loops until a pass changes nothing, which
/// takes two or three passes; the cap only guards against a cycle.
const MAX_PASSES: usize = 64;

/// ftfy 6.3.1's `fix_text(text)` with the default settings (see the module docs).
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for line in text.split_inclusive('\n') {
        for segment in segments(line) {
            if segment.contains('<') {
                unescape = false;
            }
            out.push_str(&fix_segment(segment, unescape));
        }
    }
    out
}

/// `line` cut into pieces of at most [`MAX_SEGMENT_CHARS`] characters.
fn segments(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = line;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest
            .char_indices()
            .nth(MAX_SEGMENT_CHARS)
            .map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// ftfy's `fix_and_explain` on one segment.
fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_owned();
    for _ in 0..MAX_PASSES {
        let fixed = fix_pass(&text, unescape);
        if fixed == text {
            break;
        }
        text = fixed;
    }
    text
}

fn fix_pass(text: &str, unescape: bool) -> String {
    let mut text = if unescape {
        html::ftfy_unescape_html(text)
    } else {
        text.to_owned()
    };
    text = mojibake::fix_encoding(&text);
    if text.is_ascii() {
        // Of the character fixes only these two touch ASCII; NFC leaves it alone.
        let text = fixes::fix_line_breaks(&text);
        return fixes::remove_control_chars(&fixes::remove_terminal_escapes(&text));
    }
    text = fixes::fix_c1_controls(&text);
    text = fixes::fix_latin_ligatures(&text);
    text = fixes::fix_character_width(&text);
    text = fixes::uncurl_quotes(&text);
    text = fixes::fix_line_breaks(&text);
    text = fixes::remove_terminal_escapes(&text);
    text = fixes::remove_control_chars(&text);
    text.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::fix_text;

    #[test]
    fn fix_text_like_ftfy() {
        // ftfy 6.3.1's fix_text on each.
        let cases = [
            ("âœ” No problems", "✔ No problems"),
            ("&macr;\\_(ã\u{83}\u{84})_/&macr;", "¯\\_(ツ)_/¯"),
            (
                "Broken text&hellip; it&#x2019;s ﬂubberiﬁc!",
                "Broken text… it's flubberific!",
            ),
            ("ＬＯＵＤ　ＮＯＩＳＥＳ", "LOUD NOISES"),
            ("don’t “quote” cafe\u{301}", "don't \"quote\" café"),
            ("a &amp; b", "a & b"),
            ("<b>a &amp; b</b>", "<b>a &amp; b</b>"),
            ("x &amp;\n<b>\n&amp;", "x &\n<b>\n&amp;"),
            ("&amp;lt;", "<"),
            ("\u{1b}[31mred\u{1b}[0m\r\n", "red\n"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(fix_text(input), want, "{input:?}");
        }
    }

    #[test]
    fn long_lines_stay_linear() {
        let line = "cafÃ© ﬁne “x” &amp; ".repeat(50_000);
        let fixed = fix_text(&line);
        assert!(fixed.starts_with("café fine \"x\" & "));
        // Hostile megabyte lines, one per fix: each takes well under a second when linear.
        let hostile = [
            "Ã".repeat(1 << 20),
            "Ã©".repeat(1 << 19),
            "Ã ".repeat(1 << 19),
            "&".repeat(1 << 20),
            "&#".repeat(1 << 19),
            "&amp".repeat(1 << 18),
            "\u{1b}[".repeat(1 << 19),
            "\u{1b}[1".repeat(1 << 18),
            "ðŸ".repeat(1 << 19),
            "é€".repeat(1 << 19),
            "\u{80}".repeat(1 << 19),
            "\r".repeat(1 << 20),
            "a\u{301}".repeat(1 << 19),
        ];
        for text in hostile {
            let start = std::time::Instant::now();
            let _ = fix_text(&text);
            let _ = super::super::html_unescape(&text);
            let took = start.elapsed();
            let head: String = text.chars().take(2).collect();
            assert!(took.as_secs() < 10, "{head:?}…: {took:?}");
        }
    }
}
