//! A prompt line → 77-token chunks: A1111's `tokenize_line`
//! (`modules/sd_hijack_clip.py`, `FrozenCLIPEmbedderWithCustomWordsBase`).
//!
//! The text is split into runs of equal emphasis ([`sd_prompt::parse_attention`]); each run is
//! tokenized on its own; tokens fill chunks of 75, each then framed as BOS + 75 + EOS. Rules, in
//! A1111's order, for each token:
//! - a comma remembers its place in the chunk;
//! - a full chunk whose last comma is at most `comma_padding_backtrack` (20) tokens back is cut
//!   after that comma, and the tokens after it move to the next chunk;
//! - a full chunk is closed (padded with EOS);
//! - a token sequence that spells an embedding's name becomes that many placeholder tokens (id
//!   0) and a [`ChunkFix`]; an embedding that does not fit in what is left of the chunk goes
//!   whole into the next one;
//! - `BREAK` closes the chunk.
//!
//! The empty prompt is one chunk.

use sd_clip::ClipTokenizer;
use sd_prompt::parse_attention;

use super::{
    embedding::{EmbeddingId, EmbeddingLookup},
    error::{ConditioningError, Result},
};

/// Prompt tokens per chunk (A1111's `chunk_length`).
pub const CHUNK_LENGTH: usize = 75;
/// Tokens per chunk with BOS and EOS: CLIP's context length.
pub const CHUNK_TOKENS: usize = CHUNK_LENGTH + 2;
/// A1111's default `comma_padding_backtrack`: how far back a comma may be for the text after
/// it to move to the next chunk.
pub const COMMA_PADDING_BACKTRACK: usize = 20;

/// A1111's emphasis setting (`opts.emphasis`, `modules/sd_emphasis.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emphasis {
    /// "Original" (the default): multiply each token's output by its weight, then scale the
    /// whole batch back to its original mean.
    #[default]
    Original,
    /// "No norm": multiply by the weights, no mean restoring.
    NoNorm,
    /// "Ignore": parse the syntax but apply no weights.
    Ignore,
    /// "None": no emphasis syntax at all; brackets and `BREAK` are literal text.
    None,
}

/// Where an embedding's vectors go: the placeholder tokens from `offset` (counted in the
/// chunk's prompt tokens, so at position `offset + 1` of the 77 with BOS) take the vectors of
/// `embedding`. A1111's `PromptChunkFix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkFix {
    /// Index of the first placeholder among the chunk's prompt tokens (BOS not counted).
    pub offset: usize,
    /// The embedding.
    pub embedding: EmbeddingId,
}

/// One 77-token chunk of a prompt: BOS, 75 prompt tokens (EOS-padded), EOS; a weight per token;
/// the embeddings spliced into it. A1111's `PromptChunk`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptChunk {
    /// Token ids, BOS and EOS included. Embedding placeholders are 0.
    pub tokens: [u32; CHUNK_TOKENS],
    /// Emphasis weight of each token (1.0 for BOS, EOS and padding), as f32 like A1111's
    /// `torch.asarray(multipliers)`.
    pub weights: [f32; CHUNK_TOKENS],
    /// The embeddings in this chunk.
    pub fixes: Vec<ChunkFix>,
}

/// A prompt line in chunks, and its token count for the UI (A1111's "12/75" counter).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedPrompt {
    /// The chunks, at least one.
    pub chunks: Vec<PromptChunk>,
    /// Tokens used: 75 per closed chunk plus the prompt tokens of the last one.
    pub token_count: usize,
}

impl TokenizedPrompt {
    /// The count the UI shows after the slash: `token_count` rounded up to whole chunks (at
    /// least one). A1111's `get_target_prompt_token_count`.
    pub fn target_token_count(&self) -> usize {
        target_token_count(self.token_count)
    }
}

/// `token_count` rounded up to a multiple of 75, at least 75.
pub fn target_token_count(token_count: usize) -> usize {
    token_count.max(1).div_ceil(CHUNK_LENGTH) * CHUNK_LENGTH
}

