//! The error type of the conditioning module.

/// What can go wrong between a prompt and the tensor the UNet sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConditioningError {
    /// The tokenizer or the text encoder failed (a CLIP skip beyond the model's layers, an
    /// embedding vector of the wrong width).
    #[error("text encoder: {0}")]
    Clip(#[from] sd_clip::ClipError),
    /// An embedding's data is not `n × dim` values.
    #[error("embedding {name:?}: {len} values is not {n} vectors × {dim}")]
    EmbeddingShape {
        /// The embedding's trigger word.
        name: String,
        /// Number of values given.
        len: usize,
        /// Vectors claimed.
        n: usize,
        /// Width claimed.
        dim: usize,
    },
    /// An embedding name that tokenizes to no token at all (A1111 fails on it too).
    #[error("embedding name {name:?} has no tokens")]
    EmptyEmbeddingName {
        /// The name.
        name: String,
    },
    /// An embedding with more vectors than a 75-token chunk holds (A1111 then builds a chunk
    /// longer than CLIP's 77 positions and fails in the text encoder).
    #[error("embedding {name:?} has {vectors} vectors; a prompt chunk holds at most {max}")]
    EmbeddingTooLong {
        /// The embedding's trigger word.
        name: String,
        /// Its vector count.
        vectors: usize,
        /// The chunk length (75).
        max: usize,
    },
    /// An embedding's width is not the text encoder's.
    #[error("embedding {name:?} is {dim} wide but the text encoder is {hidden} wide")]
    EmbeddingWidth {
        /// The embedding's trigger word.
        name: String,
        /// Its width.
        dim: usize,
        /// The text encoder's hidden size.
        hidden: usize,
    },
    /// A chunk names an embedding the lookup no longer holds (replaced or removed after the
    /// prompt was tokenized).
    #[error("embedding #{id} is not in the lookup")]
    UnknownEmbedding {
        /// The embedding's index.
        id: usize,
    },
    /// An emphasis weight that is no finite f32: `(cat:1e40)`, or a thousand nested
    /// brackets (1.1¹⁰⁰⁰). A1111 rounds it to infinity and its UNet then raises
    /// `NansException`; here the prompt is refused before encoding.
    #[error(
        "emphasis weight {weight:e} of {text:?} is out of range: it becomes {} as f32, and the \
         picture would be NaN",
        *weight as f32
    )]
    WeightOutOfRange {
        /// The emphasised text (its first 60 characters).
        text: String,
        /// The parsed weight.
        weight: f64,
    },
    /// Nothing to encode (an empty batch).
    #[error("no texts to encode")]
    NoTexts,
    /// Conditioning tensors that must share a shape do not (A1111 raises here too, e.g. a batch
    /// of negative prompts of different chunk counts).
    #[error("conditioning shapes differ: {what}")]
    ShapeMismatch {
        /// Which tensors, and their shapes.
        what: String,
    },
}

/// `Result` with a [`ConditioningError`].
pub type Result<T> = std::result::Result<T, ConditioningError>;
