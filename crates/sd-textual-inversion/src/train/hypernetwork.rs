//! Training a hypernetwork: A1111's `train_hypernetwork`, on the same loop, dataset,
//! schedules, events and run folder as an embedding's ([`Trainer`]), with the differences
//! A1111 has: the prompts are constants (the frozen text encoder's, `[name]` filled with the
//! hypernetwork's name as words), the weights of every module learn (gradients summed over
//! the attentions sharing a module), AdamW keeps PyTorch's default weight decay of 0.01,
//! copies go to `hypernetworks/`, the loss to `hypernetwork_loss.csv`, the file to
//! [`TrainConfig::hypernetwork_dir`].

use std::path::PathBuf;

use sd_core::StableDiffusion;
use sd_core::conditioning::EmbeddingLookup;
use sd_core::hypernetwork::{HypernetworkFile, NamedValues, TrainableHypernetwork};
use sd_core::model::Precision;

use super::adamw::{AdamW, AdamWConfig};
use super::config::TrainConfig;
use super::events::{CancelToken, StopReason, TrainEvent};
use super::kind::TrainedKind;
use super::save::SavedOptimizer;
use super::step::{StepBatch, constant_conditioning, freeze, unet_loss};
use super::subject::{HypernetworkWeights, Subject};
use super::trainer::{Trainer, check_autodiff};
use crate::error::{Result, TrainError};
use crate::preprocess::SkippedFile;

/// The loss of a hypernetwork training step and each weight's gradient.
pub(crate) struct HypernetworkStep {
    /// The loss (unscaled).
    pub loss: f32,
    /// ∂loss/∂weight, by A1111's names ([`TrainableHypernetwork::gradients`]).
    pub gradients: NamedValues,
}

/// ldm's loss for `batch` with `trainable` in `model`'s attentions, and its gradient with
/// respect to the hypernetwork's weights: the prompts encoded as constants
/// ([`constant_conditioning`]), the backward pass run on `loss × loss_scale` and the
/// gradients divided by it again.
pub(crate) fn hypernetwork_loss_and_grad(
    model: &StableDiffusion,
    trainable: &TrainableHypernetwork,
    (lookup, clip_skip, per_text): (&EmbeddingLookup, usize, bool),
    batch: &StepBatch,
    loss_scale: f32,
) -> Result<HypernetworkStep> {
    let cond = constant_conditioning(model, lookup, clip_skip, batch, per_text)?;
    let styled = trainable.apply(model);
    let loss = unet_loss(&styled, cond, batch)?;
    // No attention of the model has a module of the hypernetwork's widths.
    if !loss.is_tracked() {
        return Err(TrainError::NoGradient);
    }
    let grads = if loss_scale == 1.0 {
        loss.backward()
    } else {
        loss.clone().mul_scalar(loss_scale).backward()
    };
    let loss: f32 = loss.into_scalar();
    let mut gradients = trainable.gradients(&grads);
    if loss_scale != 1.0 {
        for (_, g) in &mut gradients {
            g.iter_mut().for_each(|v| *v /= loss_scale);
        }
    }
    Ok(HypernetworkStep { loss, gradients })
}

/// How a hypernetwork run ended and what it left.
#[derive(Debug)]
pub struct HypernetworkOutcome {
    /// The hypernetwork as written to [`path`](Self::path) (its `step` is the last completed
    /// step; `sd_checkpoint` names the model).
    pub hypernetwork: HypernetworkFile,
    /// Where the final file was written (`<hypernetwork_dir>/<name>.pt`).
    pub path: PathBuf,
    /// The run's folder (copies in `hypernetworks/`, previews, `hypernetwork_loss.csv`).
    pub run_folder: PathBuf,
    /// Why it ended.
    pub reason: StopReason,
    /// Pictures of the data folder that could not be used, with the reason.
    pub skipped: Vec<SkippedFile>,
    /// The model, handed back (frozen, on the autodiff device, without the hypernetwork):
    /// generate with `<hypernet:name>` or train again without loading the checkpoint.
    pub model: StableDiffusion,
}

/// Trains one hypernetwork file on one model (A1111's "Train hypernetwork"), and hands the
/// model back.
///
/// The file is usually what "Create hypernetwork" wrote
/// ([`HypernetworkFile::new_random`], `sdti create-hypernetwork`); a file trained before
/// continues from its step, with its optimizer state when the `.optim.json` beside it belongs
/// to it ([`with_saved_optimizer`](Self::with_saved_optimizer)).
///
/// ```no_run
/// use sd_textual_inversion::sd_core::hypernetwork::HypernetworkFile;
/// use sd_textual_inversion::sd_core::{DeviceChoice, StableDiffusion};
/// use sd_textual_inversion::train::{CancelToken, HypernetworkTrainer, TrainConfig};
///
/// let device = DeviceChoice::Cpu.device()?.autodiff();
/// let model = StableDiffusion::load("v1-5-pruned-emaonly.safetensors", &device)?;
/// let file = HypernetworkFile::read("models/hypernetworks/pixar.pt")?;
/// let config = TrainConfig {
///     data_dir: "pixar-512".into(),
///     learn_rate: "0.00001".into(),
///     steps: 10_000,
///     ..Default::default()
/// };
/// let outcome = HypernetworkTrainer::new(model, file, config)?
///     .run(&mut |event| println!("{event:?}"), &CancelToken::new())?;
/// println!("{}", outcome.path.display());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HypernetworkTrainer {
    trainer: Trainer,
}

