//! The byte-level machinery of ftfy's `fix_encoding`: the single-byte codecs it tries
//! (Python's, and its "sloppy" Windows codecs that pass unassigned bytes through), its
//! "utf-8-variants" decoder (CESU-8 and Java's `C0 80`), and the two byte transcoders
//! `restore_byte_a0` and `replace_lossy_sequences`.

use std::{collections::HashMap, sync::OnceLock};

use super::tables::{CHARMAP_HIGH, UNDEFINED};

/// The single-byte codecs, in ftfy's order of trying them (`CHARMAP_ENCODINGS`), then the
/// strict Windows-1252 of its Latin-1 fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    Latin1,
    SloppyWindows1252,
    SloppyWindows1251,
    SloppyWindows1250,
    SloppyWindows1253,
    SloppyWindows1254,
    SloppyWindows1257,
    Iso8859_2,
    MacRoman,
    Cp437,
    Windows1252,
}

impl Codec {
    /// ftfy's `CHARMAP_ENCODINGS`, in order.
    pub(super) const TRIED: [Codec; 10] = [
        Codec::Latin1,
        Codec::SloppyWindows1252,
        Codec::SloppyWindows1251,
        Codec::SloppyWindows1250,
        Codec::SloppyWindows1253,
        Codec::SloppyWindows1254,
        Codec::SloppyWindows1257,
        Codec::Iso8859_2,
        Codec::MacRoman,
        Codec::Cp437,
    ];

    pub(super) fn is_sloppy(self) -> bool {
        matches!(
            self,
            Codec::SloppyWindows1252
                | Codec::SloppyWindows1251
                | Codec::SloppyWindows1250
                | Codec::SloppyWindows1253
                | Codec::SloppyWindows1254
                | Codec::SloppyWindows1257
        )
    }

    /// The character byte `b` decodes to, `None` where a strict codec has none.
    pub(super) fn decode_byte(self, b: u8) -> Option<char> {
        if b < 0x80 {
            if b == 0x1a && self.is_sloppy() {
                return Some('\u{fffd}');
            }
            return Some(b as char);
        }
        let code = CHARMAP_HIGH[self as usize][usize::from(b - 0x80)];
        (code != UNDEFINED).then(|| char::from_u32(code)).flatten()
    }

    /// The byte `c` encodes to, `None` where this codec cannot encode it.
    pub(super) fn encode_char(self, c: char) -> Option<u8> {
        if c.is_ascii() && !(c == '\u{1a}' && self.is_sloppy()) {
            return Some(c as u8);
        }
        static MAPS: OnceLock<Vec<HashMap<char, u8>>> = OnceLock::new();
        let maps = MAPS.get_or_init(|| {
            // Indexed by the codec's discriminant, as `CHARMAP_HIGH` is: every codec ftfy
            // tries, and strict Windows-1252.
            let mut maps = vec![HashMap::new(); CHARMAP_HIGH.len()];
            for codec in Codec::TRIED.into_iter().chain([Codec::Windows1252]) {
                maps[codec as usize] = (0x80..=0xffu8)
                    .chain([0x1a])
                    .filter_map(|b| codec.decode_byte(b).map(|c| (c, b)))
                    .filter(|&(c, _)| !c.is_ascii())
                    .collect();
            }
            maps
        });
        maps[self as usize].get(&c).copied()
    }

    /// ftfy's `possible_encoding`: every character of `text` is encodable.
    #[cfg(test)]
    pub(super) fn can_encode(self, text: &str) -> bool {
        text.chars().all(|c| self.encode_char(c).is_some())
    }

    /// `text.encode(codec)`; `None` where a character is not encodable.
    pub(super) fn encode(self, text: &str) -> Option<Vec<u8>> {
        text.chars().map(|c| self.encode_char(c)).collect()
    }

    /// `bytes.decode(codec)` (strict); `None` where a byte is undefined.
    pub(super) fn decode(self, bytes: &[u8]) -> Option<String> {
        bytes.iter().map(|&b| self.decode_byte(b)).collect()
    }
}

