//! The text clean-up the reference tokenizers apply before BPE, reproduced exactly.
//!
//! A1111 tokenizes SD 1.x prompts with transformers 4.30.2's slow `CLIPTokenizer`, which
//! (with ftfy installed, as in A1111) runs `ftfy.fix_text`, collapses whitespace, strips and
//! lower-cases each piece of the prompt between the special tokens. SD 2.x prompts go through
//! OpenCLIP's `SimpleTokenizer`, which also unescapes HTML twice. The pieces:
//!
//! - [`fix_text`]: ftfy 6.3.1's `fix_text` with its default settings — mojibake
//!   (`cafÃ©` → `café`), HTML entities, curly quotes, ligatures, fullwidth forms, line
//!   breaks, terminal escapes, control characters, NFC;
//! - [`html_unescape`]: Python's `html.unescape`;
//! - [`whitespace_clean`] and [`python_lower`]: the tokenizers' `re.sub(r"\s+", " ", t).strip()`
//!   and `str.lower()`, with Python's definitions of whitespace and case;
//! - [`TextNormalization`]: which of the front-ends a [`ClipTokenizer`](crate::ClipTokenizer)
//!   uses, and [`TextNormalization::clean`] to apply one to a piece of text.
//!
//! None of these fails or panics on any `&str`, and all of them run in linear time.
//! Unicode data is Python 3.11's (Unicode 14.0) where it matters, except for NFC and the
//! tokenizer's letter/number classes, which follow the Rust crates' newer Unicode: the two
//! differ only on characters assigned after Unicode 14.

mod badness;
mod chars;
mod encoding;
mod fixes;
mod ftfy;
mod html;
mod mojibake;
#[rustfmt::skip] // generated data, kept as the script writes it
mod tables;

pub use chars::python_lower;
pub use ftfy::fix_text;
pub use html::html_unescape;

/// Which text normalisation a [`ClipTokenizer`](crate::ClipTokenizer) applies before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TextNormalization {
    /// A1111 on SD 1.x: transformers 4.30.2's slow `CLIPTokenizer` with ftfy installed. The
    /// text is split at the literal special tokens `<|startoftext|>` / `<|endoftext|>`; each
    /// piece between them gets [`fix_text`], [`whitespace_clean`] and [`python_lower`].
    /// The default.
    #[default]
    A1111Sd1,
    /// A1111 on SD 2.x: OpenCLIP's `SimpleTokenizer.encode` (open_clip_torch 2.20.0):
    /// [`fix_text`], [`html_unescape`] twice, strip, [`whitespace_clean`], [`python_lower`]
    /// on the whole text. Its special tokens are `<start_of_text>` / `<end_of_text>` (matched
    /// after lower-casing); `<|endoftext|>` is ordinary text there.
    OpenClip,
    /// transformers 5's (fast) `CLIPTokenizer`, as diffusers uses it today: NFC, whitespace
    /// runs → one space, lower-case; no ftfy.
    Transformers5,
}

impl TextNormalization {
    /// The clean-up this front-end applies to one piece of text (for [`Self::A1111Sd1`], a
    /// piece between two special tokens; the others take whole texts). For
    /// [`Self::Transformers5`] this is the `tokenizers` normalizer's NFC + whitespace +
    /// lower-case.
    ///
    /// ```
    /// use sd_clip::TextNormalization;
    ///
    /// assert_eq!(TextNormalization::A1111Sd1.clean(" Don’t  cafÃ©\n"), "don't café");
    /// assert_eq!(TextNormalization::OpenClip.clean("A &amp;amp; B"), "a & b");
    /// assert_eq!(TextNormalization::Transformers5.clean("Don’t"), "don’t");
    /// ```
    pub fn clean(self, text: &str) -> String {
        match self {
            Self::A1111Sd1 => python_lower(&whitespace_clean(&fix_text(text))),
            Self::OpenClip => {
                let text = fix_text(text);
                let text = html_unescape(&html_unescape(&text));
                python_lower(&whitespace_clean(python_strip(&text)))
            }
            Self::Transformers5 => {
                use unicode_normalization::UnicodeNormalization;
                let text: String = text.nfc().collect();
                collapse_whitespace(&text).to_lowercase()
            }
        }
    }
}

/// The tokenizers' `whitespace_clean`: every run of whitespace (the `regex` module's `\s`,
/// i.e. Unicode White_Space) becomes one space, then Python's `str.strip()` (which also
/// strips U+001C..U+001F).
pub fn whitespace_clean(text: &str) -> String {
    python_strip(&collapse_whitespace(text)).to_owned()
}

fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if chars::is_regex_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Python's `str.strip()` with no argument.
fn python_strip(text: &str) -> &str {
    text.trim_matches(chars::is_py_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_ends() {
        assert_eq!(whitespace_clean("\u{1c} a\u{3000}\t b \u{1f}"), "a b");
        assert_eq!(whitespace_clean("a\u{1c}b"), "a\u{1c}b");
        assert_eq!(
            TextNormalization::A1111Sd1.clean("ＬＯＵＤ ﬁne"),
            "loud fine"
        );
        // ftfy leaves "&amp;" alone next to a "<"; OpenCLIP's html.unescape does not.
        assert_eq!(TextNormalization::A1111Sd1.clean("<b> &amp;"), "<b> &amp;");
        assert_eq!(TextNormalization::OpenClip.clean("<b> &amp;amp;"), "<b> &");
        assert_eq!(TextNormalization::default(), TextNormalization::A1111Sd1);
    }
}
