//! ftfy's character-level fixes (`ftfy/fixes.py`), each a pure `&str → String` step of
//! `fix_text`, in the order it applies them after `fix_encoding`.

use std::{collections::HashMap, sync::OnceLock};

use super::{
    chars,
    encoding::Codec,
    tables::{LIGATURES, WIDTH},
};

/// `fix_c1_controls`: each C1 control (U+0080..U+009F) read as its Windows-1252 byte (the
/// five bytes Windows-1252 leaves unassigned stay as they are).
pub(super) fn fix_c1_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{80}'..='\u{9f}' => Codec::SloppyWindows1252.decode_byte(c as u8).unwrap_or(c),
            _ => c,
        })
        .collect()
}

fn translate(
    text: &str,
    table: &'static [(u32, &'static str)],
    cache: &'static OnceLock<HashMap<char, &'static str>>,
) -> String {
    let map = cache.get_or_init(|| {
        table
            .iter()
            .filter_map(|&(k, v)| char::from_u32(k).map(|k| (k, v)))
            .collect()
    });
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match map.get(&c) {
            Some(v) => out.push_str(v),
            None => out.push(c),
        }
    }
    out
}

/// `fix_latin_ligatures`: `ﬁ` → `fi`, `ĳ` → `ij`, `ǆ` → `dž`, … (Latin only).
pub(super) fn fix_latin_ligatures(text: &str) -> String {
    static MAP: OnceLock<HashMap<char, &'static str>> = OnceLock::new();
    if text.is_ascii() {
        return text.to_owned();
    }
    translate(text, LIGATURES, &MAP)
}

/// `fix_character_width`: fullwidth ASCII and halfwidth katakana/Hangul to their usual
/// forms, and U+3000 to a space.
pub(super) fn fix_character_width(text: &str) -> String {
    static MAP: OnceLock<HashMap<char, &'static str>> = OnceLock::new();
    if text.is_ascii() {
        return text.to_owned();
    }
    translate(text, WIDTH, &MAP)
}

/// `uncurl_quotes`: U+2018..U+201B and U+02BC → `'`, U+201C..U+201F → `"`.
pub(super) fn uncurl_quotes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
            '\u{201c}'..='\u{201f}' => '"',
            _ => c,
        })
        .collect()
}

/// `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 → `\n`.
pub(super) fn fix_line_breaks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            _ => out.push(c),
        }
    }
    out
}

/// `remove_terminal_escapes`: ANSI sequences `ESC [ (digit | ;)* letter` (the digits are any
/// Unicode decimal digits, as Python's `\d`).
pub(super) fn remove_terminal_escapes(text: &str) -> String {
    if !text.contains('\u{1b}') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(esc) = rest.find('\u{1b}') {
        out.push_str(&rest[..esc]);
        let after = &rest[esc..];
        match ansi_len(after) {
            Some(len) => rest = &after[len..],
            None => {
                out.push('\u{1b}');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The byte length of the escape sequence at the start of `s` (which starts with ESC).
fn ansi_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\u{1b}[")?;
    let params = body
        .char_indices()
        .find(|&(_, c)| !(chars::is_decimal(c) || c == ';'))
        .map_or(body.len(), |(i, _)| i);
    let last = body[params..].chars().next()?;
    last.is_ascii_alphabetic().then_some(2 + params + 1)
}

/// `remove_control_chars`: U+0000..U+0008, U+000B, U+000E..U+001F, U+007F, U+206A..U+206F,
/// U+FEFF and U+FFF9..U+FFFC are dropped (tabs, line breaks, form feeds, joiners, bidi marks
/// and C1 controls stay).
pub(super) fn remove_control_chars(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            !matches!(
                c,
                '\0'..='\u{8}'
                    | '\u{b}'
                    | '\u{e}'..='\u{1f}'
                    | '\u{7f}'
                    | '\u{206a}'..='\u{206f}'
                    | '\u{feff}'
                    | '\u{fff9}'..='\u{fffc}'
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fix_like_ftfy() {
        // Values from ftfy 6.3.1's fixes module.
        assert_eq!(fix_c1_controls("\u{80}\u{81}\u{93}x\u{94}"), "€\u{81}“x”");
        assert_eq!(fix_latin_ligatures("ﬂuﬃeﬆ ĳ ǅ"), "fluffiest ij Dž");
        assert_eq!(
            fix_character_width("ＬＯＵＤ　ＮＯＩＳＥＳ Ｕﾀｰﾝ"),
            "LOUD NOISES Uターン"
        );
        assert_eq!(
            uncurl_quotes("\u{201c}here\u{2019}s a test\u{201d} ʼ‛"),
            "\"here's a test\" ''"
        );
        assert_eq!(
            fix_line_breaks("a\r\nb\rc\u{2028}d\u{2029}e\u{85}f\n"),
            "a\nb\nc\nd\ne\nf\n"
        );
        assert_eq!(fix_line_breaks("\r\r\n"), "\n\n");
        assert_eq!(
            remove_terminal_escapes("\u{1b}[36;44mI'm blue\u{1b}[0m \u{1b}[٣m \u{1b}[ \u{1b}[1"),
            "I'm blue  \u{1b}[ \u{1b}[1"
        );
        assert_eq!(
            remove_control_chars(
                "a\0\u{7}\t\n\u{c}\r\u{b}\u{1f}\u{7f}\u{85}\u{200d}\u{feff}\u{fffc}\u{fffd}b"
            ),
            "a\t\n\u{c}\r\u{85}\u{200d}\u{fffd}b"
        );
    }
}
