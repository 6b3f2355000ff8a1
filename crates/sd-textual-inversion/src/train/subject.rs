//! What one training loop trains, seen the same way for both kinds: a name, a step, one flat
//! vector of values for AdamW, a loss with its gradient, a file to save, and the model a
//! preview renders with.

use std::borrow::Cow;

use sd_core::StableDiffusion;
use sd_core::checkpoint::ModelHash;
use sd_core::conditioning::{EmbeddingId, EmbeddingLookup, TextualInversionVectors};
use sd_core::embeddings::Embedding;
use sd_core::hypernetwork::{
    ActiveHypernetwork, HypernetworkFile, NamedValues, TrainableHypernetwork,
};
use sd_core::sd_clip::ClipTokenizer;

use super::hypernetwork::hypernetwork_loss_and_grad;
use super::kind::TrainedKind;
use super::step::{StepBatch, StepResult, loss_and_grad_scaled};
use crate::error::{Result, TrainError};

/// The thing a run trains.
pub(super) enum Subject {
    /// An embedding's vectors.
    Embedding(Embedding),
    /// A hypernetwork's weights (boxed: the file and its modules are large).
    Hypernetwork(Box<HypernetworkWeights>),
}

/// A hypernetwork being trained: its modules on the autodiff device and the values of those
/// the model uses as one flat vector (AdamW's view; `torch.optim.AdamW` over the parameter
/// list is the same element-wise update).
pub(super) struct HypernetworkWeights {
    /// The file as read (settings, name, step, the checkpoint it was trained on).
    pub file: HypernetworkFile,
    pub trainable: TrainableHypernetwork,
    /// The weights of the modules whose width the model's attentions have, concatenated in
    /// [`TrainableHypernetwork::values`]' order: what AdamW updates.
    pub values: Vec<f32>,
    /// Every weight of the file, in that order: trained (its length in `values`) or kept.
    slots: Vec<Slot>,
}

/// Where a weight's values live while training.
enum Slot {
    /// In `values`, this long.
    Trained(usize),
    /// A module of a width the model lacks: it gets no gradient, so it is not updated
    /// (PyTorch's AdamW skips a parameter without one; weight decay included).
    Kept(Vec<f32>),
}

impl HypernetworkWeights {
    /// `file`'s weights on `device`; those of `widths` train.
    pub fn new(
        file: HypernetworkFile,
        device: &burn::tensor::Device,
        widths: &std::collections::BTreeSet<usize>,
    ) -> Self {
        let trainable = TrainableHypernetwork::new(&file, device);
        let mut values = Vec::new();
        let mut slots = Vec::new();
        for ((width, _, _), v) in trainable.values() {
            if widths.contains(&width) {
                slots.push(Slot::Trained(v.len()));
                values.extend(v);
            } else {
                slots.push(Slot::Kept(v));
            }
        }
        Self {
            file,
            trainable,
            values,
            slots,
        }
    }

    /// The flat values handed to the modules.
    fn sync(&mut self) {
        let mut offset = 0;
        let shaped: Vec<Vec<f32>> = self
            .slots
            .iter()
            .map(|slot| match slot {
                Slot::Trained(len) => {
                    let v = self.values[offset..offset + len].to_vec();
                    offset += len;
                    v
                }
                Slot::Kept(v) => v.clone(),
            })
            .collect();
        self.trainable.set_values(&shaped);
    }

    /// The gradients of the trained weights, flat as `values`.
    fn trained(&self, gradients: NamedValues) -> Vec<f32> {
        gradients
            .into_iter()
            .zip(&self.slots)
            .filter(|(_, slot)| matches!(slot, Slot::Trained(_)))
            .flat_map(|((_, g), _)| g)
            .collect()
    }

    /// The file as trained so far, at its step.
    pub fn to_file(&self) -> HypernetworkFile {
        self.trainable.to_file(self.file.step.unwrap_or(0))
    }
}

impl Subject {
    /// Which kind of thing it is.
    pub fn kind(&self) -> TrainedKind {
        match self {
            Self::Embedding(_) => TrainedKind::Embedding,
            Self::Hypernetwork(_) => TrainedKind::Hypernetwork,
        }
    }

    /// Its name (file names, `[name]` in templates).
    pub fn name(&self) -> &str {
        match self {
            Self::Embedding(e) => &e.name,
            Self::Hypernetwork(h) => &h.file.name,
        }
    }

