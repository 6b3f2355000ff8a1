//! The CLIP BPE tokenizer, on Hugging Face's `tokenizers` library.
//!
//! What happens to the text before BPE is chosen by [`TextNormalization`]:
//!
//! - [`TextNormalization::A1111Sd1`] (the default): A1111's SD 1.x tokenizer, transformers
//!   4.30.2's slow `CLIPTokenizer` with ftfy — split at literal `<|startoftext|>` /
//!   `<|endoftext|>`, then each piece through [`crate::normalize::fix_text`], whitespace
//!   clean-up and Python's `lower()`, then CLIP's word regex and GPT-2's byte symbols
//!   (as the Python tokenizers do), then the BPE model below;
//! - [`TextNormalization::OpenClip`]: A1111's SD 2.x tokenizer, OpenCLIP's
//!   `SimpleTokenizer` — the same with HTML unescaped twice and `<start_of_text>` /
//!   `<end_of_text>` as the special tokens;
//! - [`TextNormalization::Transformers5`]: the whole `tokenizers` pipeline below, which is
//!   what transformers 5's (fast) `CLIPTokenizer` builds (`models/clip/tokenization_clip.py`),
//!   stage by stage:
//!
//! - normalizer: NFC, every whitespace run → one space, lower-case;
//! - pre-tokenizer: CLIP's regex (`'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`,
//!   plus the two special tokens), the matches kept and the rest dropped, then GPT-2's
//!   byte-level mapping;
//! - model: BPE with the word-end suffix `</w>` and `<|endoftext|>` as the unknown token;
//! - `<|startoftext|>` and `<|endoftext|>` as special tokens (matched in raw text too, as
//!   transformers does).
//!
//! Ids come from the vocabulary in use — a model's own files, or the bundled standard
//! vocabulary (possibly cut, see [`ClipTokenizer::standard_cut`]) — never from constants.
//! `tests/tokenizer_corpus.rs` checks every id against the reference tokenizers (transformers
//! 4.30.2 + ftfy 6.3.1, OpenCLIP 2.20.0, transformers 5) on 2 000+ texts.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, Tokenizer,
    decoders::byte_level::ByteLevel as ByteLevelDecoder,
    models::bpe::BPE,
    normalizers::{
        Lowercase, NFC, Replace, Sequence as NormalizerSequence, replace::ReplacePattern,
    },
    pre_tokenizers::{
        byte_level::ByteLevel,
        sequence::Sequence as PreTokenizerSequence,
        split::{Split, SplitPattern},
    },
};

use tokenizers::Model;

use crate::{
    error::{ClipError, Result},
    normalize::TextNormalization,
    pretokenizer::{self, Word},
    vocab::{self, BOS_TOKEN, END_OF_WORD, EOS_TOKEN, NON_MERGE_TOKENS, STANDARD_MERGES},
};

/// CLIP's pre-tokenizer pattern, as transformers writes it (special tokens, English
/// contractions, letter runs, single digits, runs of everything else but whitespace).
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// The padding token of OpenCLIP (SD 2.x): `!`, id 0 in the CLIP vocabulary. SD 1.x pads with
/// `<|endoftext|>`.
pub const OPEN_CLIP_PAD_TOKEN: &str = "!";

/// A CLIP BPE tokenizer: text → token ids.
///
/// Every constructor gives A1111's SD 1.x text normalisation
/// ([`TextNormalization::A1111Sd1`]); SD 2.x models take
/// [`with_normalization`](Self::with_normalization)`(`[`TextNormalization::OpenClip`]`)`.
///
/// ```
/// use sd_clip::ClipTokenizer;
///
/// let tokenizer = ClipTokenizer::standard()?;
/// assert_eq!(tokenizer.encode("a photo of a cat")?, [320, 1125, 539, 320, 2368]);
/// assert_eq!((tokenizer.bos_id(), tokenizer.eos_id()), (49406, 49407));
/// # Ok::<(), sd_clip::ClipError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    vocab_size: usize,
    normalization: TextNormalization,
}

impl ClipTokenizer {
    /// The standard CLIP vocabulary (49 408 tokens), bundled with the crate: what SD 1.x and
    /// 2.x checkpoints use, and what a single-file checkpoint (which carries no tokenizer)
    /// must use.
    ///
    /// # Errors
    /// Only if the bundled file were corrupt.
    pub fn standard() -> Result<Self> {
        Self::standard_cut(STANDARD_MERGES)
    }

