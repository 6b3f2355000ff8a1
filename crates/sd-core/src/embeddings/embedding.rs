//! The embedding value: a trigger word, its vectors and A1111's training metadata, as
//! A1111's `Embedding` class holds them (`modules/textual_inversion/textual_inversion.py`).

use super::error::{EmbeddingError, Result};
use crate::conditioning::TextualInversionVectors;

/// `n` vectors of width `dim`, row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    /// Number of vectors (tokens the embedding takes in a prompt).
    pub n: usize,
    /// Width of each vector (768 SD 1.x, 1024 SD 2.x, 1280 SDXL's `clip_g`).
    pub dim: usize,
    /// `n * dim` values.
    pub data: Vec<f32>,
}

impl Vectors {
    /// Vectors from row-major data.
    ///
    /// # Errors
    /// [`EmbeddingError::Invalid`] when `data.len() != n * dim` or either is zero.
    pub fn new(n: usize, dim: usize, data: Vec<f32>) -> Result<Self> {
        if n == 0 || dim == 0 || n.checked_mul(dim) != Some(data.len()) {
            return Err(EmbeddingError::Invalid {
                name: String::new(),
                reason: format!(
                    "{} values do not make {n} vectors of width {dim}",
                    data.len()
                ),
            });
        }
        Ok(Self { n, dim, data })
    }

    /// Vector `i`, `[dim]`. Panics if `i >= n`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Which file layout an embedding was read from (or is to be written as).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EmbeddingFormat {
    /// A1111's torch file: a dict with `string_to_param` (a dict or a `ParameterDict`).
    A1111Torch,
    /// A torch file holding one `{token: tensor}` (diffusers' `learned_embeds.bin`).
    DiffusersTorch,
    /// A safetensors file holding one `{token: tensor}` (diffusers' `learned_embeds.safetensors`).
    DiffusersSafetensors,
    /// A safetensors file holding `emb_params` (kohya's sd-scripts, A1111 extensions).
    KohyaSafetensors,
    /// An SDXL embedding `{clip_l, clip_g}` (safetensors or torch).
    Sdxl,
    /// A PNG with the `sd-ti-embedding` text chunk (base64 JSON).
    PngText,
    /// A PNG with A1111's pixel encoding (data blocks left and right of the picture).
    PngPixels,
}

impl EmbeddingFormat {
    /// A short stable name (`"a1111-pt"`, `"diffusers-safetensors"`, ...), as the
    /// `embedding inspect` example prints it.
    pub fn name(self) -> &'static str {
        match self {
            EmbeddingFormat::A1111Torch => "a1111-pt",
            EmbeddingFormat::DiffusersTorch => "diffusers-bin",
            EmbeddingFormat::DiffusersSafetensors => "diffusers-safetensors",
            EmbeddingFormat::KohyaSafetensors => "kohya-safetensors",
            EmbeddingFormat::Sdxl => "sdxl",
            EmbeddingFormat::PngText => "png-text-chunk",
            EmbeddingFormat::PngPixels => "png-pixels",
        }
    }
}

/// A textual-inversion embedding with A1111's metadata.
///
/// ```
/// use sd_core::embeddings::{Embedding, Vectors};
/// let e = Embedding::new("realbenny-t1", Vectors::new(1, 4, vec![0.01, -0.02, 0.5, 1.0])?);
/// assert_eq!(e.checksum().as_deref(), Some("30d5"));
/// # Ok::<(), sd_core::embeddings::EmbeddingError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The trigger word: the file stem for tensor files, the stored name for images.
    pub name: String,
    /// The vectors. For an SDXL file, its `clip_l` part (768 wide).
    pub vectors: Vectors,
    /// SDXL's `clip_g` part (1280 wide), when the file had one.
    pub clip_g: Option<Vectors>,
    /// Training steps done (`step`; A1111 writes `None` for files it did not train).
    pub step: Option<i64>,
    /// Short hash of the checkpoint it was trained on (`sd_checkpoint`).
    pub sd_checkpoint: Option<String>,
    /// Name of that checkpoint (`sd_checkpoint_name`).
    pub sd_checkpoint_name: Option<String>,
    /// torch's `requires_grad` on the saved tensor: A1111 saves `True` from training (its
    /// `embedding.vec.requires_grad = True`) and `False` from "Create embedding".
    pub requires_grad: bool,
}

impl Embedding {
    /// An embedding without metadata (`step` etc. `None`, `requires_grad` false).
    pub fn new(name: impl Into<String>, vectors: Vectors) -> Self {
        Self {
            name: name.into(),
            vectors,
            clip_g: None,
            step: None,
            sd_checkpoint: None,
            sd_checkpoint_name: None,
            requires_grad: false,
        }
    }

