//! Chunks → the text encoder → the conditioning tensor: A1111's
//! `FrozenCLIPEmbedderWithCustomWordsBase.forward` / `process_tokens`, `EmbeddingsWithFixes`
//! (`modules/sd_hijack.py`) and the emphasis of `modules/sd_emphasis.py`.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use sd_clip::{ClipTextModel, ClipTokenizer, EmbeddingOverride};

use super::{
    chunk::{CHUNK_TOKENS, Chunker, Emphasis, PromptChunk, TokenizedPrompt},
    embedding::{EmbeddingId, EmbeddingLookup},
    emphasis::apply_emphasis,
    error::{ConditioningError, Result},
    flavour::ModelFlavour,
    usage::EmbeddingUsage,
};

/// Encodes prompts the way A1111 does, over a tokenizer, a CLIP text model and the embeddings
/// the prompts may name.
///
/// ```no_run
/// # fn demo(tokenizer: &sd_clip::ClipTokenizer, model: &sd_clip::ClipTextModel)
/// #     -> Result<(), sd_core::conditioning::ConditioningError> {
/// use sd_core::conditioning::{EmbeddingLookup, ModelFlavour, PromptEncoder};
///
/// let embeddings = EmbeddingLookup::new();
/// let encoder = PromptEncoder::new(tokenizer, model, &embeddings, ModelFlavour::Sd1)
///     .with_clip_skip(2);
/// let cond = encoder.encode("a (photo:1.3) of a cat")?; // [1, 77, 768]
/// let long = encoder.encode(&"cat ".repeat(100))?; // [1, 154, 768]
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PromptEncoder<'a> {
    tokenizer: &'a ClipTokenizer,
    model: &'a ClipTextModel,
    embeddings: &'a EmbeddingLookup,
    flavour: ModelFlavour,
    clip_skip: usize,
    emphasis: Emphasis,
    comma_padding_backtrack: usize,
    usage: Option<&'a EmbeddingUsage>,
}

impl<'a> PromptEncoder<'a> {
    /// An encoder with A1111's defaults: CLIP skip 1, "Original" emphasis, comma backtrack 20.
    pub fn new(
        tokenizer: &'a ClipTokenizer,
        model: &'a ClipTextModel,
        embeddings: &'a EmbeddingLookup,
        flavour: ModelFlavour,
    ) -> Self {
        Self {
            tokenizer,
            model,
            embeddings,
            flavour,
            clip_skip: 1,
            emphasis: Emphasis::Original,
            comma_padding_backtrack: super::chunk::COMMA_PADDING_BACKTRACK,
            usage: None,
        }
    }

    /// Records in `usage` the embeddings each text-model pass uses (each call of
    /// [`encode_batch_with`](Self::encode_batch_with) is one pass), for A1111's `TI hashes`.
    pub fn with_usage(mut self, usage: &'a EmbeddingUsage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// A1111's "Clip skip" (`CLIP_stop_at_last_layers`): 1 is the last layer. Ignored for SD 2.x,
    /// as in A1111 (see [`ModelFlavour::effective_clip_skip`]).
    pub fn with_clip_skip(mut self, clip_skip: usize) -> Self {
        self.clip_skip = clip_skip;
        self
    }

    /// A1111's emphasis setting.
    pub fn with_emphasis(mut self, emphasis: Emphasis) -> Self {
        self.emphasis = emphasis;
        self
    }

    /// A1111's `comma_padding_backtrack` (0 turns it off).
    pub fn with_comma_padding_backtrack(mut self, tokens: usize) -> Self {
        self.comma_padding_backtrack = tokens;
        self
    }

    /// The model flavour.
    pub fn flavour(&self) -> ModelFlavour {
        self.flavour
    }

    /// The embeddings prompts may name.
    pub fn embeddings(&self) -> &'a EmbeddingLookup {
        self.embeddings
    }

    /// The device the text model lives on.
    pub fn device(&self) -> Device {
        self.model.embeddings.token_embedding.weight.val().device()
    }