    /// The standard vocabulary cut to its first `n_merges` merges: `n_merges + 514` tokens,
    /// BOS = `n_merges + 512`, EOS = `n_merges + 513`. The tiny test models use 7678 merges
    /// (8192 tokens).
    ///
    /// # Errors
    /// [`ClipError::VocabularyCut`] when `n_merges` exceeds [`STANDARD_MERGES`].
    pub fn standard_cut(n_merges: usize) -> Result<Self> {
        let merges = vocab::standard_merges()?;
        if n_merges > merges.len() {
            return Err(ClipError::VocabularyCut {
                requested: n_merges as i64,
                available: merges.len(),
            });
        }
        let merges = &merges[..n_merges];
        Self::from_vocab_merges(vocab::build_vocab(merges), merges.to_vec())
    }

    /// The bundled vocabulary that fits a token-embedding table of `rows` rows: the standard
    /// vocabulary cut to `rows - 514` merges (all 48 894 for SD's 49 408 rows).
    ///
    /// This is how a single-file checkpoint, which carries no tokenizer, gets one: its
    /// vocabulary size is read off the embedding table. It is right for every checkpoint whose
    /// vocabulary is a prefix cut of CLIP's (SD 1.x, SD 2.x, the tiny test models).
    ///
    /// # Errors
    /// [`ClipError::VocabularyCut`] when `rows` is below 514 or above 49 408.
    pub fn for_vocab_size(rows: usize) -> Result<Self> {
        let n_merges = rows as i64 - NON_MERGE_TOKENS as i64;
        if n_merges < 0 {
            return Err(ClipError::VocabularyCut {
                requested: n_merges,
                available: STANDARD_MERGES,
            });
        }
        Self::standard_cut(n_merges as usize)
    }

    /// A tokenizer from a vocabulary (token → id) and merges in priority order.
    ///
    /// # Errors
    /// When a merge names a token the vocabulary lacks, or the vocabulary lacks BOS or EOS.
    pub fn from_vocab_merges(
        vocab: HashMap<String, u32>,
        merges: Vec<(String, String)>,
    ) -> Result<Self> {
        let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().collect();
        let bpe = clip_bpe(BPE::builder().vocab_and_merges(vocab, merges))
            .map_err(|e| ClipError::tokenizer("BPE vocabulary", e))?;
        Self::with_clip_pipeline(bpe)
    }

