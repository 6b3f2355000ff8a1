//! HTML character references: Python's `html.unescape` (what OpenCLIP applies twice) and
//! ftfy's stricter `unescape_html` (a fix step of `fix_text`).
//!
//! The named references are Python's `html.entities.html5` (with and without `;`), bundled
//! as `assets/html5_entities.txt` together with ftfy's extra all-caps forms (`&EACUTE;`).

use std::{collections::HashMap, sync::OnceLock};

use super::{chars, tables::INVALID_CHARREFS};

const ENTITIES: &str = include_str!("../../assets/html5_entities.txt");

struct Entities {
    /// `html.entities.html5`: name (with its `;` where it has one) → text.
    html5: HashMap<&'static str, String>,
    /// ftfy's `HTML_ENTITIES`: `&name;` (the html5 names that end in `;`, and their
    /// all-caps forms) → text.
    ftfy: HashMap<String, String>,
}

fn entities() -> &'static Entities {
    static TABLE: OnceLock<Entities> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut html5 = HashMap::new();
        let mut ftfy = HashMap::new();
        for line in ENTITIES.lines() {
            let Some((name, hex)) = line.split_once(' ') else {
                continue;
            };
            let value: String = hex
                .split(',')
                .filter_map(|h| u32::from_str_radix(h, 16).ok().and_then(char::from_u32))
                .collect();
            if let Some(upper) = name.strip_prefix('!') {
                ftfy.insert(format!("&{upper}"), value);
            } else {
                if name.ends_with(';') {
                    ftfy.insert(format!("&{name}"), value.clone());
                }
                html5.insert(name, value);
            }
        }
        Entities { html5, ftfy }
    })
}

