//! Hypernetworks put into a copy of the model's UNet, and a folder of them (A1111's
//! `models/hypernetworks`) activated by a prompt's `<hypernet:name:multiplier>` tags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use sd_kernels::precision::to_dtype;
use sd_prompt::python_number::python_float;
use sd_unet::hypernetwork::{HypernetworkLayer, HypernetworkModule, HypernetworkPair};

use super::error::{HypernetworkError, Result};
use super::file::{HypernetworkFile, LayerWeights};
use crate::model::StableDiffusion;

/// A hypernetwork to apply and its strength (`<hypernet:name:multiplier>`).
#[derive(Debug, Clone, Copy)]
pub struct ActiveHypernetwork<'a> {
    /// The file.
    pub file: &'a HypernetworkFile,
    /// Its multiplier.
    pub multiplier: f32,
}

impl StableDiffusion {
    /// A copy of the model whose attentions run `hypernetworks` (in order) on their key and
    /// value inputs, as A1111's `apply_hypernetworks`; the weights are shared with `self`.
    /// Replaces hypernetworks a previous call set.
    pub fn with_hypernetworks(&self, hypernetworks: &[ActiveHypernetwork<'_>]) -> Self {
        let mut model = self.clone();
        let device = self.device().clone();
        let dtype = self.unet.dtype();
        // Built once per width, then shared by every attention of that width.
        let mut by_width: BTreeMap<usize, Vec<HypernetworkPair>> = BTreeMap::new();
        for active in hypernetworks {
            for (width, [key, value]) in &active.file.modules {
                let build = |layers: &[LayerWeights]| {
                    build_module(layers, active.multiplier, &device, dtype, None)
                };
                by_width.entry(*width).or_default().push(HypernetworkPair {
                    key: build(key),
                    value: build(value),
                });
            }
        }
        model
            .unet
            .set_hypernetworks(&mut |width| by_width.get(&width).cloned().unwrap_or_default());
        model
    }

    /// The widths of the key and value inputs of every attention of the UNet, self- and
    /// cross-attention: the sizes a hypernetwork module can apply to (SD 1.x: 320, 640, 768,
    /// 1280; SD 2.x: 320, 640, 1024, 1280).
    pub fn hypernetwork_widths(&self) -> std::collections::BTreeSet<usize> {
        let mut widths = std::collections::BTreeSet::new();
        let mut unet = self.unet.clone();
        unet.set_hypernetworks(&mut |width| {
            widths.insert(width);
            Vec::new()
        });
        widths
    }
}

/// A module's layers on `device`, in `dtype`, with `multiplier`. For training, `training`
/// is the file's dropout structure: the weights then want gradients and each layer `i`
/// drops its outputs with probability `dropout[i + 1]` (A1111's `torch.nn.Dropout` in
/// training mode); `None` builds the module for use.
pub(super) fn build_module(
    layers: &[LayerWeights],
    multiplier: f32,
    device: &Device,
    dtype: burn::tensor::DType,
    training: Option<&[f64]>,
) -> HypernetworkModule {
    HypernetworkModule {
        layers: layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let dropout = training.map(|d| d.get(i + 1).copied().unwrap_or(0.0));
                layer(l, device, dtype, dropout)
            })
            .collect(),
        multiplier,
    }
}