    /// A tokenizer from the `vocab.json` + `merges.txt` pair of a diffusers `tokenizer/`
    /// folder (the layout published SD models use).
    ///
    /// # Errors
    /// When a file cannot be read or parsed.
    pub fn from_vocab_merges_files(vocab: &Path, merges: &Path) -> Result<Self> {
        for path in [vocab, merges] {
            if !path.is_file() {
                return Err(ClipError::Io {
                    path: path.to_owned(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
        }
        let context = || format!("{} + {}", vocab.display(), merges.display());
        let bpe = clip_bpe(BPE::from_file(
            &vocab.to_string_lossy(),
            &merges.to_string_lossy(),
        ))
        .map_err(|e| ClipError::tokenizer(context(), e))?;
        Self::with_clip_pipeline(bpe)
    }

    /// A tokenizer from a `tokenizer.json` (transformers 5 saves this instead of
    /// `vocab.json` + `merges.txt`). Its own normalizer and pre-tokenizer are used as written.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or lacks BOS/EOS.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| ClipError::tokenizer(path.display().to_string(), e))?;
        Self::finish(inner)
    }

    /// A model's own tokenizer: `dir` is a diffusers pipeline folder (the files are then in
    /// its `tokenizer/` subfolder) or a tokenizer folder itself. `vocab.json` + `merges.txt`
    /// are preferred over `tokenizer.json`; a `tokenizer_config.json` beside them sets the
    /// padding token (SD 2.x pads with `!`), which otherwise is `<|endoftext|>`.
    ///
    /// # Errors
    /// [`ClipError::NoTokenizer`] when neither layout is there; read/parse errors otherwise.
    pub fn from_pretrained(dir: &Path) -> Result<Self> {
        let folder = [dir.join("tokenizer"), dir.to_owned()]
            .into_iter()
            .find(|d| has_tokenizer_files(d))
            .ok_or_else(|| ClipError::NoTokenizer {
                path: dir.to_owned(),
            })?;
        let (vocab, merges) = (folder.join("vocab.json"), folder.join("merges.txt"));
        let mut tokenizer = if vocab.is_file() && merges.is_file() {
            Self::from_vocab_merges_files(&vocab, &merges)?
        } else {
            Self::from_tokenizer_json(&folder.join("tokenizer.json"))?
        };
        if let Some(pad) = configured_pad_token(&folder.join("tokenizer_config.json"))? {
            tokenizer = tokenizer.with_pad_token(&pad)?;
        }
        Ok(tokenizer)
    }

    /// The tokenizer for whatever `--model` names: a diffusers folder or a tokenizer folder
    /// ([`from_pretrained`](Self::from_pretrained)); or a single-file checkpoint, which
    /// carries no tokenizer: then the config folder of the same stem beside it
    /// (`model.safetensors` + `model/tokenizer/`) if there is one, else the bundled
    /// vocabulary cut to the file's token-embedding rows ([`for_vocab_size`](Self::for_vocab_size)).
    ///
    /// # Errors
    /// When nothing there holds a tokenizer or the file cannot be read.
    pub fn for_model(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Self::from_pretrained(path);
        }
        // A single file's config folder: `model.safetensors` beside `model/`.
        if let Some(folder) = path.file_stem().map(|stem| path.with_file_name(stem))
            && [folder.join("tokenizer"), folder.clone()]
                .iter()
                .any(|d| has_tokenizer_files(d))
        {
            return Self::from_pretrained(&folder);
        }
        if !path.is_file() {
            return Err(ClipError::Io {
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let mut store = burn::store::SafetensorsStore::from_file(path);
        let rows = crate::loader::token_embedding_rows(&mut store)?;
        Self::for_vocab_size(rows)
    }

    /// The same tokenizer padding with `token` (see [`OPEN_CLIP_PAD_TOKEN`]).
    ///
    /// # Errors
    /// [`ClipError::MissingSpecialToken`] when the vocabulary has no such token.
    pub fn with_pad_token(mut self, token: &str) -> Result<Self> {
        self.pad_id = self.require(token)?;
        Ok(self)
    }

    /// The same tokenizer with another text normalisation: [`TextNormalization::OpenClip`]
    /// for SD 2.x models (A1111 tokenizes their prompts with OpenCLIP),
    /// [`TextNormalization::A1111Sd1`] (the default) for SD 1.x,
    /// [`TextNormalization::Transformers5`] to match diffusers on transformers 5.
    ///
    /// ```
    /// use sd_clip::{ClipTokenizer, TextNormalization};
    ///
    /// let sd1 = ClipTokenizer::standard()?;
    /// let sd2 = sd1.clone().with_normalization(TextNormalization::OpenClip);
    /// assert_eq!(sd1.encode("don’t")?, sd1.encode("don't")?);
    /// assert_eq!(sd2.normalization(), TextNormalization::OpenClip);
    /// assert_eq!(sd2.encode("a &amp;amp; b")?, sd2.encode("a & b")?);
    /// # Ok::<(), sd_clip::ClipError>(())
    /// ```
    #[must_use]
    pub fn with_normalization(mut self, normalization: TextNormalization) -> Self {
        self.normalization = normalization;
        self
    }

    /// The text normalisation in use.
    pub fn normalization(&self) -> TextNormalization {
        self.normalization
    }

    /// Token ids of `text`: no BOS/EOS, no truncation, no padding — what the reference
    /// tokenizer of [`normalization`](Self::normalization) gives: transformers'
    /// `tokenizer(text, add_special_tokens=False).input_ids`, or OpenCLIP's
    /// `SimpleTokenizer.encode(text)`. Special-token text in the prompt becomes BOS/EOS ids
    /// as it does there.
    ///
    /// # Errors
    /// Only if the underlying library fails, which it does not for any valid UTF-8 text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if self.normalization == TextNormalization::Transformers5 {
            let encoding = self
                .inner
                .encode_fast(text, false)
                .map_err(|e| ClipError::tokenizer("encode", e))?;
            return Ok(encoding.get_ids().to_vec());
        }
        let model = self.inner.get_model();
        let mut ids = Vec::new();
        for word in pretokenizer::words(text, self.normalization) {
            match word {
                Word::Bos => ids.push(self.bos_id),
                Word::Eos => ids.push(self.eos_id),
                Word::Bpe(word) => ids.extend(
                    model
                        .tokenize(&word)
                        .map_err(|e| ClipError::tokenizer("encode", e))?
                        .iter()
                        .map(|token| token.id),
                ),
            }
        }
        Ok(ids)
    }

    /// The model input for `text` as diffusers builds it (`padding="max_length",
    /// truncation=True`): BOS, at most `length - 2` token ids, EOS, then padding up to
    /// `length` (77 for SD).
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    pub fn encode_padded(&self, text: &str, length: usize) -> Result<Vec<u32>> {
        let ids = self.encode(text)?;
        let mut out = Vec::with_capacity(length);
        out.push(self.bos_id);
        out.extend(ids.into_iter().take(length.saturating_sub(2)));
        out.push(self.eos_id);
        out.resize(length.max(out.len()), self.pad_id);
        out.truncate(length);
        Ok(out)
    }

    /// The id of `<|startoftext|>` in this vocabulary.
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// The id of `<|endoftext|>` in this vocabulary.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The id sequences are padded with (EOS unless the model's config or
    /// [`with_pad_token`](Self::with_pad_token) says otherwise).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Number of tokens, special tokens included (49 408 for the standard vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id of a vocabulary entry (`"cat</w>"`), if present.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary entry of an id (`"cat</w>"`), if present.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The underlying `tokenizers` tokenizer. Its whole pipeline is what
    /// [`TextNormalization::Transformers5`] runs; the other normalisations use only its BPE
    /// model.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    fn with_clip_pipeline(bpe: BPE) -> Result<Self> {
        let mut inner = Tokenizer::new(bpe);
        let whitespace = Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")
            .map_err(|e| ClipError::tokenizer("whitespace normalizer", e))?;
        inner.with_normalizer(Some(NormalizerWrapper::Sequence(NormalizerSequence::new(
            vec![NFC.into(), whitespace.into(), Lowercase.into()],
        ))));
        let split = Split::new(
            SplitPattern::Regex(CLIP_PATTERN.into()),
            tokenizers::SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(|e| ClipError::tokenizer("pre-tokenizer regex", e))?;
        // transformers' `ByteLevel(add_prefix_space=False)`: trim_offsets and use_regex stay
        // at their defaults (true), as in the tokenizer.json it saves.
        inner.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(
            PreTokenizerSequence::new(vec![split.into(), ByteLevel::new(false, true, true).into()]),
        )));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())));
        // Special tokens are matched in the raw text (normalized = false), as transformers
        // registers them.
        inner.add_special_tokens(&[
            AddedToken::from(BOS_TOKEN, true),
            AddedToken::from(EOS_TOKEN, true),
        ]);
        Self::finish(inner)
    }

    fn finish(inner: Tokenizer) -> Result<Self> {
        let find = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| ClipError::MissingSpecialToken {
                    token: token.into(),
                })
        };
        let (bos_id, eos_id) = (find(BOS_TOKEN)?, find(EOS_TOKEN)?);
        let vocab_size = inner.get_vocab_size(true);
        Ok(Self {
            inner,
            bos_id,
            eos_id,
            pad_id: eos_id,
            vocab_size,
            normalization: TextNormalization::default(),
        })
    }

    fn require(&self, token: &str) -> Result<u32> {
        self.inner
            .token_to_id(token)
            .ok_or_else(|| ClipError::MissingSpecialToken {
                token: token.into(),
            })
    }
}

/// CLIP's BPE settings, as transformers sets them.
fn clip_bpe(builder: tokenizers::models::bpe::BpeBuilder) -> tokenizers::Result<BPE> {
    builder
        .unk_token(EOS_TOKEN.into())
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(END_OF_WORD.into())
        .fuse_unk(false)
        .build()
}

fn has_tokenizer_files(dir: &Path) -> bool {
    (dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file())
        || dir.join("tokenizer.json").is_file()
}

/// The `pad_token` of a `tokenizer_config.json`: a string, or an object with `content`
/// (transformers writes both forms). `None` when the file or the key is absent.
fn configured_pad_token(path: &PathBuf) -> Result<Option<String>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| ClipError::Io {
        path: path.clone(),
        source,
    })?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ClipError::Json {
            path: path.clone(),
            source,
        })?;
    let pad = config.get("pad_token");
    Ok(pad
        .and_then(|p| {
            p.as_str()
                .or_else(|| p.get("content").and_then(|c| c.as_str()))
        })
        .map(str::to_owned))
}
