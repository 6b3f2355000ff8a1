//! The standard CLIP vocabulary, bundled and derived at first use.
//!
//! OpenAI's CLIP and OpenCLIP ship their BPE as `bpe_simple_vocab_16e6.txt.gz` (MIT, OpenAI
//! 2021; the file and its licence are in this crate's `assets/`): a header line, then merges in
//! priority order. The vocabulary is built from it in a fixed order, exactly as CLIP's
//! `SimpleTokenizer` and `tools/sdtools/clip_vocab.py` build it:
//!
//! 1. the 256 byte symbols of GPT-2's reversible byte → character table,
//! 2. the same 256 with the word-end marker `</w>`,
//! 3. one token per merge, in merge order (the two halves joined),
//! 4. `<|startoftext|>` and `<|endoftext|>`.
//!
//! With all [`STANDARD_MERGES`] merges that is 49 408 tokens (BOS 49406, EOS 49407). Keeping
//! only the first `n` merges gives `n + 514` tokens and is still a valid BPE model, because
//! every merge joins two earlier tokens; the tiny test models use `n = 7678` (8192 tokens).

use std::{
    collections::HashMap,
    io::Read,
    sync::{Arc, OnceLock},
};

use crate::error::{ClipError, Result};

/// The bundled file, compressed as the Python packages ship it.
const BPE_GZ: &[u8] = include_bytes!("../assets/bpe_simple_vocab_16e6.txt.gz");

/// Merges in the standard CLIP vocabulary: 49 152 BPE tokens less the 256 byte symbols and the
/// two special tokens the original training reserved (the file holds more lines than this;
/// CLIP uses only these).
pub const STANDARD_MERGES: usize = 49152 - 256 - 2;

/// Tokens of a cut vocabulary that are not merges: 256 byte symbols, 256 with `</w>`, BOS, EOS.
/// A vocabulary cut to `n` merges has `n + NON_MERGE_TOKENS` tokens.
pub const NON_MERGE_TOKENS: usize = 256 + 256 + 2;

/// The start-of-text token.
pub const BOS_TOKEN: &str = "<|startoftext|>";
/// The end-of-text token (also the padding token of SD 1.x).
pub const EOS_TOKEN: &str = "<|endoftext|>";
/// The word-end suffix CLIP's BPE appends to the last symbol of every word.
pub const END_OF_WORD: &str = "</w>";

/// Merges in priority order, shared between the tokenizers built from them.
pub(crate) type Merges = Arc<Vec<(String, String)>>;

/// The merges of the bundled file, decompressed once per process.
pub(crate) fn standard_merges() -> Result<Merges> {
    // Only a success is kept: a failure (possible only if the bundled bytes were corrupt)
    // is returned as it happened, and the next call tries again.
    static MERGES: OnceLock<Merges> = OnceLock::new();
    if let Some(merges) = MERGES.get() {
        return Ok(merges.clone());
    }
    let merges = Arc::new(parse_bundled().map_err(|source| ClipError::Tokenizer {
        context: "bundled bpe_simple_vocab_16e6.txt.gz".into(),
        source,
    })?);
    Ok(MERGES.get_or_init(|| merges).clone())
}

fn parse_bundled() -> std::result::Result<Vec<(String, String)>, tokenizers::Error> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(BPE_GZ).read_to_string(&mut text)?;
    // Line 0 is a version header; CLIP reads lines 1..=STANDARD_MERGES.
    text.split('\n')
        .skip(1)
        .take(STANDARD_MERGES)
        .enumerate()
        .map(|(i, line)| {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) => Ok((a.to_owned(), b.to_owned())),
                _ => Err(format!("merge line {} is malformed: {line:?}", i + 1).into()),
            }
        })
        .collect()
}

/// GPT-2's reversible byte → printable character table, in the order CLIP lists the symbols:
/// the printable bytes first, then the others mapped to U+0100 and up.
pub(crate) fn byte_symbols() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut symbols: Vec<char> = (0..256u32)
        .filter(|&b| printable(b))
        .filter_map(char::from_u32)
        .collect();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable(b) {
            symbols.extend(char::from_u32(256 + extra));
            extra += 1;
        }
    }
    symbols
}

/// The vocabulary (token → id) for the given merges, in CLIP's order.
pub(crate) fn build_vocab(merges: &[(String, String)]) -> HashMap<String, u32> {
    let symbols = byte_symbols();
    let tokens = symbols
        .iter()
        .map(|c| c.to_string())
        .chain(symbols.iter().map(|c| format!("{c}{END_OF_WORD}")))
        .chain(merges.iter().map(|(a, b)| format!("{a}{b}")))
        .chain([BOS_TOKEN.to_owned(), EOS_TOKEN.to_owned()]);
    tokens.zip(0u32..).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_vocabulary_has_clip_ids() {
        let merges = standard_merges().expect("bundled file parses");
        assert_eq!(merges.len(), STANDARD_MERGES);
        assert_eq!(merges[0], ("i".to_owned(), "n".to_owned()));
        let vocab = build_vocab(&merges);
        assert_eq!(vocab.len(), 49408);
        assert_eq!(vocab[BOS_TOKEN], 49406);
        assert_eq!(vocab[EOS_TOKEN], 49407);
        // Well-known ids of the real CLIP vocabulary.
        assert_eq!(vocab["a</w>"], 320);
        assert_eq!(vocab["cat</w>"], 2368);
        assert_eq!(vocab["!"], 0);
    }

    #[test]
    fn byte_symbols_are_a_permutation() {
        let symbols = byte_symbols();
        assert_eq!(symbols.len(), 256);
        let unique: std::collections::HashSet<_> = symbols.iter().collect();
        assert_eq!(unique.len(), 256);
        assert_eq!(symbols[0], '!');
        assert_eq!(symbols[188], '\u{100}');
    }
}
