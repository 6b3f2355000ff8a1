//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `sd-clip`, split by who is at fault: a file that cannot be
/// read or parsed, weights that do not fit the configured model, or a bad call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClipError {
    /// A configuration value this crate cannot build a text encoder from: zero or absurd
    /// sizes, heads that do not divide the width, a model too large to be a real one.
    #[error("unsupported text encoder config `{field}`: {message}")]
    Config {
        /// The `config.json` key at fault.
        field: &'static str,
        /// Its value and what is wrong with it.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A JSON file (`config.json`, `tokenizer_config.json`, `vocab.json`) is malformed.
    #[error("cannot parse {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// The `tokenizers` library rejected a vocabulary, a merges list or a `tokenizer.json`, or
    /// failed on a text; or the bundled vocabulary could not be unpacked.
    #[error("tokenizer error ({context}): {source}")]
    Tokenizer {
        /// Which file or step.
        context: String,
        /// The library's error (`tokenizers::Error`, the boxed error that library returns
        /// everywhere).
        #[source]
        source: tokenizers::Error,
    },
    /// A folder holds no tokenizer files this crate knows.
    #[error(
        "no tokenizer in {path}: expected vocab.json + merges.txt or tokenizer.json, in it or in its tokenizer/ subfolder"
    )]
    NoTokenizer {
        /// The folder searched.
        path: PathBuf,
    },
    /// A vocabulary lacks a token the CLIP tokenizer needs (`<|startoftext|>`, `<|endoftext|>`).
    #[error("the vocabulary has no {token:?} token")]
    MissingSpecialToken {
        /// The token.
        token: String,
    },
    /// A cut of the bundled vocabulary was asked for with more merges than it has, or for an
    /// embedding table too small to hold the 514 tokens every cut keeps.
    #[error(
        "cannot cut the standard CLIP vocabulary to {requested} merges (it has {available}; an embedding table needs at least 514 rows)"
    )]
    VocabularyCut {
        /// The number of merges asked for.
        requested: i64,
        /// The number of merges the bundled vocabulary has.
        available: usize,
    },
    /// The weight store could not list or read its tensors (a truncated or corrupt file).
    ///
    /// It carries the store's own error: burn's `SafetensorsStoreError` for a
    /// `SafetensorsStore` (downcast to reach it). It is boxed because the loaders take any
    /// burn `ModuleStore`, whose error type is the store's choice.
    #[error("cannot read the weights: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A key-rename table of this crate is not a valid regex (a bug in this crate).
    #[error("bad key table regex (a bug in sd-clip): {0}")]
    KeyTable(#[source] regex::Error),
    /// The weights do not fit the model: keys the model needs are absent, keys under the text
    /// encoder's prefix match nothing, or tensors have the wrong shape.
    #[error(
        "text encoder weights do not match the model ({format}): {} missing {missing:?}, {} unused {unused:?}, {} errors {:?}",
        missing.len(),
        unused.len(),
        errors.len(),
        errors.iter().map(ToString::to_string).collect::<Vec<_>>()
    )]
    Weights {
        /// The checkpoint format that was being read.
        format: String,
        /// Parameters of the model that no key provided (model paths).
        missing: Vec<String>,
        /// Keys of the file (under the text encoder's prefix) that no parameter took.
        unused: Vec<String>,
        /// Shape, dtype or read errors, one each, naming the key (burn's errors as it
        /// reported them).
        errors: Vec<burn::store::ApplyError>,
    },
    /// A checkpoint holds no token-embedding table under any key this crate knows, so its
    /// vocabulary size cannot be read.
    #[error("no token-embedding table in the weights (looked for {looked_for:?})")]
    NoTokenEmbedding {
        /// The keys searched.
        looked_for: Vec<String>,
    },
    /// A tensor the loader must rebuild (OpenCLIP's fused `in_proj`) has an unexpected shape.
    #[error("tensor {key} has shape {shape:?}; expected {expected}")]
    BadShape {
        /// The key in the file.
        key: String,
        /// Its shape.
        shape: Vec<usize>,
        /// What was expected.
        expected: String,
    },
    /// A CLIP skip beyond the model's depth (it has `layers` layers, so at most `layers + 1`).
    #[error("CLIP skip {clip_skip} is out of range for a {layers}-layer text encoder (1..={})", layers + 1)]
    ClipSkip {
        /// The requested CLIP skip.
        clip_skip: usize,
        /// The model's number of layers.
        layers: usize,
    },
    /// An embedding override points outside the batch or the sequence, or has the wrong width.
    #[error(
        "embedding override at batch {batch}, position {position} with width {width} does not fit input [{batch_size}, {seq_len}] of width {hidden}"
    )]
    BadOverride {
        /// Its batch index.
        batch: usize,
        /// Its position.
        position: usize,
        /// Its vector's length.
        width: usize,
        /// The input's batch size.
        batch_size: usize,
        /// The input's sequence length.
        seq_len: usize,
        /// The model's hidden size.
        hidden: usize,
    },
    /// A token sequence longer than the model's position table.
    #[error("{len} tokens do not fit the {max}-position text encoder")]
    TooLong {
        /// The sequence length.
        len: usize,
        /// `max_position_embeddings`.
        max: usize,
    },
}

/// `Result` with [`ClipError`].
pub type Result<T, E = ClipError> = std::result::Result<T, E>;

impl ClipError {
    pub(crate) fn tokenizer(context: impl Into<String>, source: tokenizers::Error) -> Self {
        Self::Tokenizer {
            context: context.into(),
            source,
        }
    }
}
