//! Everything A1111's Train tab asks for, as one serde struct with A1111's defaults.

use std::path::PathBuf;

use sd_core::GenerationRequest;
use sd_core::limits::Limits;
use serde::{Deserialize, Serialize};

pub use crate::dataset::batching::LatentSampling;
pub use crate::dataset::learn_rate_schedule::{ClipGrad, ClipGradMode};

/// Most optimizer steps of a run: 100 × A1111's default of 100 000. At ten steps a second
/// (a fast GPU, SD 1.5 at 512²) that is 11 days; a larger number is a typo, and `u64::MAX`
/// would overflow the step arithmetic.
pub const MAX_STEPS: usize = 10_000_000;

/// Longest training side in pixels: A1111's Train tab width and height sliders stop at 2048.
/// The UNet's attention grows with the square of the latent pixels: at 100 000 × 64 one
/// self-attention matrix alone is 12 500 × 8 latent pixels squared, 40 GB.
pub const MAX_SIDE: u32 = 2048;

/// Most pictures per batch: 8 × A1111's txt2img batch slider (as `Limits::max_batch_size`
/// for generation). A training batch keeps every picture's UNet activations for the
/// backward pass (1–3 GB each for SD 1.5 at 512²), so 64 is past any single accelerator.
pub const MAX_BATCH_SIZE: usize = 64;

/// Most batches per optimizer step. Accumulation costs time, not memory, and A1111 clamps it
/// to pictures ÷ batch size: 10 000 is more pictures than any textual-inversion set.
pub const MAX_GRADIENT_ACCUMULATION: usize = 10_000;

/// Most vectors per token: one prompt chunk (75 tokens, A1111's slider maximum); a longer
/// embedding cannot be placed in a prompt at all.
pub const MAX_VECTORS: usize = sd_core::conditioning::CHUNK_LENGTH;

/// A training run's settings. `Default` is A1111's Train tab.
///
/// ```
/// use sd_textual_inversion::train::TrainConfig;
/// let config = TrainConfig {
///     data_dir: "photos-512".into(),
///     log_dir: "textual_inversion".into(),
///     learn_rate: "0.005:100, 1e-3:1000, 1e-5".into(),
///     steps: 3000,
///     ..TrainConfig::default()
/// };
/// assert_eq!(config.template, "style_filewords");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The folder of (preprocessed) training pictures, with optional `.txt` captions.
    pub data_dir: PathBuf,
    /// Where the run's folder goes: `<log_dir>/<YYYY-MM-DD>/<name>/`.
    pub log_dir: PathBuf,
    /// Where the final embedding is written (`<embeddings_dir>/<name>.pt`), A1111's
    /// `embeddings` folder.
    pub embeddings_dir: PathBuf,
    /// Where a trained hypernetwork is written (`<hypernetwork_dir>/<name>.pt`), A1111's
    /// `models/hypernetworks`.
    pub hypernetwork_dir: PathBuf,
    /// Prompt template: a bundled one by name (`style_filewords`, `subject`, `none`, ...) or
    /// the path of a template file.
    pub template: String,
    /// Learning rate, or a schedule (`0.005:100, 1e-3:1000, 1e-5`). Kept as text: whether
    /// A1111 accepts a schedule depends on the step the run resumes from (entries that end
    /// before it are skipped unparsed, and nothing after an open-ended entry is read), so it
    /// is parsed against the run's steps by [`preflight`](Self::preflight), before any model
    /// loads, with an error that points at the entry
    /// ([`TrainError::InvalidSetting`](crate::TrainError::InvalidSetting)).
    pub learn_rate: String,
    /// Pictures per step.
    pub batch_size: usize,
    /// Batches whose gradients add up before one optimizer step.
    pub gradient_accumulation: usize,
    /// Gradient clipping (`None`: off, A1111's default): `value:SCHEDULE` or
    /// `norm:SCHEDULE`, the schedule in the learning-rate syntax (see [`ClipGrad`]).
    pub clip_grad: Option<String>,
    /// The step to stop at (counting the embedding's earlier steps).
    pub steps: usize,
    /// Training width in pixels; pictures are resized to it.
    pub width: u32,
    /// Training height in pixels.
    pub height: u32,
    /// Save a copy of the embedding every this many steps (0: never).
    pub save_every: usize,
    /// Render a preview picture every this many steps (0: never).
    pub preview_every: usize,
    /// Also write each preview as an image embedding PNG (`image_embeddings/`).
    pub save_image_embeddings: bool,
    /// The preview's generation settings; `None` previews the batch's first prompt with 20
    /// steps at the training size, as A1111 does without "Read parameters from txt2img".
    pub preview: Option<GenerationRequest>,
    /// How latents are drawn.
    pub latent_sampling: LatentSampling,
    /// Shuffle the comma-separated tags of each caption every time it is used.
    pub shuffle_tags: bool,
    /// Drop each tag with this probability every time a caption is used.
    pub tag_dropout: f32,
    /// Weight the loss by each PNG's alpha channel.
    pub use_alpha_weight: bool,
    /// Seed of every random choice (timesteps, noise, shuffling, templates).
    pub seed: u64,
    /// CLIP skip during training.
    pub clip_skip: usize,
    /// Write the loss CSV every this many steps (A1111's `training_write_csv_every`).
    pub csv_every: usize,
    /// Replace an existing trained `<embeddings_dir>/<name>.pt` (and its `.optim.json`)
    /// written by another run. Without it such a file is only replaced by a run that continues
    /// an embedding read from a file ([`resume_from`](Self::resume_from)), as A1111 does; an
    /// untrained one (step 0, as "Create embedding" writes it) is always replaced.
    pub overwrite: bool,
    /// The file the embedding (or hypernetwork) was read from, when this run continues it
    /// (`--embedding`): the run then writes `<embeddings_dir>/<name>.pt` whether or not it
    /// exists (A1111 saves a resumed embedding there too). A hypernetwork run always
    /// continues the file it was given, as A1111's trains the file it loads.
    pub resume_from: Option<PathBuf>,
    /// Caps on captions (`max_prompt_chars`) and training pictures (`max_image_pixels`).
    pub limits: Limits,
    /// A validation loss every few steps, with early stopping (`None`, the default: off, as
    /// in A1111).
    pub validation: Option<Validation>,
}

