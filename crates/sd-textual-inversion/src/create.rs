//! Step 1 of the workflow: a new embedding's name and starting vectors, as A1111's
//! `create_embedding` makes them.

use burn::tensor::{Int, Tensor, TensorData};
use sd_core::StableDiffusion;
use sd_core::embeddings::{Embedding, Vectors};
use sd_core::sd_prompt::unicode::is_word;

use crate::error::{Result, TrainError};
use crate::train::MAX_VECTORS;

/// The name A1111 keeps: characters that are letters or digits (Unicode, as Python's
/// `str.isalnum`) or one of `. _ - ` and space; everything else is dropped.
///
/// ```
/// use sd_textual_inversion::create::sanitize_name;
/// assert_eq!(sanitize_name("real benny/t1?"), "real bennyt1");
/// assert_eq!(sanitize_name("café_2.0"), "café_2.0");
/// ```
pub fn sanitize_name(name: &str) -> String {
    name.chars()
        .filter(|&c| (is_word(c) && c != '_') || "._- ".contains(c))
        .collect()
}

/// Checks a number of vectors per token: 1 to [`MAX_VECTORS`] (75, one prompt chunk; A1111's
/// slider stops there too, and a longer embedding cannot be placed in a prompt).
///
/// # Errors
/// [`TrainError::InvalidConfig`] for 0, [`TrainError::OverLimit`] above the cap.
pub fn check_vectors(vectors: usize) -> Result<()> {
    if vectors == 0 {
        return Err(TrainError::InvalidConfig {
            name: "vectors",
            reason: "0: an embedding needs at least 1 vector per token".into(),
        });
    }
    if vectors > MAX_VECTORS {
        return Err(TrainError::OverLimit {
            setting: "vectors",
            value: vectors as u64,
            limit: MAX_VECTORS as u64,
            why: "an embedding must fit in one 75-token prompt chunk",
        });
    }
    Ok(())
}

/// [`sanitize_name`], refused when nothing usable is left or the result cannot name a file
/// (see [`check_embedding_name`](crate::train::check_embedding_name)): the name a created
/// embedding gets, known before any model loads.
///
/// ```
/// use sd_textual_inversion::create::sanitized_name;
/// assert_eq!(sanitized_name("real benny/t1?")?, "real bennyt1");
/// assert!(sanitized_name("..").is_err());
/// assert!(sanitized_name("???").is_err());
/// # Ok::<(), sd_textual_inversion::TrainError>(())
/// ```
///
/// # Errors
/// [`TrainError::InvalidEmbeddingName`].
pub fn sanitized_name(name: &str) -> Result<String> {
    let clean = sanitize_name(name);
    if clean.trim().is_empty() {
        return Err(TrainError::InvalidEmbeddingName {
            name: name.to_owned(),
            reason: "it has no letter, digit or one of `._- `",
        });
    }
    crate::train::check_embedding_name(&clean)?;
    Ok(clean)
}

/// The starting vectors of an embedding of `vectors` vectors: the token-embedding rows of
/// `init_text`'s tokens (no BOS/EOS, not truncated), row `i` taken from token
/// `⌊i · tokens / vectors⌋` so few tokens are stretched and many are subsampled, as A1111
/// does; zeros when `init_text` is empty. Row-major `[vectors, hidden_size]`.
///
/// # Errors
/// As [`check_vectors`]; tokenizer errors.
pub fn initial_vectors(
    model: &StableDiffusion,
    init_text: &str,
    vectors: usize,
) -> Result<Vec<f32>> {
    check_vectors(vectors)?;
    let table = model.text_encoder.embeddings.token_embedding.weight.val();
    let [_, dim] = table.dims();
    if init_text.is_empty() {
        return Ok(vec![0.0; vectors * dim]);
    }
    // A1111 tokenizes an empty text as `*` for the model's sake; only a non-empty one is used.
    let ids = model
        .tokenizer
        .encode(init_text)
        .map_err(|e| TrainError::Conditioning(e.into()))?;
    if ids.is_empty() {
        return Ok(vec![0.0; vectors * dim]);
    }
    let rows: Vec<i64> = (0..vectors)
        .map(|i| ids[i * ids.len() / vectors] as i64)
        .collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [vectors]), &table.device());
    table
        .select(0, index)
        .into_data()
        // f32 whatever the text encoder computes in (an embedding is always f32).
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|source| TrainError::ReadBack {
            what: "the token embeddings",
            source,
        })
}

/// A new embedding, as A1111's "Create embedding": the sanitised `name`, `vectors` vectors
/// from `init_text` ([`initial_vectors`]), step 0.
///
/// ```no_run
/// # fn demo(model: &sd_textual_inversion::sd_core::StableDiffusion) -> sd_textual_inversion::Result<()> {
/// let e = sd_textual_inversion::create::create_embedding(model, "realbenny-t1", "person", 2)?;
/// assert_eq!(e.vectors.n, 2);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`initial_vectors`] and [`sanitized_name`].
pub fn create_embedding(
    model: &StableDiffusion,
    name: &str,
    init_text: &str,
    vectors: usize,
) -> Result<Embedding> {
    let clean = sanitized_name(name)?;
    let data = initial_vectors(model, init_text, vectors)?;
    let dim = data.len() / vectors;
    let vectors = Vectors::new(vectors, dim, data).map_err(sd_core::CoreError::from)?;
    let mut embedding = Embedding::new(clean, vectors);
    embedding.step = Some(0);
    Ok(embedding)
}