/// ftfy's "utf-8-variants" decoder: UTF-8, plus CESU-8 surrogate pairs (six bytes
/// `ED A0..AF 80..BF ED B0..BF 80..BF` for one supplementary character) and Java's `C0 80`
/// for U+0000. Anything else that is not valid UTF-8 (a lone surrogate included) fails.
pub(super) fn decode_utf8_variants(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let special = match bytes[i] {
            0xc0 if bytes.get(i + 1) == Some(&0x80) => Some(('\0', 2)),
            0xed => cesu8_pair(&bytes[i..]).map(|c| (c, 6)),
            _ => None,
        };
        if let Some((c, len)) = special {
            out.push_str(std::str::from_utf8(&bytes[start..i]).ok()?);
            out.push(c);
            i += len;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push_str(std::str::from_utf8(&bytes[start..]).ok()?);
    Some(out)
}

fn cesu8_pair(b: &[u8]) -> Option<char> {
    let ok = b.len() >= 6
        && b[0] == 0xed
        && (0xa0..=0xaf).contains(&b[1])
        && (0x80..=0xbf).contains(&b[2])
        && b[3] == 0xed
        && (0xb0..=0xbf).contains(&b[4])
        && (0x80..=0xbf).contains(&b[5]);
    if !ok {
        return None;
    }
    let code = ((u32::from(b[1]) & 0x0f) << 16)
        + ((u32::from(b[2]) & 0x3f) << 10)
        + ((u32::from(b[4]) & 0x0f) << 6)
        + (u32::from(b[5]) & 0x3f)
        + 0x1_0000;
    char::from_u32(code)
}

fn continuation_but_a0_or_85(b: u8) -> bool {
    matches!(b, 0x80..=0x84 | 0x86..=0x9f | 0xa1..=0xbf)
}

fn continuation(b: u8) -> bool {
    (0x80..=0xbf).contains(&b)
}

/// The length of ftfy's `ALTERED_UTF8_RE` match at the start of `b` (a UTF-8 sequence whose
/// byte A0 became a space), 0 when none.
fn altered_utf8_at(b: &[u8]) -> usize {
    let at = |i: usize| b.get(i).copied();
    let Some(first) = at(0) else { return 0 };
    let is = |i: usize, f: fn(u8) -> bool| at(i).is_some_and(f);
    let space = |i: usize| at(i) == Some(b' ');
    if matches!(first, 0xc2 | 0xc3 | 0xc5 | 0xce | 0xd0 | 0xd9) && space(1) {
        2
    } else if (matches!(first, 0xe2 | 0xe3) && space(1) && is(2, continuation_but_a0_or_85))
        || (matches!(first, 0xe0..=0xe3) && is(1, continuation_but_a0_or_85) && space(2))
    {
        3
    } else if first == 0xf0
        && ((space(1) && is(2, continuation) && is(3, continuation))
            || (is(1, continuation) && space(2) && is(3, continuation))
            || (is(1, continuation) && is(2, continuation) && space(3)))
    {
        4
    } else {
        0
    }
}

/// Whether `ALTERED_UTF8_RE` matches anywhere in `bytes`.
pub(super) fn has_altered_utf8(bytes: &[u8]) -> bool {
    (0..bytes.len()).any(|i| altered_utf8_at(&bytes[i..]) > 0)
}

/// ftfy's `restore_byte_a0`: `C3 20` as a word "à " gets its A0 back, then every space inside
/// an `ALTERED_UTF8_RE` match becomes A0.
pub(super) fn restore_byte_a0(bytes: &[u8]) -> Vec<u8> {
    const NOT_AFTER: [&[u8]; 5] = [b" ", b"quele", b"quela", b"quilo", b"s "];
    let mut grave = Vec::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0xc3
            && bytes.get(i + 1) == Some(&b' ')
            && !NOT_AFTER.iter().any(|n| bytes[i + 2..].starts_with(n))
        {
            grave.extend_from_slice(&[0xc3, 0xa0, b' ']);
            i += 2;
        } else {
            grave.push(bytes[i]);
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(grave.len());
    let mut i = 0;
    while i < grave.len() {
        let len = altered_utf8_at(&grave[i..]);
        if len > 0 {
            out.extend(
                grave[i..i + len]
                    .iter()
                    .map(|&b| if b == b' ' { 0xa0 } else { b }),
            );
            i += len;
        } else {
            out.push(grave[i]);
            i += 1;
        }
    }
    out
}

/// The length of ftfy's `LOSSY_UTF8_RE` match at the start of `b`, 0 when none: a UTF-8
/// sequence with a continuation byte lost to `1A` (a sloppy codec's U+FFFD) or `?`.
fn lossy_at(b: &[u8]) -> usize {
    let at = |i: usize| b.get(i).copied();
    let is = |i: usize, f: fn(u8) -> bool| at(i).is_some_and(f);
    let lost: fn(u8) -> bool = |b| b == 0x1a || b == b'?';
    let cont_or_1a: fn(u8) -> bool = |b| b == 0x1a || continuation(b);
    let any3: fn(u8) -> bool = |b| b == 0x1a || b == b'?' || continuation(b);
    let Some(first) = at(0) else { return 0 };
    let high = |i: usize, lo: u8, hi: u8| at(i).is_some_and(|b| (lo..=hi).contains(&b));
    match first {
        0xc2..=0xdf if at(1) == Some(0x1a) => 2,
        0xc2 | 0xc3 if at(1) == Some(b'?') => 2,
        0xed if high(1, 0xa0, 0xaf)
            && is(2, lost)
            && at(3) == Some(0xed)
            && high(4, 0xb0, 0xbf)
            && is(5, any3) =>
        {
            6
        }
        0xed if high(1, 0xa0, 0xaf)
            && is(2, any3)
            && at(3) == Some(0xed)
            && high(4, 0xb0, 0xbf)
            && is(5, lost) =>
        {
            6
        }
        0xe0..=0xef if (is(1, lost) && is(2, cont_or_1a)) || (is(1, cont_or_1a) && is(2, lost)) => {
            3
        }
        0xf0..=0xf4
            if (is(1, lost) && is(2, cont_or_1a) && is(3, cont_or_1a))
                || (is(1, cont_or_1a) && is(2, lost) && is(3, cont_or_1a))
                || (is(1, cont_or_1a) && is(2, cont_or_1a) && is(3, lost)) =>
        {
            4
        }
        0x1a => 1,
        _ => 0,
    }
}

/// ftfy's `replace_lossy_sequences`: each lossy sequence (and each lone `1A`) becomes the
/// UTF-8 bytes of U+FFFD.
pub(super) fn replace_lossy_sequences(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let len = lossy_at(&bytes[i..]);
        if len > 0 {
            out.extend_from_slice("\u{fffd}".as_bytes());
            i += len;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip_like_python() {
        // 'é' is E9 in Latin-1, 82 in cp437, 8E in MacRoman; '€' is 80 in Windows-1252.
        assert_eq!(Codec::Latin1.encode("é"), Some(vec![0xe9]));
        assert_eq!(Codec::Cp437.encode("é"), Some(vec![0x82]));
        assert_eq!(Codec::MacRoman.encode("é"), Some(vec![0x8e]));
        assert_eq!(
            Codec::SloppyWindows1252.encode("€\u{81}\u{fffd}"),
            Some(vec![0x80, 0x81, 0x1a])
        );
        assert_eq!(Codec::Windows1252.decode(&[0x81]), None);
        assert_eq!(
            Codec::SloppyWindows1252.decode(&[0x81]),
            Some("\u{81}".into())
        );
        assert!(!Codec::SloppyWindows1252.can_encode("\u{1a}"));
        assert!(Codec::Latin1.can_encode("\u{1a}é") && !Codec::Latin1.can_encode("€"));
    }

    #[test]
    fn utf8_variants() {
        assert_eq!(
            decode_utf8_variants(b"null \xc0\x80!").as_deref(),
            Some("null \0!")
        );
        // 💩 as CESU-8.
        assert_eq!(
            decode_utf8_variants(b"\xed\xa0\xbd\xed\xb2\xa9").as_deref(),
            Some("\u{1f4a9}")
        );
        assert_eq!(decode_utf8_variants(b"\xed\xa0\xbd"), None);
        assert_eq!(decode_utf8_variants(b"\xc0"), None);
        assert_eq!(
            decode_utf8_variants("한국".as_bytes()).as_deref(),
            Some("한국")
        );
    }

    #[test]
    fn byte_transcoders() {
        // Values from ftfy 6.3.1's fixes.restore_byte_a0 / replace_lossy_sequences.
        assert_eq!(restore_byte_a0(b"voil\xc3 le"), b"voil\xc3\xa0 le");
        assert_eq!(restore_byte_a0(b"\xc3 s x"), b"\xc3\xa0s x");
        assert_eq!(restore_byte_a0(b"\xe2\x80 x"), b"\xe2\x80\xa0x");
        assert!(has_altered_utf8(b"\xe2\x80 x") && !has_altered_utf8(b"\xe2\x80\xa0"));
        assert_eq!(replace_lossy_sequences(b"\xe2\x80\x1a!"), b"\xef\xbf\xbd!");
        assert_eq!(
            replace_lossy_sequences(b"\xc3?\x1a"),
            b"\xef\xbf\xbd\xef\xbf\xbd"
        );
    }
}
