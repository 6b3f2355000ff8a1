//! A1111's `quote` and `unquote` (`modules/infotext_utils.py`): a value holding `,`, `:` or a
//! newline is written as a JSON string (`json.dumps(text, ensure_ascii=False)`), and a value
//! in double quotes is read back with `json.loads`, or kept as written where that fails.

use std::borrow::Cow;

/// A1111's `quote`: the value as is, or as a JSON string where it holds `,`, `:` or `\n`.
pub fn quote(text: &str) -> Cow<'_, str> {
    if !text.contains([',', '\n', ':']) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(json_dumps(text, false))
}

/// Python's `json.dumps(text, ensure_ascii=...)`: escapes `"`, `\` and control characters
/// below U+0020 (`\n`, `\r`, `\t`, `\b`, `\f` by name, the rest as `\u00XX`), and with
/// `ensure_ascii` every non-ASCII character too, as UTF-16 `\uXXXX` units. Shared with the
/// embedding JSON of image embeddings, which A1111 writes with `ensure_ascii=True`.
pub fn json_dumps(text: &str, ensure_ascii: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if ensure_ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A1111's `unquote`: a value that starts and ends with `"` is decoded as a JSON string;
/// anything else, or a JSON error, gives the text back unchanged.
///
/// One difference: Python keeps a lone surrogate escape (`"\ud800"`) as a lone surrogate,
/// which a Rust string cannot hold; such a value is kept as written.
pub fn unquote(text: &str) -> Cow<'_, str> {
    if !(text.starts_with('"') && text.ends_with('"')) {
        return Cow::Borrowed(text);
    }
    match json_string(text) {
        Some(s) => Cow::Owned(s),
        None => Cow::Borrowed(text),
    }
}

/// `json.loads` of a document that starts with `"`: the string, or `None` where Python
/// raises (bad escape, raw control character, anything after the closing quote).
fn json_string(text: &str) -> Option<String> {
    let mut chars = text.chars();
    if chars.next()? != '"' {
        return None;
    }
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => break,
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                '/' => out.push('/'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hi = hex4(&mut chars)?;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        // A high surrogate pairs with a following `\uDC00`..`\uDFFF`.
                        let mut look = chars.clone();
                        if look.next() != Some('\\') || look.next() != Some('u') {
                            return None;
                        }
                        let lo = hex4(&mut look)?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return None;
                        }
                        chars = look;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    out.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            // strict=True: raw control characters are "Invalid control character".
            c if u32::from(c) < 0x20 => return None,
            c => out.push(c),
        }
    }
    // "Extra data" after the string (trailing whitespace would be allowed, but the text ends
    // with the quote that closed it or with more data).
    if chars.all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
        Some(out)
    } else {
        None
    }
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_json_dumps() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a, b"), "\"a, b\"");
        assert_eq!(quote("k: \"v\"\n\\"), "\"k: \\\"v\\\"\\n\\\\\"");
        assert_eq!(quote("é,\u{1}"), "\"é,\\u0001\"");
    }

    #[test]
    fn unquote_round_trips_and_keeps_bad_json() {
        for s in ["a, b", "k: \"v\"\n\\", "é,\u{1}\u{7f}", "😀:"] {
            assert_eq!(unquote(&quote(s)), s);
        }
        assert_eq!(unquote("\"\\ud83d\\ude00\""), "😀");
        assert_eq!(unquote("\"a\"b\""), "\"a\"b\"");
        assert_eq!(unquote("\""), "\"");
        assert_eq!(unquote("\"\\ud800\""), "\"\\ud800\"");
        assert_eq!(unquote("\"\\q\""), "\"\\q\"");
    }
}
