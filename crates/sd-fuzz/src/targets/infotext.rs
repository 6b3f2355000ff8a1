//! The infotext target: A1111's parameters text and the PNG text chunks.

use sd_infotext::{self as infotext, GenerationParameters};

use crate::{fix_png_crcs, selector};

/// Infotexts (`sd_infotext`). Even first byte: the rest, read as UTF-8 (lossily), is an
/// infotext for `parse_generation_parameters` and `GenerationParameters::parse` /
/// `to_infotext`. Odd first byte: the rest is a PNG (CRCs fixed by the harness when the
/// byte is `1 mod 4`) for `read_png_text` and `read_png_parameters`.
///
/// Asserts: never a panic (the text parser never fails; the PNG reader returns `Ok` or a
/// typed error). Round trip: `set_png_text` on a PNG that reads, with the input as the text,
/// reads back that text. (`to_infotext ∘ parse` is not checked for stability: A1111's is not
/// stable either, see the body.)
pub fn infotext(data: &[u8]) {
    let (sel, rest) = selector(data);
    if sel % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let _ = infotext::parse_generation_parameters(&text);
        // No round-trip property here: A1111's own reader and writer are not stable under
        // repetition (fuzzing found a text where `create_infotext ∘ parse` changes on the
        // second and third pass in A1111 1.10 too, and ours agrees with A1111 on every pass;
        // `fuzz/regressions/infotext/`). Agreement with A1111 is the golden test's job.
        let once = GenerationParameters::parse(&text).to_infotext();
        let _ = GenerationParameters::parse(&once).to_infotext();
        return;
    }
    let mut png = rest.to_vec();
    if sel % 4 == 1 {
        fix_png_crcs(&mut png);
    }
    if infotext::read_png_text(&png).is_err() {
        return;
    }
    let _ = infotext::read_png_parameters(&png);
    let text = String::from_utf8_lossy(&rest[..rest.len().min(64)]).into_owned();
    if let Ok(out) = infotext::set_png_text(&png, infotext::PARAMETERS_KEY, &text) {
        let back = infotext::read_png_parameters(&out).expect("the written PNG reads back");
        assert_eq!(
            back.as_deref(),
            Some(text.as_str()),
            "set_png_text round trip"
        );
    }
}
