//! What a training run tells its caller, and how the caller stops it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Something that happened during training, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TrainEvent {
    /// The dataset is loaded and training begins.
    Started {
        /// The embedding's step before this run.
        initial_step: usize,
        /// The step the run stops at.
        steps: usize,
        /// Pictures in the dataset.
        images: usize,
        /// Optimizer steps per pass over the dataset.
        steps_per_epoch: usize,
        /// The run's folder.
        run_folder: PathBuf,
    },
    /// One optimizer step was taken.
    Step {
        /// The embedding's step after the update.
        step: usize,
        /// Pass over the dataset (0-based), as A1111 counts it.
        epoch: usize,
        /// Step within the pass (0-based).
        epoch_step: usize,
        /// The loss of the step (summed over accumulated batches).
        loss: f32,
        /// The mean loss of the last 3 × pictures steps, this one included: what A1111's
        /// progress bar shows as the loss.
        mean_loss: f32,
        /// The learning rate used.
        learn_rate: f64,
    },
    /// A copy of the embedding was written.
    Saved {
        /// The step it holds.
        step: usize,
        /// Where.
        path: PathBuf,
    },
    /// A training picture was read and encoded by the VAE (minutes for a large set at 512²
    /// on a CPU): `done` of `total` files looked at, before [`TrainEvent::Started`]. Held-out
    /// validation pictures are reported the same way after the training ones.
    Encoding {
        /// Files done.
        done: usize,
        /// Files in the folder.
        total: usize,
    },
    /// A preview is being rendered (its sampling steps): `done` of `total`.
    Rendering {
        /// Sampling steps done.
        done: usize,
        /// Sampling steps in all.
        total: usize,
    },
    /// The validation loss was evaluated (see [`Validation`](super::Validation)).
    Validation {
        /// The step it was evaluated after.
        step: usize,
        /// The mean loss over the validation pictures and timesteps.
        loss: f32,
        /// The best step so far (this one when it improved).
        best_step: usize,
        /// The loss at the best step.
        best_loss: f32,
    },
    /// A preview picture was written.
    Preview {
        /// The step.
        step: usize,
        /// The picture.
        path: PathBuf,
        /// The prompt it shows.
        prompt: String,
    },
    /// The loss (or its gradient) was not a finite number: the run stops and keeps the last
    /// good vectors.
    NaN {
        /// The step that failed.
        step: usize,
    },
    /// The loss and gradient were finite but the optimizer's update made the vectors
    /// infinite or NaN (a learning rate too large for f32): the run stops and keeps the last
    /// good vectors.
    Diverged {
        /// The step that failed.
        step: usize,
        /// The learning rate of that update.
        learn_rate: f64,
    },
}

/// Stops a run from another thread (or a Ctrl-C handler): the trainer finishes the current
/// batch, saves the embedding and returns.
///
/// ```
/// use sd_textual_inversion::train::CancelToken;
/// let token = CancelToken::new();
/// let for_handler = token.clone();
/// for_handler.cancel();
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// It reached the configured step (or the end of the learning-rate schedule).
    Completed,
    /// The [`CancelToken`] stopped it.
    Cancelled,
    /// The loss (or its gradient) became NaN or infinite at this step.
    NaN {
        /// The failing step.
        step: usize,
    },
    /// The optimizer's update at this step overflowed (see [`TrainEvent::Diverged`]).
    Diverged {
        /// The failing step.
        step: usize,
    },
    /// The validation loss did not improve for
    /// [`Validation::patience`](super::Validation::patience) evaluations.
    NoImprovement {
        /// The step of the best validation loss (its vectors: `<name>-best.pt`).
        best_step: usize,
    },
}
