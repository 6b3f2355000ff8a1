//! The embeddings a prompt can name: trigger word → vectors, found by token ids as A1111's
//! `EmbeddingDatabase` does (`modules/textual_inversion/textual_inversion.py`:
//! `register_embedding_by_name`, `find_embedding_at_position`).
//!
//! This is the minimal part the chunker needs. The embeddings database with its file formats
//! builds an [`EmbeddingLookup`] by calling [`EmbeddingLookup::register`] for each file.

use std::collections::HashMap;

use sd_clip::ClipTokenizer;

use super::error::{ConditioningError, Result};

/// A textual-inversion embedding: its trigger word and `n` vectors of width `dim`.
///
/// ```
/// use sd_core::conditioning::TextualInversionVectors;
/// let e = TextualInversionVectors::new("realbenny-t2", vec![0.5; 3 * 768], 3, 768)?;
/// assert_eq!(e.row(2).len(), 768);
/// # Ok::<(), sd_core::conditioning::ConditioningError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TextualInversionVectors {
    /// The trigger word (A1111: the file stem, or the name stored in an image).
    pub name: String,
    /// The vectors, row-major `[n, dim]`, f32.
    pub vectors: Vec<f32>,
    /// Number of vectors (tokens the embedding takes in a prompt).
    pub n: usize,
    /// Width of each vector (768 for SD 1.x, 1024 for SD 2.x).
    pub dim: usize,
    /// A1111's `shorthash` of the file the vectors came from (the first 12 hex digits of its
    /// sha256), written into the `TI hashes` infotext entry; `None` for vectors not read
    /// from a file (A1111 then leaves the embedding out of that entry).
    pub shorthash: Option<String>,
}

impl TextualInversionVectors {
    /// An embedding of `n` vectors of width `dim` from row-major data.
    ///
    /// # Errors
    /// [`ConditioningError::EmbeddingShape`] when `vectors.len() != n * dim` or `n == 0`.
    pub fn new(name: impl Into<String>, vectors: Vec<f32>, n: usize, dim: usize) -> Result<Self> {
        let name = name.into();
        if n == 0 || vectors.len() != n * dim {
            return Err(ConditioningError::EmbeddingShape {
                name,
                len: vectors.len(),
                n,
                dim,
            });
        }
        Ok(Self {
            name,
            vectors,
            n,
            dim,
            shorthash: None,
        })
    }

    /// The same vectors with the file's `shorthash` (see [`shorthash`](Self::shorthash)).
    pub fn with_shorthash(mut self, shorthash: impl Into<String>) -> Self {
        self.shorthash = Some(shorthash.into());
        self
    }

    /// Vector `i`, `[dim]`. Panics if `i >= n`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// Index of an embedding in an [`EmbeddingLookup`] (stable for the lookup's lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmbeddingId(pub usize);

/// Embeddings by the token ids of their names, as A1111's `EmbeddingDatabase.ids_lookup`:
/// first token id → candidates `(name ids, embedding)`, longest first (a stable sort, so among
/// names of equal length the one registered first wins).
///
/// ```
/// use sd_clip::ClipTokenizer;
/// use sd_core::conditioning::{EmbeddingLookup, TextualInversionVectors};
///
/// let tokenizer = ClipTokenizer::standard()?;
/// let mut lookup = EmbeddingLookup::new();
/// let short = lookup.register(TextualInversionVectors::new("benny", vec![0.0; 768], 1, 768)?, &tokenizer)?;
/// let long = lookup.register(TextualInversionVectors::new("benny-t2", vec![0.0; 768], 1, 768)?, &tokenizer)?;
/// let ids = tokenizer.encode("a benny-t2 and benny")?;
/// assert_eq!(lookup.find_at(&ids, 1), Some((long, 4))); // "benny", "-", "t", "2"
/// assert_eq!(lookup.find_at(&ids, 6), Some((short, 1)));
/// assert_eq!(lookup.find_at(&ids, 0), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct EmbeddingLookup {
    embeddings: Vec<Option<TextualInversionVectors>>,
    by_name: HashMap<String, EmbeddingId>,
    ids_lookup: HashMap<u32, Vec<(Vec<u32>, EmbeddingId)>>,
}

impl EmbeddingLookup {
    /// An empty lookup.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `embedding` under its name, tokenized with `tokenizer` (the model's own): A1111's
    /// `register_embedding_by_name`. An embedding already registered under that name is
    /// replaced (its old id then resolves to nothing).
    ///
    /// # Errors
    /// [`ConditioningError::EmptyEmbeddingName`] when the name has no tokens; tokenizer errors.
    pub fn register(
        &mut self,
        embedding: TextualInversionVectors,
        tokenizer: &ClipTokenizer,
    ) -> Result<EmbeddingId> {
        let ids = tokenizer.encode(&embedding.name)?;
        let Some(&first) = ids.first() else {
            return Err(ConditioningError::EmptyEmbeddingName {
                name: embedding.name,
            });
        };
        self.unregister(&embedding.name);
        let id = EmbeddingId(self.embeddings.len());
        self.by_name.insert(embedding.name.clone(), id);
        self.embeddings.push(Some(embedding));
        let candidates = self.ids_lookup.entry(first).or_default();
        candidates.push((ids, id));
        // Python's sorted(..., key=len, reverse=True) is stable: equal lengths keep their order.
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0.len()));
        Ok(id)
    }

    /// Removes the embedding called `name`, if any; returns whether there was one.
    pub fn unregister(&mut self, name: &str) -> bool {
        let Some(old) = self.by_name.remove(name) else {
            return false;
        };
        self.embeddings[old.0] = None;
        self.ids_lookup.retain(|_, candidates| {
            candidates.retain(|(_, id)| *id != old);
            !candidates.is_empty()
        });
        true
    }

    /// The embedding of `id`, unless it was replaced or removed.
    pub fn get(&self, id: EmbeddingId) -> Option<&TextualInversionVectors> {
        self.embeddings.get(id.0).and_then(Option::as_ref)
    }

    /// The id of the embedding called `name`.
    pub fn id_of(&self, name: &str) -> Option<EmbeddingId> {
        self.by_name.get(name).copied()
    }

    /// Number of embeddings registered.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no embedding is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The embeddings registered, with their ids, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (EmbeddingId, &TextualInversionVectors)> {
        self.embeddings
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (EmbeddingId(i), e)))
    }

    /// The embedding whose name's tokens start at `tokens[offset]`, and how many tokens the name
    /// takes: A1111's `find_embedding_at_position` (longest candidate first).
    pub fn find_at(&self, tokens: &[u32], offset: usize) -> Option<(EmbeddingId, usize)> {
        let candidates = self.ids_lookup.get(tokens.get(offset)?)?;
        candidates
            .iter()
            .find(|(ids, _)| tokens[offset..].starts_with(ids))
            .map(|(ids, id)| (*id, ids.len()))
    }
}