/// Splits prompt lines into chunks, with a tokenizer and the embeddings it recognises.
///
/// ```
/// use sd_clip::ClipTokenizer;
/// use sd_core::conditioning::{Chunker, EmbeddingLookup};
///
/// let tokenizer = ClipTokenizer::standard()?;
/// let embeddings = EmbeddingLookup::new();
/// let chunker = Chunker::new(&tokenizer, &embeddings);
/// let line = chunker.tokenize_line("a (photo:1.3) of a cat")?;
/// assert_eq!(line.token_count, 5);
/// assert_eq!(line.target_token_count(), 75);
/// let chunk = &line.chunks[0];
/// assert_eq!(chunk.tokens[..7], [49406, 320, 1125, 539, 320, 2368, 49407]);
/// assert_eq!(chunk.weights[..4], [1.0, 1.0, 1.3, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Chunker<'a> {
    tokenizer: &'a ClipTokenizer,
    embeddings: &'a EmbeddingLookup,
    comma: Option<u32>,
    comma_padding_backtrack: usize,
    emphasis: Emphasis,
}

/// A chunk being filled: prompt tokens only, no BOS/EOS yet.
#[derive(Default)]
struct OpenChunk {
    tokens: Vec<u32>,
    weights: Vec<f32>,
    fixes: Vec<ChunkFix>,
}

impl<'a> Chunker<'a> {
    /// A chunker with A1111's defaults: comma backtrack 20, "Original" emphasis.
    pub fn new(tokenizer: &'a ClipTokenizer, embeddings: &'a EmbeddingLookup) -> Self {
        Self {
            tokenizer,
            embeddings,
            comma: tokenizer.token_to_id(",</w>"),
            comma_padding_backtrack: COMMA_PADDING_BACKTRACK,
            emphasis: Emphasis::Original,
        }
    }

    /// The same with another `comma_padding_backtrack` (0 turns it off).
    pub fn with_comma_padding_backtrack(mut self, tokens: usize) -> Self {
        self.comma_padding_backtrack = tokens;
        self
    }

    /// The same with another emphasis setting ([`Emphasis::None`] stops parsing the syntax).
    pub fn with_emphasis(mut self, emphasis: Emphasis) -> Self {
        self.emphasis = emphasis;
        self
    }