impl HypernetworkTrainer {
    /// A trainer for `file` on `model`, which must live on an autodiff device
    /// (`device.autodiff()`) and compute in f32; its weights are frozen here. The run is
    /// named after the file (its stem, as A1111 lists hypernetworks) and continues from its
    /// step. The result goes to `<hypernetwork_dir>/<name>.pt`: when that is the file itself
    /// it is replaced (as A1111 does); a trained file of that name read from elsewhere is
    /// replaced only with [`TrainConfig::overwrite`] (or [`TrainConfig::resume_from`]).
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] for a model off an autodiff device or in half
    /// precision, or a hypernetwork with no module for any of the model's attention widths.
    pub fn new(
        model: StableDiffusion,
        mut file: HypernetworkFile,
        mut config: TrainConfig,
    ) -> Result<Self> {
        check_autodiff(&model)?;
        if model.precision() != Precision::F32 {
            return Err(TrainError::InvalidConfig {
                name: "model",
                reason: format!(
                    "hypernetworks train in f32; this model computes in {:?}",
                    model.precision()
                ),
            });
        }
        let widths = model.hypernetwork_widths();
        if !file.modules.keys().any(|w| widths.contains(w)) {
            return Err(TrainError::InvalidConfig {
                name: "hypernetwork",
                reason: format!(
                    "{} has modules for widths {:?}; this model's attentions are {:?} wide",
                    file.path().display(),
                    file.modules.keys().collect::<Vec<_>>(),
                    widths
                ),
            });
        }
        if let Some(stem) = file.path().file_stem() {
            file.name = stem.to_string_lossy().into_owned();
        }
        // Training the file in the folder it is written to continues it (A1111 trains the
        // file it loads); a file from elsewhere replaces a trained one of its name only with
        // `overwrite`.
        let destination = TrainedKind::Hypernetwork.output_file(&config, &file.name);
        if config.resume_from.is_none() && same_file(file.path(), &destination) {
            config.resume_from = Some(file.path().to_owned());
        }
        let model = freeze(model);
        let weights = HypernetworkWeights::new(file, model.device(), &widths);
        // A1111: `torch.optim.AdamW(params=weights, lr=...)`, PyTorch's defaults.
        let adamw = AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        };
        let optimizer = AdamW::new(adamw, weights.values.len());
        Ok(Self {
            trainer: Trainer {
                model,
                config,
                subject: Subject::Hypernetwork(Box::new(weights)),
                optimizer,
            },
        })
    }

    /// Continues from a saved optimizer state when it belongs to the file being trained (its
    /// hash is the short sha256 of the file as read, and the sizes agree); otherwise AdamW
    /// starts afresh, as A1111 does.
    pub fn with_saved_optimizer(self, saved: &SavedOptimizer) -> Self {
        Self {
            trainer: self.trainer.with_saved_optimizer(saved),
        }
    }

    /// The model (frozen, on the autodiff device).
    pub fn model(&self) -> &StableDiffusion {
        &self.trainer.model
    }

    /// The model back, without training.
    pub fn into_model(self) -> StableDiffusion {
        self.trainer.model
    }

    /// Runs as [`Trainer::run`] does (the same checks first, the same events, the same
    /// stops), then writes the hypernetwork to `<hypernetwork_dir>/<name>.pt` with its
    /// optimizer state beside it (`.optim.json`).
    ///
    /// # Errors
    /// As [`Trainer::run`].
    pub fn run(
        self,
        events: &mut dyn FnMut(&TrainEvent),
        cancel: &CancelToken,
    ) -> Result<HypernetworkOutcome> {
        // The dropout masks come from the device's generator: seeded from the run's seed, so
        // that a run with dropout repeats (on backends whose generator is seeded per device;
        // the masks are not PyTorch's).
        self.trainer.model.device().seed(self.trainer.config.seed);
        let finished = self.trainer.train(events, cancel)?;
        let Subject::Hypernetwork(weights) = finished.subject else {
            return Err(TrainError::InvalidConfig {
                name: "hypernetwork",
                reason: "the run trained something else".into(),
            });
        };
        // The file as written: its path, step and the checkpoint it trained on.
        let hypernetwork = match HypernetworkFile::read(&finished.path) {
            Ok(file) => file,
            Err(_) => weights.to_file(),
        };
        Ok(HypernetworkOutcome {
            hypernetwork,
            path: finished.path,
            run_folder: finished.run_folder,
            reason: finished.reason,
            skipped: finished.skipped,
            model: finished.model,
        })
    }
}

/// Whether two paths name the same file (by their canonical forms when both exist).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