    /// The chunker with this encoder's settings.
    pub fn chunker(&self) -> Chunker<'a> {
        Chunker::new(self.tokenizer, self.embeddings)
            .with_comma_padding_backtrack(self.comma_padding_backtrack)
            .with_emphasis(self.emphasis)
    }

    /// The chunks of one text (see [`Chunker::tokenize_line`]).
    ///
    /// # Errors
    /// As [`Chunker::tokenize_line`].
    pub fn tokenize(&self, text: &str) -> Result<TokenizedPrompt> {
        self.chunker().tokenize_line(text)
    }

    /// The UI's token counter for `text`: `(tokens used, tokens before another chunk is
    /// needed)`, A1111's `get_prompt_lengths`.
    ///
    /// # Errors
    /// As [`Chunker::tokenize_line`].
    pub fn prompt_lengths(&self, text: &str) -> Result<(usize, usize)> {
        let line = self.tokenize(text)?;
        Ok((line.token_count, line.target_token_count()))
    }

    /// One text's conditioning.
    ///
    /// # Shapes
    /// - output: `[1, 77 · chunks, hidden_size]`
    ///
    /// # Errors
    /// Tokenizer, embedding and text-model errors.
    pub fn encode(&self, text: &str) -> Result<Tensor<3>> {
        self.encode_batch(&[text])
    }

    /// Texts encoded together, as A1111 encodes the scheduled texts of one prompt: chunk `i`
    /// of every text goes through the model as one batch (texts with fewer chunks get
    /// [`Chunker::empty_chunk`]s), and the "Original" emphasis restores the mean of that whole
    /// batch — so a text's tensor depends on the texts beside it, exactly as in A1111.
    ///
    /// # Shapes
    /// - output: `[texts.len(), 77 · max chunks, hidden_size]`
    ///
    /// # Errors
    /// [`ConditioningError::NoTexts`] for an empty slice; as [`encode`](Self::encode).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Tensor<3>> {
        let device = self.device();
        let mut cache: HashMap<EmbeddingId, Tensor<2>> = HashMap::new();
        self.encode_batch_with(texts, &mut |id| {
            if let Some(t) = cache.get(&id) {
                return Ok(t.clone());
            }
            let e = self
                .embeddings
                .get(id)
                .ok_or(ConditioningError::UnknownEmbedding { id: id.0 })?;
            let t =
                Tensor::<2>::from_data(TensorData::new(e.vectors.clone(), [e.n, e.dim]), &device);
            cache.insert(id, t.clone());
            Ok(t)
        })
    }

    /// [`encode_batch`](Self::encode_batch) with the embeddings' vectors supplied by `vectors`
    /// (`[n, hidden_size]` for an embedding id): the gradient path. Pass tensors that require
    /// gradients on an autodiff device and the result is differentiable in them (they enter
    /// through [`EmbeddingOverride`]s; the frozen token table gets no gradient).
    ///
    /// # Shapes
    /// - `vectors(id)`: `[n, hidden_size]`
    /// - output: `[texts.len(), 77 · max chunks, hidden_size]`
    ///
    /// # Errors
    /// As [`encode_batch`](Self::encode_batch), and whatever `vectors` returns.
    pub fn encode_batch_with(
        &self,
        texts: &[&str],
        vectors: &mut dyn FnMut(EmbeddingId) -> Result<Tensor<2>>,
    ) -> Result<Tensor<3>> {
        if texts.is_empty() {
            return Err(ConditioningError::NoTexts);
        }
        let chunker = self.chunker();
        let lines = texts
            .iter()
            .map(|t| chunker.tokenize_line(t))
            .collect::<Result<Vec<_>>>()?;
        let chunk_count = lines.iter().map(|l| l.chunks.len()).max().unwrap_or(1);
        if let Some(usage) = self.usage {
            let chunks: Vec<&[PromptChunk]> = lines.iter().map(|l| l.chunks.as_slice()).collect();
            usage.record(&chunks, chunk_count);
        }
        let empty = chunker.empty_chunk();
        let zs = (0..chunk_count)
            .map(|i| {
                let batch: Vec<&PromptChunk> = lines
                    .iter()
                    .map(|l| l.chunks.get(i).unwrap_or(&empty))
                    .collect();
                self.encode_chunks(&batch, vectors)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(zs, 1))
    }

    /// One chunk per sequence through the text model, embeddings spliced in, emphasis applied:
    /// A1111's `process_tokens`.
    ///
    /// # Shapes
    /// - output: `[batch.len(), 77, hidden_size]`
    ///
    /// # Errors
    /// Embedding and text-model errors; [`ConditioningError::NoTexts`] for an empty batch.
    pub fn encode_chunks(
        &self,
        batch: &[&PromptChunk],
        vectors: &mut dyn FnMut(EmbeddingId) -> Result<Tensor<2>>,
    ) -> Result<Tensor<3>> {
        if batch.is_empty() {
            return Err(ConditioningError::NoTexts);
        }
        let device = self.device();
        let b = batch.len();
        let ids = self.model_input(batch);
        let ids = Tensor::<2, Int>::from_ints(TensorData::new(ids, [b, CHUNK_TOKENS]), &device);
        let overrides = self.overrides(batch, vectors)?;
        let z = self.model.forward_clip_skip(
            ids,
            &overrides,
            self.flavour.effective_clip_skip(self.clip_skip),
        )?;
        let weights: Vec<f32> = batch.iter().flat_map(|c| c.weights).collect();
        Ok(apply_emphasis(self.emphasis, z, &weights))
    }

    /// The token ids the model sees: for SD 2.x everything after each chunk's first EOS
    /// becomes the pad id.
    fn model_input(&self, batch: &[&PromptChunk]) -> Vec<i32> {
        let eos = self.tokenizer.eos_id();
        let pad = self.flavour.pad_id(self.tokenizer);
        let mut ids = Vec::with_capacity(batch.len() * CHUNK_TOKENS);
        for chunk in batch {
            let mut after_eos = false;
            for &t in &chunk.tokens {
                ids.push(if after_eos && pad != eos { pad } else { t } as i32);
                after_eos |= t == eos;
            }
        }
        ids
    }

    /// `EmbeddingsWithFixes`: vector `j` of a fix at `offset` replaces position
    /// `offset + 1 + j`, for `j < min(77 - offset - 1, n)`.
    fn overrides(
        &self,
        batch: &[&PromptChunk],
        vectors: &mut dyn FnMut(EmbeddingId) -> Result<Tensor<2>>,
    ) -> Result<Vec<EmbeddingOverride>> {
        let [_, hidden] = self.model.embeddings.token_embedding.weight.dims();
        let mut overrides = Vec::new();
        for (b, chunk) in batch.iter().enumerate() {
            for fix in &chunk.fixes {
                let v = vectors(fix.embedding)?;
                let [n, dim] = v.dims();
                if dim != hidden {
                    let name = self
                        .embeddings
                        .get(fix.embedding)
                        .map(|e| e.name.clone())
                        .unwrap_or_default();
                    return Err(ConditioningError::EmbeddingWidth { name, dim, hidden });
                }
                let len = n.min(CHUNK_TOKENS.saturating_sub(fix.offset + 1));
                for j in 0..len {
                    let row = v.clone().slice([j..j + 1, 0..dim]).reshape([dim]);
                    overrides.push(EmbeddingOverride::new(b, fix.offset + 1 + j, row));
                }
            }
        }
        Ok(overrides)
    }
}