    /// The embeddings it recognises.
    pub fn embeddings(&self) -> &'a EmbeddingLookup {
        self.embeddings
    }

    /// A chunk of nothing: BOS then 76 EOS, weights 1 (A1111's `empty_chunk`, what pads the
    /// shorter texts of a batch).
    pub fn empty_chunk(&self) -> PromptChunk {
        let mut tokens = [self.tokenizer.eos_id(); CHUNK_TOKENS];
        tokens[0] = self.tokenizer.bos_id();
        PromptChunk {
            tokens,
            weights: [1.0; CHUNK_TOKENS],
            fixes: Vec::new(),
        }
    }

    /// Chunks of one prompt line (no `AND`, no scheduling: one scheduled text).
    ///
    /// # Errors
    /// [`ConditioningError::EmbeddingTooLong`] for an embedding of more than 75 vectors;
    /// tokenizer errors.
    pub fn tokenize_line(&self, line: &str) -> Result<TokenizedPrompt> {
        let parsed: Vec<(String, f64, bool)> = if self.emphasis == Emphasis::None {
            vec![(line.to_string(), 1.0, false)]
        } else {
            parse_attention(line)
                .into_iter()
                .map(|a| {
                    let is_break = a.is_break();
                    (a.text, a.weight, is_break)
                })
                .collect()
        };
        let mut state = State {
            chunker: self,
            chunks: Vec::new(),
            chunk: OpenChunk::default(),
            token_count: 0,
            last_comma: None,
        };
        for (text, weight, is_break) in parsed {
            if is_break {
                state.next_chunk(false);
                continue;
            }
            let tokens = self.tokenizer.encode(&text)?;
            // torch.asarray of Python floats: f32, rounded once. A weight past f32's range
            // is infinity there, and NaN once the mean is restored: refused here instead.
            let parsed_weight = weight;
            let weight = weight as f32;
            let weighted = matches!(self.emphasis, Emphasis::Original | Emphasis::NoNorm);
            if weighted && !weight.is_finite() {
                return Err(ConditioningError::WeightOutOfRange {
                    text: text.chars().take(60).collect(),
                    weight: parsed_weight,
                });
            }
            let mut position = 0;
            while position < tokens.len() {
                let token = tokens[position];
                let chunk_len = state.chunk.tokens.len();
                if Some(token) == self.comma {
                    state.last_comma = Some(chunk_len);
                } else if let Some(comma) = state.last_comma.filter(|&c| {
                    self.comma_padding_backtrack != 0
                        && chunk_len == CHUNK_LENGTH
                        && chunk_len - c <= self.comma_padding_backtrack
                }) {
                    let tail = comma + 1;
                    let moved_tokens = state.chunk.tokens.split_off(tail);
                    let moved_weights = state.chunk.weights.split_off(tail);
                    // As in A1111, only tokens and weights move: an embedding placed after
                    // the comma keeps its fix in the closed chunk (where its vectors then land
                    // on the EOS padding) and its placeholders move on without one.
                    state.next_chunk(false);
                    state.chunk.tokens = moved_tokens;
                    state.chunk.weights = moved_weights;
                }
                if state.chunk.tokens.len() == CHUNK_LENGTH {
                    state.next_chunk(false);
                }
                let Some((id, name_tokens)) = self.embeddings.find_at(&tokens, position) else {
                    state.chunk.tokens.push(token);
                    state.chunk.weights.push(weight);
                    position += 1;
                    continue;
                };
                let vectors = self.embeddings.get(id).map_or(0, |e| e.n);
                if vectors > CHUNK_LENGTH {
                    return Err(ConditioningError::EmbeddingTooLong {
                        name: self
                            .embeddings
                            .get(id)
                            .map(|e| e.name.clone())
                            .unwrap_or_default(),
                        vectors,
                        max: CHUNK_LENGTH,
                    });
                }
                if state.chunk.tokens.len() + vectors > CHUNK_LENGTH {
                    state.next_chunk(false);
                }
                state.chunk.fixes.push(ChunkFix {
                    offset: state.chunk.tokens.len(),
                    embedding: id,
                });
                state.chunk.tokens.extend(std::iter::repeat_n(0, vectors));
                state
                    .chunk
                    .weights
                    .extend(std::iter::repeat_n(weight, vectors));
                position += name_tokens;
            }
        }
        if !state.chunk.tokens.is_empty() || state.chunks.is_empty() {
            state.next_chunk(true);
        }
        Ok(TokenizedPrompt {
            chunks: state.chunks,
            token_count: state.token_count,
        })
    }
}

/// `tokenize_line`'s locals and its `next_chunk` closure.
struct State<'c, 'a> {
    chunker: &'c Chunker<'a>,
    chunks: Vec<PromptChunk>,
    chunk: OpenChunk,
    token_count: usize,
    last_comma: Option<usize>,
}

impl State<'_, '_> {
    /// Closes the open chunk: EOS-pads it to 75, frames it with BOS/EOS. The last chunk counts
    /// its own tokens, every other one 75.
    fn next_chunk(&mut self, is_last: bool) {
        let chunk = std::mem::take(&mut self.chunk);
        self.token_count += if is_last {
            chunk.tokens.len()
        } else {
            CHUNK_LENGTH
        };
        let tokenizer = self.chunker.tokenizer;
        let mut tokens = [tokenizer.eos_id(); CHUNK_TOKENS];
        let mut weights = [1.0; CHUNK_TOKENS];
        tokens[0] = tokenizer.bos_id();
        // At most 75 prompt tokens: the chunker never lets a chunk grow past that.
        let n = chunk.tokens.len().min(CHUNK_LENGTH);
        tokens[1..=n].copy_from_slice(&chunk.tokens[..n]);
        weights[1..=n].copy_from_slice(&chunk.weights[..n]);
        self.last_comma = None;
        self.chunks.push(PromptChunk {
            tokens,
            weights,
            fixes: chunk.fixes,
        });
    }
}
