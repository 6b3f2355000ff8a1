//! A1111's hypernetworks: `.pt` files read as data ([`HypernetworkFile`]), run on the
//! attentions' key and value inputs of a copy of the model
//! ([`StableDiffusion::with_hypernetworks`](crate::StableDiffusion::with_hypernetworks)),
//! from a folder by a prompt's `<hypernet:name:multiplier>` tags ([`HypernetworkLibrary`]).
//! [`HypernetworkFile::new_random`] makes new ones with A1111's settings and
//! initialisations and [`HypernetworkFile::write`] saves them as A1111 does;
//! [`TrainableHypernetwork`] holds their weights on an autodiff device for training (the
//! training loop is `sd_textual_inversion::train::HypernetworkTrainer`).

mod apply;
mod create;
mod error;
mod file;
mod safetensors_file;
mod trainable;

pub use apply::{ActiveHypernetwork, HypernetworkLibrary, SkippedHypernetwork};
pub use create::{HypernetworkSettings, WeightInit};
pub use error::{HypernetworkError, Result};
pub use file::{HypernetworkFile, LayerWeights, LinearWeights};
pub use trainable::{NamedValues, TrainableHypernetwork};
