//! A hypernetwork whose weights learn: its modules built once on an autodiff device, shared
//! by every attention of their width (so each weight's gradient sums over the layers, as
//! with A1111's one module object), in training mode (A1111 multiplies by 1 while training,
//! whatever the strength), with the dropout of the file's dropout structure after each layer
//! (A1111's `torch.nn.Dropout` in training mode; masks from the backend's random generator,
//! so they are not PyTorch's).

use std::collections::BTreeMap;

use burn::tensor::{Device, Gradients, Tensor};
use sd_unet::hypernetwork::{HypernetworkLayer, HypernetworkModule, HypernetworkPair};

use super::apply::build_module;
use super::file::{HypernetworkFile, LayerWeights, sequential_indices};
use crate::model::StableDiffusion;

/// The learning weights of one hypernetwork file.
#[derive(Debug, Clone)]
pub struct TrainableHypernetwork {
    template: HypernetworkFile,
    pairs: BTreeMap<usize, HypernetworkPair>,
}

/// One weight's values or gradient, PyTorch layout, by A1111's name: `(width, "k" or "v",
/// state-dict key)`.
pub type NamedValues = Vec<((usize, &'static str, String), Vec<f32>)>;

impl TrainableHypernetwork {
    /// `file`'s modules on `device` (an autodiff device to learn), multiplier 1.
    pub fn new(file: &HypernetworkFile, device: &Device) -> Self {
        let dtype = burn::tensor::DType::F32;
        let pairs = file
            .modules
            .iter()
            .map(|(&width, [key, value])| {
                let pair = HypernetworkPair {
                    key: build_module(key, 1.0, device, dtype, Some(&file.dropout_structure)),
                    value: build_module(value, 1.0, device, dtype, Some(&file.dropout_structure)),
                };
                (width, pair)
            })
            .collect();
        Self {
            template: file.clone(),
            pairs,
        }
    }

    /// A copy of `model` running this hypernetwork alone (the model frozen; see
    /// `sd_textual_inversion`'s `freeze`).
    pub fn apply(&self, model: &StableDiffusion) -> StableDiffusion {
        let mut model = model.clone();
        model
            .unet
            .set_hypernetworks(&mut |width| self.pairs.get(&width).cloned().into_iter().collect());
        model
    }

    /// Every weight's gradient in `grads` (zeros for a weight the loss did not reach), in
    /// [`values`](Self::values)' order and layout.
    pub fn gradients(&self, grads: &Gradients) -> NamedValues {
        self.each(&GradientsOf(grads))
    }

    /// Every weight's current values: per width, the key module then the value module, in
    /// state-dict order; linear weights as PyTorch's `[out, in]`.
    pub fn values(&self) -> NamedValues {
        self.each(&Values)
    }

    /// The weights as a hypernetwork file (for [`HypernetworkFile::write`]), with `step`.
    pub fn to_file(&self, step: i64) -> HypernetworkFile {
        let mut file = self.template.clone();
        file.step = Some(step);
        for (width, pair) in &self.pairs {
            if let Some(modules) = file.modules.get_mut(width) {
                for (layers, module) in modules.iter_mut().zip([&pair.key, &pair.value]) {
                    for (weights, layer) in layers.iter_mut().zip(&module.layers) {
                        read_layer(weights, layer);
                    }
                }
            }
        }
        file
    }

    /// Replaces the weights with `values` (as [`values`](Self::values) orders them).
    ///
    /// Entries of the wrong length, and extra or missing ones, are ignored.
    pub fn set_values(&mut self, values: &[Vec<f32>]) {
        let mut file = self.template.clone();
        let mut it = values.iter();
        for modules in file.modules.values_mut() {
            for layers in modules.iter_mut() {
                for layer in layers.iter_mut() {
                    let mut take = |target: &mut Vec<f32>| {
                        // A vector of another length is not this weight's: ignored.
                        if let Some(v) = it.next().filter(|v| v.len() == target.len()) {
                            target.clone_from(v);
                        }
                    };
                    take(&mut layer.linear.weight);
                    take(&mut layer.linear.bias);
                    if let Some((w, b)) = layer.norm.as_mut() {
                        take(w);
                        take(b);
                    }
                }
            }
        }
        let device = self
            .pairs
            .values()
            .next()
            .map(|p| p.key.layers[0].linear.weight.val().device());
        if let Some(device) = device {
            *self = Self::new(&file, &device);
        }
    }

    fn each(&self, f: &impl Read) -> NamedValues {
        let mut out = Vec::new();
        for (&width, pair) in &self.pairs {
            for (side, module) in [("k", &pair.key), ("v", &pair.value)] {
                for (name, values) in named(module, &self.template.dropout_structure, f) {
                    out.push(((width, side, name), values));
                }
            }
        }
        out
    }
}

/// What [`named`] reads of a weight: its values or its gradient.
trait Read {
    fn read<const D: usize>(&self, tensor: &Tensor<D>) -> Option<Tensor<D>>;
}

/// A weight's values.
struct Values;

impl Read for Values {
    fn read<const D: usize>(&self, tensor: &Tensor<D>) -> Option<Tensor<D>> {
        Some(tensor.clone())
    }
}

/// A weight's gradient.
struct GradientsOf<'a>(&'a Gradients);

impl Read for GradientsOf<'_> {
    fn read<const D: usize>(&self, tensor: &Tensor<D>) -> Option<Tensor<D>> {
        tensor.grad(self.0)
    }
}

