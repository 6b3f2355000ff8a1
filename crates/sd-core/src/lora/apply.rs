//! Applying LoRAs to a model: each matched layer's weight gets `Σ multiplier · alpha / rank ·
//! up · down` added (A1111's `network_lora.calc_updown` and `finalize_updown`), on a clone of
//! the model, so the loaded weights stay as they were and the next prompt starts from them.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, Tensor, TensorData};
use sd_kernels::precision::to_dtype;

use super::error::{LoraError, Result};
use super::file::{LoraFile, LoraModule};
use crate::model::StableDiffusion;

/// A LoRA to apply and its strengths: A1111's `<lora:name:unet>` sets both to one number,
/// `<lora:name:te:unet>` each.
#[derive(Debug, Clone)]
pub struct ActiveLora<'a> {
    /// The file.
    pub file: &'a LoraFile,
    /// The multiplier of its text-encoder modules (`lora_te_…`).
    pub text_encoder: f32,
    /// The multiplier of its UNet modules (`lora_unet_…`).
    pub unet: f32,
}

/// What applying found beside the updates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoraReport {
    /// Modules of each file that name no layer of the model, by file.
    pub unmatched: BTreeMap<std::path::PathBuf, Vec<String>>,
    /// Modules of each file whose update does not fit the layer it names, with the reason,
    /// by file: left out, the file's other modules applied (A1111 logs them and counts the
    /// file's errors).
    pub failed: BTreeMap<std::path::PathBuf, Vec<(String, String)>>,
}

impl StableDiffusion {
    /// A copy of the model with `loras` added to its text encoder's and UNet's weights
    /// (their weights shared with `self` but for the layers the LoRAs touch). LoRAs naming
    /// the same layer add up, in order. A multiplier of 0 skips that half of a LoRA.
    ///
    /// # Errors
    /// [`LoraError::Shape`] when no module of a file fits this model and some name its
    /// layers with other shapes (a LoRA of another model family), [`LoraError::NothingMatched`]
    /// when no module of a file names a layer of this model. A file some of whose modules
    /// fit is applied without the others, as A1111 does; the report lists them.
    pub fn with_loras(&self, loras: &[ActiveLora<'_>]) -> Result<(Self, LoraReport)> {
        let mut model = self.clone();
        let mut report = LoraReport::default();
        let mut updates = Updates::default();
        for lora in loras {
            for (name, module) in lora.file.modules() {
                let (network, multiplier) = if name.starts_with("lora_te_") {
                    (Network::TextEncoder, lora.text_encoder)
                } else {
                    (Network::Unet, lora.unet)
                };
                if multiplier != 0.0 {
                    updates
                        .by_layer
                        .entry((network, name.clone()))
                        .or_default()
                        .push(Update {
                            file: lora.file,
                            index: loras_index(loras, lora),
                            name,
                            module,
                            multiplier,
                        });
                }
            }
        }
        let device = self.device().clone();
        let mut text = Mapper::new(Network::TextEncoder, &updates, &device);
        model.text_encoder = model.text_encoder.map(&mut text);
        let mut unet = Mapper::new(Network::Unet, &updates, &device);
        unet.unet_config = Some(self.architecture().unet.clone());
        model.unet = model.unet.map(&mut unet);
        let matched: BTreeSet<&String> = text.matched.iter().chain(&unet.matched).collect();
        let mut failures: Vec<(usize, String, LoraError)> =
            text.failed.into_iter().chain(unet.failed).collect();
        for (index, lora) in loras.iter().enumerate() {
            let names = lora.file.modules().keys();
            let unmatched: Vec<String> = names.filter(|n| !matched.contains(n)).cloned().collect();
            let (failed, rest): (Vec<_>, Vec<_>) = failures.into_iter().partition(|f| f.0 == index);
            failures = rest;
            let modules = lora.file.modules().len();
            if modules > 0 && unmatched.len() + failed.len() >= modules {
                // Nothing of the file applies: it is another model's.
                if let Some((_, _, error)) = failed.into_iter().next() {
                    return Err(error);
                }
                return Err(LoraError::NothingMatched {
                    path: lora.file.path().to_owned(),
                    modules: unmatched.len(),
                });
            }
            if !unmatched.is_empty() {
                report
                    .unmatched
                    .insert(lora.file.path().to_owned(), unmatched);
            }
            if !failed.is_empty() {
                report.failed.insert(
                    lora.file.path().to_owned(),
                    failed
                        .into_iter()
                        .map(|(_, module, error)| (module, error.to_string()))
                        .collect(),
                );
            }
        }
        Ok((model, report))
    }
}

/// Which network a module belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Network {
    TextEncoder,
    Unet,
}

/// The position of `lora` in `loras`.
fn loras_index(loras: &[ActiveLora<'_>], lora: &ActiveLora<'_>) -> usize {
    loras
        .iter()
        .position(|l| std::ptr::eq(l, lora))
        .unwrap_or_default()
}

/// One LoRA module's contribution to a layer.
#[derive(Clone, Copy)]
struct Update<'a> {
    file: &'a LoraFile,
    /// The file's position in the call's list.
    index: usize,
    /// The module's name in the file.
    name: &'a String,
    module: &'a LoraModule,
    multiplier: f32,
}

/// The updates of every layer, by network and kohya name.
#[derive(Default)]
struct Updates<'a> {
    by_layer: BTreeMap<(Network, String), Vec<Update<'a>>>,
}