    /// Its step: optimizer steps taken, earlier runs' included.
    pub fn step(&self) -> usize {
        let step = match self {
            Self::Embedding(e) => e.step,
            Self::Hypernetwork(h) => h.file.step,
        };
        step.unwrap_or(0).max(0) as usize
    }

    fn set_step(&mut self, step: usize) {
        let step = Some(step as i64);
        match self {
            Self::Embedding(e) => e.step = step,
            Self::Hypernetwork(h) => h.file.step = step,
        }
    }

    /// Every value that learns, flat.
    pub fn values(&self) -> &[f32] {
        match self {
            Self::Embedding(e) => &e.vectors.data,
            Self::Hypernetwork(h) => &h.values,
        }
    }

    /// AdamW's view of the values; [`commit`](Self::commit) makes a change count.
    pub fn values_mut(&mut self) -> &mut Vec<f32> {
        match self {
            Self::Embedding(e) => &mut e.vectors.data,
            Self::Hypernetwork(h) => &mut h.values,
        }
    }

    /// Makes the values count after an update to `step`: an embedding is registered again in
    /// `lookup` (its new id returned), a hypernetwork's modules take the new weights.
    pub fn commit(
        &mut self,
        step: usize,
        lookup: &mut EmbeddingLookup,
        tokenizer: &ClipTokenizer,
    ) -> Result<Option<EmbeddingId>> {
        self.set_step(step);
        match self {
            Self::Embedding(_) => Ok(Some(self.register(lookup, tokenizer)?)),
            Self::Hypernetwork(h) => {
                h.sync();
                Ok(None)
            }
        }
    }

    /// An embedding registered in `lookup` for the prompts to name it; a hypernetwork is in
    /// no lookup.
    pub fn register(
        &self,
        lookup: &mut EmbeddingLookup,
        tokenizer: &ClipTokenizer,
    ) -> Result<EmbeddingId> {
        match self {
            Self::Embedding(e) => {
                let v = &e.vectors;
                let vectors =
                    TextualInversionVectors::new(e.name.clone(), v.data.clone(), v.n, v.dim)?;
                Ok(lookup.register(vectors, tokenizer)?)
            }
            Self::Hypernetwork(_) => Err(TrainError::InvalidConfig {
                name: "hypernetwork",
                reason: "a hypernetwork is not an embedding of the prompts".into(),
            }),
        }
    }

    /// The loss of `batch` and its gradient with respect to [`values`](Self::values).
    /// `id` is the embedding's id in `lookup`; `per_text` encodes each prompt alone (A1111's
    /// hypernetwork conditioning when captions are fixed).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad(
        &self,
        model: &StableDiffusion,
        (lookup, id): (&EmbeddingLookup, Option<EmbeddingId>),
        clip_skip: usize,
        batch: &StepBatch,
        loss_scale: f32,
        per_text: bool,
    ) -> Result<StepResult> {
        match self {
            Self::Embedding(e) => {
                let id = id.ok_or(TrainError::NoGradient)?;
                loss_and_grad_scaled(
                    model,
                    lookup,
                    id,
                    &e.vectors.data,
                    clip_skip,
                    batch,
                    loss_scale,
                )
            }
            Self::Hypernetwork(h) => {
                let out = hypernetwork_loss_and_grad(
                    model,
                    &h.trainable,
                    (lookup, clip_skip, per_text),
                    batch,
                    loss_scale,
                )?;
                Ok(StepResult {
                    loss: out.loss,
                    grad: h.trained(out.gradients),
                })
            }
        }
    }

    /// The model a preview renders with: `model` itself for an embedding (the prompt names
    /// it), a copy running the hypernetwork at strength 1 (as A1111's preview).
    pub fn preview_model<'m>(&self, model: &'m StableDiffusion) -> Cow<'m, StableDiffusion> {
        match self {
            Self::Embedding(_) => Cow::Borrowed(model),
            Self::Hypernetwork(h) => {
                let file = h.to_file();
                Cow::Owned(model.with_hypernetworks(&[ActiveHypernetwork {
                    file: &file,
                    multiplier: 1.0,
                }]))
            }
        }
    }

    /// The optimizer state's key for what this run continues: an embedding's checksum, the
    /// short sha256 of the hypernetwork file it was read from (A1111's `.optim` keys).
    pub fn resume_hash(&self) -> Option<String> {
        match self {
            Self::Embedding(e) => e.checksum(),
            Self::Hypernetwork(h) => {
                let hash = ModelHash::compute(h.file.path()).ok()?;
                Some(hash.short().to_owned())
            }
        }
    }
}