/// A module's weights by A1111's state-dict names, through `f` (values or gradients); zeros
/// where there is nothing to read.
fn named(module: &HypernetworkModule, dropout: &[f64], f: &impl Read) -> Vec<(String, Vec<f32>)> {
    fn flat<const D: usize>(t: Option<Tensor<D>>, len: usize) -> Vec<f32> {
        t.and_then(|t| t.into_data().convert::<f32>().try_to_vec::<f32>().ok())
            .unwrap_or_else(|| vec![0.0; len])
    }
    let shape: Vec<(bool, bool)> = module
        .layers
        .iter()
        .map(|l| (l.activation.is_some(), l.norm.is_some()))
        .collect();
    let mut out = Vec::new();
    for (layer, (linear, norm)) in module
        .layers
        .iter()
        .zip(sequential_indices(&shape, dropout))
    {
        let weight = layer.linear.weight.val();
        let [inputs, outputs] = weight.dims();
        // burn's `[in, out]` → PyTorch's `[out, in]`.
        let w = f.read(&weight).map(|g| g.transpose());
        out.push((format!("linear.{linear}.weight"), flat(w, inputs * outputs)));
        let bias = layer.linear.bias.as_ref().and_then(|b| f.read(&b.val()));
        out.push((format!("linear.{linear}.bias"), flat(bias, outputs)));
        if let (Some(index), Some(norm)) = (norm, &layer.norm) {
            out.push((
                format!("linear.{index}.weight"),
                flat(f.read(&norm.gamma.val()), outputs),
            ));
            let beta = norm.beta.as_ref().and_then(|b| f.read(&b.val()));
            out.push((format!("linear.{index}.bias"), flat(beta, outputs)));
        }
    }
    out
}

/// A layer's current values into its file weights.
fn read_layer(weights: &mut LayerWeights, layer: &HypernetworkLayer) {
    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default()
    }
    weights.linear.weight = values(layer.linear.weight.val().transpose());
    if let Some(b) = &layer.linear.bias {
        weights.linear.bias = values(b.val());
    }
    if let (Some((w, b)), Some(norm)) = (weights.norm.as_mut(), &layer.norm) {
        *w = values(norm.gamma.val());
        if let Some(beta) = &norm.beta {
            *b = values(beta.val());
        }
    }
}
