//! The bundled tiny models: every program runs without `--model`.
//!
//! [`TINY_SD1_CONCEPT`], the default of the `sdti` programs, is `tiny-sd1` trained by
//! `tools/train_concept_model.py` to draw coloured circles and squares on a grey ground from
//! captions such as "a photo of a red circle": a model small enough to train an embedding on
//! in seconds that still knows something, so a trained embedding visibly draws what it
//! learned. It is a diffusers folder (float32 weights, 3.8 MB).
//!
//! `tiny-sd1` is an SD 1.x-shaped model with random weights (CLIP text width 32, UNet channels
//! 16/32/32, a four-level VAE so latents are 1/8 of the image, as in SD). It is built by
//! `tools/make_fixtures.py` with diffusers and transformers, stored as an LDM-keyed float16
//! single file — the layout of an A1111 checkpoint — with a diffusers config folder beside it,
//! because its architecture is not a standard one. Its images are noise: it exists so that
//! every code path runs in seconds on any machine, and so that tests compare against the
//! reference libraries on exactly these weights.

use std::path::{Path, PathBuf};

use crate::error::Result;

/// A model whose files are compiled into the library.
#[derive(Debug, Clone, Copy)]
pub struct BundledModel {
    /// The file stem (`tiny-sd1`).
    pub name: &'static str,
    /// The single-file checkpoint (`.safetensors`, LDM key names).
    pub weights: &'static [u8],
    /// The diffusers config folder that describes it: relative path and contents.
    pub config_files: &'static [(&'static str, &'static [u8])],
}

macro_rules! asset {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!("../assets/tiny-sd1/", $path)) as &[u8],
        )
    };
}

/// The bundled SD 1.x-shaped tiny model.
pub const TINY_SD1: BundledModel = BundledModel {
    name: "tiny-sd1",
    weights: include_bytes!("../assets/tiny-sd1.safetensors"),
    config_files: &[
        asset!("model_index.json"),
        asset!("scheduler/scheduler_config.json"),
        asset!("text_encoder/config.json"),
        asset!("tokenizer/merges.txt"),
        asset!("tokenizer/tokenizer_config.json"),
        asset!("tokenizer/vocab.json"),
        asset!("unet/config.json"),
        asset!("vae/config.json"),
    ],
};

macro_rules! concept_asset {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!("../assets/tiny-sd1-concept/", $path)) as &[u8],
        )
    };
}

/// A model compiled into the library as a diffusers folder: every file, by relative path.
#[derive(Debug, Clone, Copy)]
pub struct BundledFolder {
    /// The folder's name (`tiny-sd1-concept`).
    pub name: &'static str,
    /// Every file of the folder: relative path and contents.
    pub files: &'static [(&'static str, &'static [u8])],
}

/// `tiny-sd1` trained to draw coloured circles and squares from their captions (the module
/// docs): the default model of the command-line programs. Its text encoder and tokenizer
/// are `tiny-sd1`'s, unchanged.
pub const TINY_SD1_CONCEPT: BundledFolder = BundledFolder {
    name: "tiny-sd1-concept",
    files: &[
        concept_asset!("model_index.json"),
        concept_asset!("unet/config.json"),
        concept_asset!("unet/diffusion_pytorch_model.safetensors"),
        concept_asset!("vae/config.json"),
        concept_asset!("vae/diffusion_pytorch_model.safetensors"),
        concept_asset!("text_encoder/model.safetensors"),
        asset!("text_encoder/config.json"),
        asset!("scheduler/scheduler_config.json"),
        asset!("tokenizer/merges.txt"),
        asset!("tokenizer/tokenizer_config.json"),
        asset!("tokenizer/vocab.json"),
    ],
};

impl BundledFolder {
    /// Writes the folder as `dir/<name>/` and returns its path (what
    /// [`StableDiffusion::load`](crate::StableDiffusion::load) takes). Files already there
    /// with the same contents are kept; every file is written to a temporary name and
    /// renamed into place.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("sd-core-doctest-bundled-folder");
    /// let folder = sd_core::bundled::TINY_SD1_CONCEPT.extract_to(&dir)?;
    /// assert!(folder.join("unet/config.json").is_file());
    /// # Ok::<(), sd_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`CoreError::Io`](crate::CoreError::Io) naming the file that could not be written.
    pub fn extract_to(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let root = dir.as_ref().join(self.name);
        for (relative, bytes) in self.files {
            write_if_changed(&root.join(relative), bytes)?;
        }
        Ok(root)
    }
}

impl BundledModel {
    /// Writes the model into `dir` as `<name>.safetensors` plus the `<name>/` config folder
    /// (the layout of a single-file checkpoint with its config beside it) and returns the
    /// path of the `.safetensors` file. Files already there with the same contents are kept;
    /// every file is written to a temporary name and renamed into place.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("sd-core-doctest-bundled");
    /// let weights = sd_core::bundled::TINY_SD1.extract_to(&dir)?;
    /// assert!(weights.ends_with("tiny-sd1.safetensors"));
    /// # Ok::<(), sd_core::CoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`CoreError::Io`](crate::CoreError::Io) naming the file that could not be written.
    pub fn extract_to(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let dir = dir.as_ref();
        let weights = dir.join(format!("{}.safetensors", self.name));
        write_if_changed(&weights, self.weights)?;
        for (relative, bytes) in self.config_files {
            write_if_changed(&dir.join(self.name).join(relative), bytes)?;
        }
        Ok(weights)
    }
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    Ok(crate::fs::write_atomic(path, bytes)?)
}