/// One layer on `device`, in the UNet's type.
/// `dropout`: the probability for training (the weights then want gradients); `None` for
/// use.
fn layer(
    weights: &LayerWeights,
    device: &Device,
    dtype: burn::tensor::DType,
    dropout: Option<f64>,
) -> HypernetworkLayer {
    let trainable = dropout.is_some();
    let w = &weights.linear;
    let param1 = |values: &[f32]| {
        let t = Tensor::<1>::from_data(TensorData::new(values.to_vec(), [values.len()]), device);
        Param::from_tensor(to_dtype(t, dtype)).set_require_grad(trainable)
    };
    let mut linear: Linear = LinearConfig::new(w.inputs, w.outputs).init(device);
    // burn keeps linear weights as `[in, out]`.
    let weight = Tensor::<2>::from_data(
        TensorData::new(w.weight.clone(), [w.outputs, w.inputs]),
        device,
    )
    .transpose();
    linear.weight = Param::from_tensor(to_dtype(weight, dtype)).set_require_grad(trainable);
    linear.bias = Some(param1(&w.bias));
    let norm = weights.norm.as_ref().map(|(gamma, beta)| {
        let mut norm: LayerNorm = LayerNormConfig::new(w.outputs).init(device);
        norm.gamma = param1(gamma);
        norm.beta = Some(param1(beta));
        norm
    });
    HypernetworkLayer {
        linear,
        activation: weights.activation,
        norm,
        dropout: dropout.unwrap_or(0.0),
    }
}

/// A `<hypernet:…>` tag that was not applied, and why (the picture is still made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedHypernetwork {
    /// The name in the tag.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// The hypernetwork files of a folder and its subfolders (`.pt`, and `.safetensors` in
/// this crate's layout), by file name.
#[derive(Debug, Clone, Default)]
pub struct HypernetworkLibrary {
    files: Vec<(String, PathBuf)>,
}

impl HypernetworkLibrary {
    /// Every `.pt` and `.safetensors` file under `dir` (A1111's `models/hypernetworks`); a
    /// missing folder is an empty library.
    ///
    /// # Errors
    /// [`HypernetworkError::Io`] when `dir` exists but cannot be listed.
    pub fn scan(dir: impl AsRef<Path>) -> Result<Self> {
        let mut files = Vec::new();
        let dir = dir.as_ref();
        if dir.exists() {
            collect(dir, &mut files)?;
        }
        files.sort();
        Ok(Self { files })
    }

    /// The names and files found.
    pub fn files(&self) -> &[(String, PathBuf)] {
        &self.files
    }

    /// The prompt's `<hypernet:name:multiplier>` tags applied to a copy of `model` (A1111's
    /// `extra_networks_hypernet`: the multiplier is the tag's second item, 1 without it).
    /// Unknown names, multipliers that are not numbers and unreadable files are skipped
    /// with the reason.
    pub fn activate(
        &self,
        model: &StableDiffusion,
        prompt: &str,
    ) -> (StableDiffusion, Vec<SkippedHypernetwork>) {
        let (_, tags) = sd_prompt::parse_extra_networks(prompt);
        let mut skipped = Vec::new();
        let mut chosen = Vec::new();
        for tag in tags.iter().filter(|t| t.kind == "hypernet") {
            let name = tag.items.first().cloned().unwrap_or_default();
            let skip = |reason: String| SkippedHypernetwork {
                name: name.clone(),
                reason,
            };
            let multiplier = match tag.items.get(1) {
                None => 1.0,
                Some(text) => match python_float(text) {
                    Some(m) => m as f32,
                    None => {
                        skipped.push(skip(format!("multiplier `{text}` is not a number")));
                        continue;
                    }
                },
            };
            let Some((_, path)) = self.files.iter().find(|(n, _)| *n == name) else {
                skipped.push(skip("not found".into()));
                continue;
            };
            match HypernetworkFile::read(path) {
                Ok(file) => chosen.push((file, multiplier)),
                Err(e) => skipped.push(skip(e.to_string())),
            }
        }
        let active: Vec<ActiveHypernetwork<'_>> = chosen
            .iter()
            .map(|(file, multiplier)| ActiveHypernetwork {
                file,
                multiplier: *multiplier,
            })
            .collect();
        (model.with_hypernetworks(&active), skipped)
    }
}

fn collect(dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let files = crate::fs::files_with_extensions(dir, &["pt", "safetensors"], 8).map_err(|e| {
        HypernetworkError::Io {
            path: e.path,
            source: e.source,
        }
    })?;
    for path in files {
        if let Some(name) = path.file_stem().and_then(|s| s.to_str()) {
            out.push((name.to_owned(), path.clone()));
        }
    }
    Ok(())
}
