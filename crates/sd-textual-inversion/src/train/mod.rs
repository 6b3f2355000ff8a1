//! Training an embedding or a hypernetwork (A1111's "Train" tab): the differentiable step,
//! the optimizer, and the training loop around them.

mod adamw;
mod config;
mod data;
mod events;
mod hypernetwork;
mod kind;
mod log;
pub mod loss_plot;
mod loss_scale;
mod preflight;
mod save;
mod step;
mod subject;
mod trainer;
mod validation;

pub use adamw::{AdamW, AdamWConfig, AdamWState};
pub use config::{
    ClipGrad, ClipGradMode, LatentSampling, MAX_BATCH_SIZE, MAX_GRADIENT_ACCUMULATION, MAX_SIDE,
    MAX_STEPS, MAX_VECTORS, TrainConfig, Validation,
};
pub use events::{CancelToken, StopReason, TrainEvent};
pub use hypernetwork::{HypernetworkOutcome, HypernetworkTrainer};
pub use kind::TrainedKind;
pub use log::{LossRow, RunFolder};
pub use preflight::{RunLock, check_embedding_name};
pub use save::{SavedOptimizer, optimizer_path};
pub use step::{
    StepBatch, StepResult, denoising_loss, freeze, loss_and_grad, loss_and_grad_scaled,
};
pub use trainer::{BestStep, TrainOutcome, Trainer};