/// Walks one network, adding its layers' updates to their weights.
struct Mapper<'u, 'a> {
    network: Network,
    updates: &'u Updates<'a>,
    device: Device,
    /// The names entered, `None` for an enum's variant.
    path: Vec<Option<String>>,
    /// The kohya names of every weight of the network (what a LoRA module can name).
    matched: Vec<String>,
    /// Modules whose update does not fit their layer: (file index, module, why).
    failed: Vec<(usize, String, LoraError)>,
    /// The UNet's configuration, which places its layers in LDM's numbering.
    unet_config: Option<sd_unet::UNetConfig>,
}

impl<'u, 'a> Mapper<'u, 'a> {
    fn new(network: Network, updates: &'u Updates<'a>, device: &Device) -> Self {
        Self {
            network,
            updates,
            device: device.clone(),
            path: Vec::new(),
            matched: Vec::new(),
            failed: Vec::new(),
            unet_config: None,
        }
    }

    /// The names a LoRA module may give the layer whose weight is at the current path: its
    /// kohya name from diffusers' naming (`lora_unet_down_blocks_1_attentions_0_proj_in`)
    /// and, for the UNet, from LDM's (`lora_unet_input_blocks_4_1_proj_in`, as A1111 names
    /// its layers and some trainers wrote them).
    fn layer_names(&self) -> Vec<String> {
        let Some(kohya) = self.kohya_name() else {
            return Vec::new();
        };
        let ldm = self.unet_config.as_ref().and_then(|config| {
            let path: Vec<&str> = self.path.iter().flatten().map(String::as_str).collect();
            let name = sd_unet::loader::diffusers_name(&path.join("."));
            let ldm = sd_unet::loader::ldm::ldm_name(config, &name)?;
            let ldm = ldm.strip_suffix(".weight").unwrap_or(&ldm).to_owned();
            Some(format!("lora_unet_{}", ldm.replace('.', "_")))
        });
        std::iter::once(kohya).chain(ldm).collect()
    }

    /// The kohya name of the layer whose weight is at the current path, if it is a weight.
    fn kohya_name(&self) -> Option<String> {
        let path: Vec<&str> = self.path.iter().flatten().map(String::as_str).collect();
        let (last, module) = path.split_last()?;
        if *last != "weight" || module.is_empty() {
            return None;
        }
        let module = module.join(".");
        Some(match self.network {
            Network::TextEncoder => format!("lora_te_text_model_{}", module.replace('.', "_")),
            Network::Unet => {
                let name = sd_unet::loader::diffusers_name(&format!("{module}.weight"));
                let name = name.strip_suffix(".weight").unwrap_or(&name);
                format!("lora_unet_{}", name.replace('.', "_"))
            }
        })
    }

    /// The sum of the `updates` that fit a weight of shape `dims` (as a tensor of that
    /// shape), the others recorded as failed. burn's linear weights are `[in, out]`,
    /// PyTorch's (and the update's) `[out, in]`; convolutions are `[out, in, kh, kw]` in both.
    fn delta<const D: usize>(
        &mut self,
        name: &str,
        updates: &[Update<'_>],
        dims: [usize; D],
    ) -> Option<Tensor<D>> {
        let mut sum: Option<Tensor<2>> = None;
        for update in updates {
            let [out, input, kh, kw] = update.module.update_shape();
            let fits = match dims[..] {
                [weight_in, weight_out] => weight_in == input * kh * kw && weight_out == out,
                [weight_out, weight_in, weight_kh, weight_kw] => {
                    [weight_out, weight_in * weight_kh * weight_kw] == [out, input * kh * kw]
                }
                _ => false,
            };
            if !fits {
                let error = LoraError::Shape {
                    path: update.file.path().to_owned(),
                    key: name.to_string(),
                    shape: vec![out, input, kh, kw],
                    reason: format!("does not fit the model's layer of shape {dims:?}"),
                };
                self.failed.push((update.index, update.name.clone(), error));
                continue;
            }
            let rank = update.module.rank();
            let tensor = |values: &[f32], shape: [usize; 2]| {
                Tensor::<2>::from_data(TensorData::new(values.to_vec(), shape), &self.device)
            };
            let up = tensor(&update.module.up.values, [out, rank]);
            let down = tensor(&update.module.down.values, [rank, input * kh * kw]);
            let scale = f64::from(update.module.scale() * update.multiplier);
            // A linear layer takes the update transposed: downᵀ·upᵀ is [in, out] directly.
            let delta = if D == 2 {
                down.transpose().matmul(up.transpose())
            } else {
                up.matmul(down)
            };
            let delta = delta.mul_scalar(scale);
            sum = Some(match sum {
                Some(sum) => sum + delta,
                None => delta,
            });
        }
        sum.map(|sum| sum.reshape(dims))
    }
}

impl ModuleMapper for Mapper<'_, '_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        // An enum's variant (`Projection::Conv`) is no part of the state-dict name.
        self.path
            .push((!container_type.starts_with("Enum:")).then(|| name.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !(D == 2 || D == 4) {
            return param;
        }
        let names = self.layer_names();
        let Some(name) = names.first().cloned() else {
            return param;
        };
        // Every layer the model has counts as matched, whatever its multiplier (0 included).
        self.matched.extend(names.iter().cloned());
        let updates: Vec<Update<'_>> = names
            .iter()
            .filter_map(|n| self.updates.by_layer.get(&(self.network, n.clone())))
            .flatten()
            .copied()
            .collect();
        if updates.is_empty() {
            return param;
        }
        let dims = param.val().dims();
        match self.delta(&name, &updates, dims) {
            Some(delta) => param.map(|weight| {
                let dtype = weight.dtype();
                // In f32 and rounded once, whatever the network computes in.
                to_dtype(to_dtype(weight, DType::F32) + delta, dtype)
            }),
            None => param,
        }
    }
}