/// Python's `html.unescape`: every `&name;`, `&name` (the longest known prefix), `&#NN;` and
/// `&#xHH;` (the `;` optional) replaced as HTML5 says, numeric references included
/// (Windows-1252 for 0x80..=0x9F, U+FFFD for 0, surrogates and out-of-range values, nothing
/// for the non-characters and most C0/C1 controls).
///
/// One deliberate difference: Python raises `ValueError` on a decimal reference of more than
/// 4 300 digits (its integer-parsing limit); here it becomes U+FFFD like any other
/// out-of-range number.
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match charref(after) {
            Some((len, replacement)) => {
                out.push_str(&replacement);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The reference starting right after a `&`: its length in bytes and its replacement, or
/// `None` where Python's pattern does not match.
fn charref(s: &str) -> Option<(usize, String)> {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'#') {
        let (digits_start, radix) = match bytes.get(1) {
            Some(b'x' | b'X') if bytes.get(2).is_some_and(u8::is_ascii_hexdigit) => (2, 16),
            Some(b) if b.is_ascii_digit() => (1, 10),
            _ => return None,
        };
        let digits = bytes[digits_start..]
            .iter()
            .take_while(|b| {
                if radix == 16 {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
            .count();
        let end = digits_start + digits;
        let len = end + usize::from(bytes.get(end) == Some(&b';'));
        let num = parse_number(&s[digits_start..end], radix);
        return Some((len, numeric_replacement(num)));
    }
    // `[^\t\n\f <&#;]{1,32};?`, counted in characters.
    let mut name_len = 0;
    for (count, (i, c)) in s.char_indices().enumerate() {
        if count == 32 || matches!(c, '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';') {
            break;
        }
        name_len = i + c.len_utf8();
    }
    if name_len == 0 {
        return None;
    }
    let len = name_len + usize::from(s[name_len..].starts_with(';'));
    let name = &s[..len];
    let html5 = &entities().html5;
    if let Some(value) = html5.get(name) {
        return Some((len, value.clone()));
    }
    // The longest known prefix of at least two characters, the rest kept as it is.
    let cuts: Vec<usize> = name.char_indices().map(|(i, _)| i).skip(2).collect();
    for &cut in cuts.iter().rev() {
        if let Some(value) = html5.get(&name[..cut]) {
            return Some((len, format!("{value}{}", &name[cut..])));
        }
    }
    Some((len, format!("&{name}")))
}

/// The value of a run of digits, saturated far above U+10FFFF.
fn parse_number(digits: &str, radix: u32) -> u64 {
    digits.chars().fold(0u64, |n, d| {
        let d = u64::from(d.to_digit(radix).unwrap_or(0));
        n.saturating_mul(u64::from(radix))
            .saturating_add(d)
            .min(1 << 40)
    })
}

fn numeric_replacement(num: u64) -> String {
    if let Ok(i) = INVALID_CHARREFS.binary_search_by_key(&num, |&(k, _)| u64::from(k)) {
        return char::from_u32(INVALID_CHARREFS[i].1)
            .map(String::from)
            .unwrap_or_default();
    }
    let Some(c) = u32::try_from(num).ok().and_then(char::from_u32) else {
        // Surrogates and numbers past U+10FFFF.
        return '\u{fffd}'.into();
    };
    if chars::is_invalid_codepoint(c as u32) {
        String::new()
    } else {
        c.into()
    }
}

/// ftfy's `unescape_html`: only `&` + up to 24 ASCII letters and digits (after an optional
/// `#`) + `;` is a candidate; known names (and their all-caps forms, `&EACUTE;` → `É`)
/// and numeric references that decode completely are replaced, the rest stays.
pub fn ftfy_unescape_html(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let candidate = &rest[amp..];
        let b = candidate.as_bytes();
        let start = 1 + usize::from(b.get(1) == Some(&b'#'));
        let run = b[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if (1..=24).contains(&run) && b.get(start + run) == Some(&b';') {
            let entity = &candidate[..start + run + 1];
            out.push_str(&ftfy_entity(entity));
            rest = &candidate[entity.len()..];
        } else {
            out.push('&');
            rest = &candidate[1..];
        }
    }
    out.push_str(rest);
    out
}

fn ftfy_entity(entity: &str) -> String {
    if let Some(value) = entities().ftfy.get(entity) {
        return value.clone();
    }
    if entity.starts_with("&#") {
        let unescaped = html_unescape(entity);
        if !unescaped.contains(';') {
            return unescaped;
        }
    }
    entity.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_html_unescape() {
        // Expected values from Python 3.11's html.unescape.
        let cases = [
            ("&amp;", "&"),
            ("&amp", "&"),
            ("&ampx", "&x"),
            ("&notit;", "¬it;"),
            ("&notin;", "∉"),
            ("&#65;&#x41;&#X41", "AAA"),
            ("&#128;&#0;&#13;", "€\u{fffd}\r"),
            (
                "&#1;x&#xD800;&#x110000;&#99999999999999999999;",
                "x\u{fffd}\u{fffd}\u{fffd}",
            ),
            ("&#xFFFE;&#65534", ""),
            ("&;&#;&#x;& amp;", "&;&#;&#x;& amp;"),
            ("&NotEqualTilde;", "\u{2242}\u{338}"),
            ("&eacuteé", "éé"),
            ("&unknown;", "&unknown;"),
            ("a && b", "a && b"),
        ];
        for (input, want) in cases {
            assert_eq!(html_unescape(input), want, "{input:?}");
        }
    }

    #[test]
    fn ftfy_unescape() {
        // Expected values from ftfy 6.3.1's fixes.unescape_html.
        let cases = [
            ("&lt;tag&gt;", "<tag>"),
            ("P&EACUTE;REZ", "PÉREZ"),
            ("BUNDESSTRA&SZLIG;E", "BUNDESSTRASSE"),
            ("&ntilde; &Ntilde; &NTILDE; &nTILDE;", "ñ Ñ Ñ &nTILDE;"),
            ("this&not that &amp", "this&not that &amp"),
            ("&#x2019;&#8217;&#65a;", "’’&#65a;"),
            ("&#128;", "€"),
        ];
        for (input, want) in cases {
            assert_eq!(ftfy_unescape_html(input), want, "{input:?}");
        }
    }
}
