//! What a run writes besides the loss CSV: the embedding (or hypernetwork) with its
//! optimizer state, the previews and the image embeddings. Every file is written whole to a temporary name and
//! renamed.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use sd_core::GenerationRequest;
use sd_core::conditioning::EmbeddingLookup;
use sd_core::noise::RngSource;
use serde::{Deserialize, Serialize};

use super::adamw::AdamWState;
use super::events::{CancelToken, TrainEvent};
use super::log::RunFolder;
use super::subject::Subject;
use super::trainer::Trainer;
use crate::error::{Result, TrainError};

/// The optimizer state saved beside an embedding or hypernetwork (`<file>.optim.json`), used
/// on resume when its hash matches the file's (A1111 keeps a `.optim` file with the same
/// rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedOptimizer {
    /// What the state belongs to: the embedding's checksum, or the hypernetwork file's short
    /// sha256 (its first 10 hex digits).
    pub hash: String,
    /// AdamW's moments and step count.
    pub state: AdamWState,
}

/// `<file>.optim.json` beside an embedding file.
pub fn optimizer_path(embedding: &Path) -> PathBuf {
    let mut name = embedding.as_os_str().to_owned();
    name.push(".optim.json");
    PathBuf::from(name)
}

impl Trainer {
    /// Writes the embedding or hypernetwork as it is now to `path` (A1111's `.pt`, with the
    /// checkpoint it was trained on), and the optimizer state beside it.
    pub(super) fn save(&self, path: &Path) -> Result<()> {
        let e = match &self.subject {
            Subject::Embedding(e) => e,
            Subject::Hypernetwork(h) => {
                let mut file = h.to_file();
                // A1111's `save_hypernetwork`: the run's name and the checkpoint it trained on.
                file.name = h.file.name.clone();
                file.sd_checkpoint = self.model.hash().map(|h| h.short().to_owned());
                file.sd_checkpoint_name = Some(self.model.name());
                let bytes = file.to_bytes()?;
                let saved = SavedOptimizer {
                    hash: sd_core::checkpoint::ModelHash::of_bytes(&bytes)
                        .short()
                        .to_owned(),
                    state: self.optimizer.state.clone(),
                };
                return self.write_with_optimizer(path, &bytes, &saved);
            }
        };
        let mut e = e.clone();
        e.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| e.name.clone());
        e.sd_checkpoint = self.model.hash().map(|h| h.short().to_owned());
        e.sd_checkpoint_name = Some(self.model.name());
        e.requires_grad = true;
        // The optimizer state is serialised first: a state that cannot be written stops the
        // run (as A1111's `torch.save` of the `.optim` raising does) before either file is
        // touched, never leaving an empty `.optim.json`.
        let optimizer = match e.checksum() {
            Some(hash) => {
                let saved = SavedOptimizer {
                    hash,
                    state: self.optimizer.state.clone(),
                };
                let path = optimizer_path(path);
                let json = serde_json::to_vec(&saved).map_err(|source| TrainError::Json {
                    path: path.clone(),
                    source,
                })?;
                Some((path, json))
            }
            None => None,
        };
        sd_core::embeddings::write_file(path, &e).map_err(sd_core::CoreError::from)?;
        if let Some((path, json)) = optimizer {
            sd_core::fs::write_atomic(&path, &json)?;
        }
        Ok(())
    }

    /// `bytes` to `path` and `saved` beside it, the state serialised first (as
    /// [`save`](Self::save) does for an embedding).
    fn write_with_optimizer(
        &self,
        path: &Path,
        bytes: &[u8],
        saved: &SavedOptimizer,
    ) -> Result<()> {
        let optim = optimizer_path(path);
        let json = serde_json::to_vec(saved).map_err(|source| TrainError::Json {
            path: optim.clone(),
            source,
        })?;
        sd_core::fs::write_atomic(path, bytes)?;
        sd_core::fs::write_atomic(&optim, &json)?;
        Ok(())
    }

    /// txt2img with the current vectors: the configured preview settings, or the batch's
    /// first prompt with 20 steps at the training size, written with A1111's infotext.
    /// Reports its sampling steps; `None` (and nothing written) when `cancel` interrupts it.
    pub(super) fn preview(
        &self,
        folder: &RunFolder,
        lookup: &EmbeddingLookup,
        steps_done: usize,
        prompt: &str,
        (events, cancel): (&mut dyn FnMut(&TrainEvent), &CancelToken),
    ) -> Result<Option<(PathBuf, image::RgbImage)>> {
        let params = match &self.config.preview {
            Some(p) => p.clone(),
            None => GenerationRequest {
                prompt: prompt.to_owned(),
                steps: 20,
                width: self.config.width,
                height: self.config.height,
                seed: self.config.seed as i64,
                rng: RngSource::Cpu,
                ..GenerationRequest::default()
            },
        };
        let model = self.subject.preview_model(&self.model);
        let generation = model.txt2img(&params, lookup, &mut |p| {
            events(&TrainEvent::Rendering {
                done: p.step + 1,
                total: p.total_steps,
            });
            if cancel.is_cancelled() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        if cancel.is_cancelled() {
            return Ok(None);
        }
        // The whole of A1111's infotext, as its previews carry (model, hashes, `TI hashes`).
        let text = generation.infotext(0, &model);
        let Some(image) = generation.images.into_iter().next() else {
            return Err(TrainError::InvalidConfig {
                name: "preview",
                reason: "the preview generation made no picture".into(),
            });
        };
        let path = folder
            .images()
            .join(format!("{}-{steps_done}.png", self.subject.name()));
        sd_core::infotext::write_png_rgb8(
            &path,
            image.width(),
            image.height(),
            image.as_raw(),
            &text,
        )
        .map_err(sd_core::CoreError::from)?;
        Ok(Some((path, image)))
    }

    pub(super) fn save_image_embedding(
        &self,
        folder: &RunFolder,
        steps_done: usize,
        image: &image::RgbImage,
    ) -> Result<()> {
        // Only an embedding is stored in a picture.
        let Subject::Embedding(e) = &self.subject else {
            return Ok(());
        };
        let path = folder
            .image_embeddings()
            .join(format!("{}-{steps_done}.png", e.name));
        let mut e = e.clone();
        e.sd_checkpoint = self.model.hash().map(|h| h.short().to_owned());
        e.sd_checkpoint_name = Some(self.model.name());
        let preview = sd_core::embeddings::formats::png_pixels::RgbImage {
            width: image.width() as usize,
            height: image.height() as usize,
            pixels: image.as_raw().clone(),
        };
        let bytes = sd_core::embeddings::formats::png_image::write(&path, &e, Some(&preview), None)
            .map_err(sd_core::CoreError::from)?;
        sd_core::fs::write_atomic(&path, &bytes)?;
        Ok(())
    }
}