    /// Checks that every part's values fill its declared `[n, dim]` (the fields are public,
    /// so writers check before indexing).
    ///
    /// # Errors
    /// [`EmbeddingError::Invalid`].
    pub fn validate(&self) -> Result<()> {
        for (part, v) in std::iter::once(("vectors", &self.vectors))
            .chain(self.clip_g.as_ref().map(|g| ("clip_g", g)))
        {
            if v.n == 0 || v.dim == 0 || v.n.checked_mul(v.dim) != Some(v.data.len()) {
                return Err(EmbeddingError::Invalid {
                    name: self.name.clone(),
                    reason: format!(
                        "{part}: {} values do not make {} vectors of width {}",
                        v.data.len(),
                        v.n,
                        v.dim
                    ),
                });
            }
        }
        Ok(())
    }

    /// The width A1111 compares with the model's (`Embedding.shape`): the vector width, or
    /// `clip_l + clip_g` widths (2048) for SDXL.
    pub fn shape(&self) -> usize {
        self.vectors.dim + self.clip_g.as_ref().map_or(0, |g| g.dim)
    }

    /// The vectors to use with a text encoder of width `dim`: the main vectors when they are
    /// that wide, else SDXL's `clip_g` when it is; `None` when neither fits.
    pub fn vectors_for_width(&self, dim: usize) -> Option<&Vectors> {
        if self.vectors.dim == dim {
            Some(&self.vectors)
        } else {
            self.clip_g.as_ref().filter(|g| g.dim == dim)
        }
    }

    /// A1111's `Embedding.checksum()`: `const_hash(vec.reshape(-1) * 100) & 0xffff` as 4
    /// lowercase hex digits, where `const_hash` folds `r = (r * 281 ^ int(v) * 997) &
    /// 0xFFFFFFFF` over the f32 products. `None` when a value is NaN or infinite (Python's
    /// `int()` raises there), and for SDXL embeddings (A1111's `vec` is then a dict and the
    /// method fails).
    pub fn checksum(&self) -> Option<String> {
        if self.clip_g.is_some() {
            return None;
        }
        checksum(&self.vectors.data).map(|c| format!("{c:04x}"))
    }

    /// The vectors for the prompt encoder's [`crate::conditioning::EmbeddingLookup`], for a
    /// text encoder of width `dim`.
    ///
    /// # Errors
    /// [`EmbeddingError::Invalid`] when no part of the embedding is `dim` wide.
    pub fn to_lookup_vectors(&self, dim: usize) -> Result<TextualInversionVectors> {
        let v = self
            .vectors_for_width(dim)
            .ok_or_else(|| EmbeddingError::Invalid {
                name: self.name.clone(),
                reason: width_mismatch(self.shape(), dim),
            })?;
        Ok(TextualInversionVectors::new(
            self.name.clone(),
            v.data.clone(),
            v.n,
            v.dim,
        )?)
    }
}

/// The skip reason of an embedding whose width does not fit the model.
pub(crate) fn width_mismatch(embedding: usize, model: usize) -> String {
    format!("trained for a {embedding}-wide text encoder; this model's is {model}")
}

/// A1111's `const_hash(vec.reshape(-1) * 100) & 0xffff`.
fn checksum(values: &[f32]) -> Option<u32> {
    let mut r: u32 = 0;
    for &v in values {
        // torch multiplies in f32; Python's int() truncates toward zero. Only the low 32 bits
        // of the Python integers survive the final mask, and `*`/`^` commute with taking
        // them, so wrapping u32 arithmetic on the two's-complement low bits is exact.
        let x = v * 100.0;
        if !x.is_finite() {
            return None;
        }
        let t = x.trunc();
        // |t| >= 2^63: an f32 that large is a multiple of 2^40, so its low 32 bits are 0.
        let low = if t.abs() < 9.223_372e18 {
            (t as i64) as u32
        } else {
            0
        };
        r = r.wrapping_mul(281) ^ low.wrapping_mul(997);
    }
    Some(r & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_python_for_negative_and_large_values() {
        // Python: r = 0; for v in [-1.5, 3e10, 0.004]: r = (r*281 ^ int(v)*997) & 0xFFFFFFFF
        // with v the f32 values * 100: int(-150.0) = -150, int(3e12) = 3000000053248 (f32),
        // int(0.4) = 0.
        let py = {
            let mut r: i128 = 0;
            for v in [-150i128, 3_000_000_053_248, 0] {
                r = ((r * 281) ^ (v * 997)) & 0xFFFF_FFFF;
            }
            (r & 0xffff) as u32
        };
        assert_eq!((3e10f32 * 100.0) as i64, 3_000_000_053_248);
        assert_eq!(checksum(&[-1.5, 3e10, 0.004]), Some(py));
        assert_eq!(checksum(&[f32::NAN]), None);
    }
}
