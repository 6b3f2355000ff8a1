//! Textual-inversion embeddings for this model in one call: a file, or a folder as A1111
//! loads its `embeddings` folder, checked against the text encoder's width.

use std::path::{Path, PathBuf};

use super::StableDiffusion;
use crate::conditioning::EmbeddingLookup;
use crate::embeddings::{EmbeddingDatabase, EmbeddingError, SkipReason, file_shorthash, read_file};
use crate::error::Result;

impl StableDiffusion {
    /// The embedding in the file at `path` (`.pt`, `.bin`, `.safetensors` or an image
    /// embedding in any layout A1111, diffusers and kohya write), ready for prompts: its
    /// name, the file's stem as A1111 uses it, becomes a word of the prompt language. The
    /// `TI hashes` of the pictures made with it carry the file's shorthash, as A1111's do.
    ///
    /// ```no_run
    /// # use std::ops::ControlFlow;
    /// # use sd_core::{DeviceChoice, GenerationRequest, StableDiffusion};
    /// let model = StableDiffusion::load("v1-5-pruned-emaonly.safetensors", &DeviceChoice::Cpu.device()?)?;
    /// let lookup = model.load_embedding("embeddings/realbenny-t1.pt")?;
    /// let request = GenerationRequest { prompt: "a photo of realbenny-t1".into(), ..Default::default() };
    /// let pictures = model.txt2img(&request, &lookup, &mut |_| ControlFlow::Continue(()))?;
    /// # Ok::<(), sd_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`EmbeddingError`] naming the file: unreadable, not an embedding, or
    /// [`EmbeddingError::WrongWidth`] when it was trained for another text encoder.
    pub fn load_embedding(&self, path: impl AsRef<Path>) -> Result<EmbeddingLookup> {
        let mut lookup = EmbeddingLookup::new();
        self.add_embedding(&mut lookup, path)?;
        Ok(lookup)
    }

    /// Adds the embedding in the file at `path` to `lookup` (see
    /// [`load_embedding`](Self::load_embedding)); a later one of the same name replaces it.
    ///
    /// # Errors
    /// As [`load_embedding`](Self::load_embedding).
    pub fn add_embedding(
        &self,
        lookup: &mut EmbeddingLookup,
        path: impl AsRef<Path>,
    ) -> Result<()> {
        let path = path.as_ref();
        let (embedding, _) = read_file(path)?;
        let width = self.architecture().text_encoder.hidden_size;
        if embedding.vectors_for_width(width).is_none() {
            return Err(EmbeddingError::WrongWidth {
                path: path.to_path_buf(),
                embedding: embedding.shape(),
                model: width,
            }
            .into());
        }
        let vectors = embedding
            .to_lookup_vectors(width)?
            .with_shorthash(file_shorthash(path)?);
        lookup
            .register(vectors, &self.tokenizer)
            .map_err(EmbeddingError::from)?;
        Ok(())
    }

    /// Every embedding in `dir` and its subfolders, as A1111 loads its `embeddings` folder:
    /// files of another width, unreadable ones and pictures without embedding data are
    /// skipped and reported as `tracing` warnings (A1111 prints them); the summary line is
    /// an `info` event. [`EmbeddingDatabase`] gives the same as values.
    ///
    /// # Errors
    /// When a loaded embedding's name has no tokens.
    pub fn load_embeddings_dir(&self, dir: impl AsRef<Path>) -> Result<EmbeddingLookup> {
        let width = self.architecture().text_encoder.hidden_size;
        let dirs: [PathBuf; 1] = [dir.as_ref().to_path_buf()];
        let database = EmbeddingDatabase::load_dirs(&dirs, Some(width));
        tracing::info!("{}", database.summary());
        for skipped in database.skipped() {
            if !matches!(skipped.reason, SkipReason::Preview) {
                tracing::warn!(
                    "skipping embedding {}: {}",
                    skipped.path.display(),
                    skipped.reason
                );
            }
        }
        Ok(database.lookup(&self.tokenizer)?)
    }
}