/// The validation loss: the training loss made deterministic, so that its curve shows what
/// each step's random timestep and noise hide ("Is This Loss Informative?", Voronov et al.,
/// 2023). Each picture is noised at every one of `timesteps` with noise drawn once from
/// `seed`, and the UNet's error is averaged over all of them; the same prompts (their
/// template line and caption chosen once), latents and noise at every evaluation. The run
/// keeps the best step's vectors as `<run>/embeddings/<name>-best.pt`.
///
/// ```
/// use sd_textual_inversion::train::{TrainConfig, Validation};
/// let config = TrainConfig {
///     data_dir: "photos-512".into(),
///     validation: Some(Validation { every: 100, patience: Some(5), ..Validation::default() }),
///     ..TrainConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Validation {
    /// Evaluate after every this many optimizer steps (at least 1).
    pub every: usize,
    /// Held-out pictures (captions as for training); `None` validates on the training
    /// pictures.
    pub data_dir: Option<PathBuf>,
    /// The timesteps the loss averages over (each below the model's training timesteps).
    pub timesteps: Vec<usize>,
    /// Seed of the fixed noise, prompts and latents.
    pub seed: u64,
    /// Stop after this many evaluations without a new best loss (`None`: never stop early).
    pub patience: Option<usize>,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            every: 100,
            data_dir: None,
            timesteps: vec![100, 300, 500, 700, 900],
            seed: 0,
            patience: None,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::new(),
            log_dir: PathBuf::from("textual_inversion"),
            embeddings_dir: PathBuf::from("embeddings"),
            hypernetwork_dir: PathBuf::from("models").join("hypernetworks"),
            template: "style_filewords".into(),
            learn_rate: "0.005".into(),
            batch_size: 1,
            gradient_accumulation: 1,
            clip_grad: None,
            steps: 100_000,
            width: 512,
            height: 512,
            save_every: 500,
            preview_every: 500,
            save_image_embeddings: true,
            preview: None,
            latent_sampling: LatentSampling::Once,
            shuffle_tags: false,
            tag_dropout: 0.0,
            use_alpha_weight: false,
            seed: 0,
            clip_skip: 1,
            csv_every: 500,
            overwrite: false,
            resume_from: None,
            limits: Limits::default(),
            validation: None,
        }
    }
}
