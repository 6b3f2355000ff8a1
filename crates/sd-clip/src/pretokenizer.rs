//! The slow tokenizers' own pre-tokenization, used with the A1111 normalisations
//! ([`TextNormalization::A1111Sd1`], [`TextNormalization::OpenClip`]): the special-token
//! split, CLIP's word regex, and GPT-2's byte → symbol map, as transformers 4.30.2's
//! `CLIPTokenizer.tokenize` and OpenCLIP's `SimpleTokenizer.encode` do them in Python.

use std::sync::OnceLock;

use regex::Regex;

use crate::{
    normalize::TextNormalization,
    vocab::{BOS_TOKEN, EOS_TOKEN},
};

/// OpenCLIP's names for BOS and EOS (ids 49406 and 49407, as `<|startoftext|>` /
/// `<|endoftext|>` in transformers).
pub(crate) const OPEN_CLIP_BOS: &str = "<start_of_text>";
/// See [`OPEN_CLIP_BOS`].
pub(crate) const OPEN_CLIP_EOS: &str = "<end_of_text>";

/// A word of the pre-tokenized text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Word {
    /// Beginning of text.
    Bos,
    /// End of text.
    Eos,
    /// A word for BPE, already in byte symbols.
    Bpe(String),
}

/// CLIP's word pattern with the front-end's special tokens first. Python compiles it with
/// `re.IGNORECASE`; the text is lower-case by then, so case-insensitivity matters only for
/// the few characters whose simple case folding is ASCII (`'ſ` is a `'s` contraction), hence
/// `(?i)` on the literal alternatives.
fn pattern(normalization: TextNormalization) -> &'static Regex {
    static SD1: OnceLock<Regex> = OnceLock::new();
    static OPEN_CLIP: OnceLock<Regex> = OnceLock::new();
    let (cell, specials) = match normalization {
        TextNormalization::OpenClip => (&OPEN_CLIP, r"<start_of_text>|<end_of_text>"),
        _ => (&SD1, r"<\|startoftext\|>|<\|endoftext\|>"),
    };
    cell.get_or_init(|| {
        let source = format!(
            r"(?i:{specials}|'s|'t|'re|'ve|'m|'ll|'d)|\p{{L}}+|\p{{N}}|[^\s\p{{L}}\p{{N}}]+"
        );
        Regex::new(&source).expect("constant pattern")
    })
}

/// GPT-2's printable symbol for byte `b` (`bytes_to_unicode`).
fn byte_symbol(b: u8) -> char {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let printable = |b: u8| matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff);
        let mut table = ['\0'; 256];
        let mut extra = 0u32;
        for b in 0..=255u8 {
            table[usize::from(b)] = if printable(b) {
                char::from(b)
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap_or('\0')
            };
        }
        table
    })[usize::from(b)]
}

/// The words of `text` (not yet normalised) for BPE, as the front-end's reference
/// tokenizer finds them.
pub(crate) fn words(text: &str, normalization: TextNormalization) -> Vec<Word> {
    let mut out = Vec::new();
    match normalization {
        TextNormalization::OpenClip => {
            push_words(&normalization.clean(text), normalization, &mut out);
        }
        _ => {
            // transformers' added-token trie splits the raw text at the literal special
            // tokens; every piece between them is normalised on its own.
            let mut rest = text;
            loop {
                let next = [(BOS_TOKEN, Word::Bos), (EOS_TOKEN, Word::Eos)]
                    .into_iter()
                    .filter_map(|(token, word)| rest.find(token).map(|at| (at, token, word)))
                    .min_by_key(|&(at, _, _)| at);
                let Some((at, token, word)) = next else {
                    push_words(
                        &TextNormalization::A1111Sd1.clean(rest),
                        normalization,
                        &mut out,
                    );
                    break;
                };
                push_words(
                    &TextNormalization::A1111Sd1.clean(&rest[..at]),
                    normalization,
                    &mut out,
                );
                out.push(word);
                rest = &rest[at + token.len()..];
            }
        }
    }
    out
}

fn push_words(clean: &str, normalization: TextNormalization, out: &mut Vec<Word>) {
    let (bos, eos) = match normalization {
        TextNormalization::OpenClip => (OPEN_CLIP_BOS, OPEN_CLIP_EOS),
        _ => (BOS_TOKEN, EOS_TOKEN),
    };
    for m in pattern(normalization).find_iter(clean) {
        let word = m.as_str();
        out.push(if word == bos {
            Word::Bos
        } else if word == eos {
            Word::Eos
        } else {
            Word::Bpe(word.bytes().map(byte_symbol).collect())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bpe(s: &str) -> Word {
        Word::Bpe(s.to_owned())
    }

    #[test]
    fn byte_symbols_match_gpt2() {
        assert_eq!(byte_symbol(b'a'), 'a');
        assert_eq!(byte_symbol(b' '), 'Ġ');
        assert_eq!(byte_symbol(0), 'Ā');
        assert_eq!(byte_symbol(0xad), 'Ń');
    }

    #[test]
    fn splits_like_the_slow_tokenizers() {
        let sd1 = TextNormalization::A1111Sd1;
        assert_eq!(
            words("A<|endoftext|>don’t", sd1),
            [bpe("a"), Word::Eos, bpe("don"), bpe("'t")]
        );
        // Upper-case special-token text becomes special after lower-casing.
        assert_eq!(words("<|ENDOFTEXT|>", sd1), [Word::Eos]);
        assert_eq!(words("é", sd1), [bpe("Ã©")]);
        let open_clip = TextNormalization::OpenClip;
        assert_eq!(
            words("<|endoftext|> <START_OF_TEXT>", open_clip),
            [bpe("<|"), bpe("endoftext"), bpe("|>"), Word::Bos]
        );
    }
}
