//! The CLIP tokenizer target.

use crate::selector;

/// The CLIP tokenizer's text normalisation and encoding (`sd_clip`). The first byte picks the
/// normalisation (A1111 SD 1.x, OpenCLIP, transformers 5) and the vocabulary (bit 2: the
/// 8192-token cut instead of the full one); the rest, read as UTF-8 (lossily), is the text.
///
/// Asserts: nothing panics or fails; `fix_text` and `html_unescape` return; a cleaned text has
/// no whitespace at its ends and no whitespace run; every id is below the vocabulary size and
/// `encode_padded` gives exactly 77 ids starting with BOS.
pub fn tokenizer(data: &[u8]) {
    use sd_clip::{ClipTokenizer, TextNormalization, normalize};
    use std::sync::OnceLock;

    // Built once per vocabulary and normalisation: a clone copies the whole vocabulary.
    static TOKENIZERS: [OnceLock<ClipTokenizer>; 6] = [const { OnceLock::new() }; 6];
    let (sel, rest) = selector(data);
    let text = String::from_utf8_lossy(rest);
    let normalization = match sel % 3 {
        0 => TextNormalization::A1111Sd1,
        1 => TextNormalization::OpenClip,
        _ => TextNormalization::Transformers5,
    };
    let cut = sel & 4 != 0;
    let tokenizer = TOKENIZERS[usize::from(sel % 3) + 3 * usize::from(cut)].get_or_init(|| {
        let base = if cut {
            ClipTokenizer::for_vocab_size(8192).expect("bundled cut")
        } else {
            ClipTokenizer::standard().expect("bundled vocabulary")
        };
        base.with_normalization(normalization)
    });

    let _ = normalize::fix_text(&text);
    let _ = normalize::html_unescape(&text);
    if normalization != TextNormalization::Transformers5 {
        let clean = normalization.clean(&text);
        assert!(
            !clean.starts_with(char::is_whitespace) && !clean.ends_with(char::is_whitespace),
            "cleaned text keeps whitespace at an end: {clean:?}"
        );
        assert!(
            !clean
                .chars()
                .zip(clean.chars().skip(1))
                .any(|(a, b)| a.is_whitespace() && b.is_whitespace()),
            "cleaned text keeps a whitespace run: {clean:?}"
        );
    }
    let ids = tokenizer.encode(&text).expect("encoding never fails");
    let size = tokenizer.vocab_size();
    assert!(
        ids.iter().all(|&id| (id as usize) < size),
        "id out of range"
    );
    let padded = tokenizer
        .encode_padded(&text, 77)
        .expect("encoding never fails");
    assert_eq!(padded.len(), 77);
    assert_eq!(padded[0], tokenizer.bos_id());
}
