//! A1111's hypernetwork `.pt` files (`Hypernetwork.save`), read as data: a dict whose int keys
//! are context widths, each holding `[key module state dict, value module state dict]`, and
//! whose string keys hold the settings (`layer_structure`, `activation_func`,
//! `is_layer_norm`, `activate_output`, `dropout_structure` / `use_dropout` /
//! `last_layer_dropout`, `name`, `step`, ...). Each module is a `torch.nn.Sequential` whose
//! indices depend on those settings (activations and dropouts take an index but hold no
//! weights), laid out here exactly as A1111's `HypernetworkModule.__init__` lays them out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sd_torch_file::{PickleValue, TorchFile};
use sd_unet::hypernetwork::HypernetworkActivation;

use super::error::{HypernetworkError, Result};

/// A linear layer's weights, PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWeights {
    /// `[out, in]`, row-major.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
}

/// One linear layer of a module and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// The linear layer.
    pub linear: LinearWeights,
    /// Its activation, if any.
    pub activation: Option<HypernetworkActivation>,
    /// The LayerNorm after it (`weight`, `bias`), when the hypernetwork has them.
    pub norm: Option<(Vec<f32>, Vec<f32>)>,
}

/// A hypernetwork file's settings and weights.
#[derive(Debug, Clone)]
pub struct HypernetworkFile {
    pub(super) path: PathBuf,
    /// The name saved in the file (`name`), or the file's stem.
    pub name: String,
    /// Training steps saved in the file.
    pub step: Option<i64>,
    /// `layer_structure`: widths relative to the context's (`[1, 2, 1]`).
    pub layer_structure: Vec<f64>,
    /// The activation name as saved (`None`: linear).
    pub activation_func: Option<String>,
    /// Whether LayerNorms follow the linear layers.
    pub layer_norm: bool,
    /// Whether the last layer is activated too.
    pub activate_output: bool,
    /// The dropout probability after each layer (training only).
    pub dropout_structure: Vec<f64>,
    /// `weight_initialization` as saved (A1111 writes it; it matters only when creating).
    pub weight_init: Option<String>,
    /// `use_dropout` as A1111 derives it (a non-zero dropout structure, or the saved flag).
    pub use_dropout: bool,
    /// The key and value modules, by context width.
    pub modules: BTreeMap<usize, [Vec<LayerWeights>; 2]>,
    /// `sd_checkpoint`: the short hash of the checkpoint it was trained on (A1111 writes it
    /// when training saves the file).
    pub sd_checkpoint: Option<String>,
    /// `sd_checkpoint_name`: that checkpoint's name.
    pub sd_checkpoint_name: Option<String>,
}

impl HypernetworkFile {
    /// Reads an A1111 hypernetwork `.pt` (pickle parsed as data, never executed), or a
    /// `.safetensors` in the layout [`to_safetensors_bytes`](Self::to_safetensors_bytes)
    /// writes.
    ///
    /// # Errors
    /// [`HypernetworkError::TorchFile`] for a file that is not a torch pickle,
    /// [`HypernetworkError::Layout`] for one that is not a hypernetwork or whose weights do
    /// not fit its settings.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if is_safetensors(path) {
            return super::safetensors_file::read(path);
        }
        let file = TorchFile::open(path)?;
        let layout = |reason: String| HypernetworkError::Layout {
            path: path.to_owned(),
            reason,
        };
        let root = file.root();
        let Some(entries) = root.as_dict() else {
            return Err(layout(format!("expected a dict, found a {}", root.kind())));
        };
        let header = Header::parse(root).map_err(layout)?;
        let mut modules = BTreeMap::new();
        for (key, value) in entries {
            let PickleValue::Int(width) = key else {
                continue;
            };
            let width = usize::try_from(*width)
                .ok()
                .filter(|w| (1..=65536).contains(w))
                .ok_or_else(|| layout(format!("width {width} out of range")))?;
            let pair = match value {
                PickleValue::List(items) | PickleValue::Tuple(items) if items.len() == 2 => items,
                other => {
                    return Err(layout(format!(
                        "width {width}: expected [key, value] state dicts, found a {}",
                        other.kind()
                    )));
                }
            };
            let mut sides = Vec::with_capacity(2);
            for (side, state) in ["key", "value"].into_iter().zip(pair) {
                let entries = state.tensor_entries().ok_or_else(|| {
                    layout(format!(
                        "width {width}, {side} module: expected a state dict, found a {}",
                        state.kind()
                    ))
                })?;
                let shapes: Vec<(&str, &[usize])> = entries
                    .iter()
                    .map(|(k, t)| (*k, t.shape.as_slice()))
                    .collect();
                let load = |key: &str| {
                    let tensor = entries
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, t)| *t)
                        .ok_or_else(|| format!("`{key}` is missing"))?;
                    file.tensor_f32(tensor).map_err(|e| e.to_string())
                };
                let layers = module(&shapes, &load, &header.settings(width))
                    .map_err(|r| layout(format!("width {width}, {side} module: {r}")))?;
                sides.push(layers);
            }
            let [key_module, value_module]: [Vec<LayerWeights>; 2] = sides
                .try_into()
                .map_err(|_| layout(format!("width {width}: two modules expected")))?;
            modules.insert(width, [key_module, value_module]);
        }
        header.into_file(path, modules).map_err(layout)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path` names a safetensors file (by its extension).
pub(super) fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// A file's settings, parsed and checked as A1111's `Hypernetwork.load` reads them, from the
/// dict of a `.pt` (or the metadata of a safetensors file, turned into one).
pub(super) struct Header {
    name: Option<String>,
    step: Option<i64>,
    layer_structure: Vec<f64>,
    activation_func: Option<String>,
    activation: Option<HypernetworkActivation>,
    layer_norm: bool,
    activate_output: bool,
    dropout_structure: Vec<f64>,
    weight_init: Option<String>,
    use_dropout: bool,
    sd_checkpoint: Option<String>,
    sd_checkpoint_name: Option<String>,
}

impl Header {
    /// The settings in `root`, with A1111's defaults for missing ones.
    ///
    /// # Errors
    /// What is wrong with them, in words.
    pub(super) fn parse(root: &PickleValue) -> std::result::Result<Self, String> {
        let layer_structure = match root.get("layer_structure") {
            None | Some(PickleValue::None) => vec![1.0, 2.0, 1.0],
            Some(v) => numbers(v).ok_or("layer_structure is not a list of numbers")?,
        };
        // A1111's `HypernetworkModule` asserts the first and last widths are 1; more than 64
        // layers is no hypernetwork anyone made, and would only let a file ask for much.
        if layer_structure.len() < 2
            || layer_structure.len() > 64
            || layer_structure.first() != Some(&1.0)
            || layer_structure.last() != Some(&1.0)
            || layer_structure.iter().any(|w| !(w.is_finite() && *w > 0.0))
        {
            return Err(format!(
                "layer_structure {layer_structure:?} must run from 1 to 1 through positive widths"
            ));
        }
        let activation_func = root
            .get("activation_func")
            .and_then(PickleValue::as_str)
            .map(str::to_owned);
        let activation =
            HypernetworkActivation::parse(activation_func.as_deref()).map_err(|name| {
                format!(
                    "activation `{name}` is not supported (supported: {})",
                    HypernetworkActivation::NAMES.join(", ")
                )
            })?;
        let flag = |key: &str, default: bool| match root.get(key) {
            Some(PickleValue::Bool(b)) => *b,
            _ => default,
        };
        let layer_norm = flag("is_layer_norm", false);
        // A1111: files from before the setting existed activate their output.
        let activate_output = flag("activate_output", true);
        let saved_dropout = root.get("dropout_structure").and_then(numbers);
        let use_dropout = match &saved_dropout {
            Some(d) if d.iter().any(|&p| p != 0.0) => true,
            _ => flag("use_dropout", false),
        };
        let dropout_structure = match saved_dropout {
            Some(d) => d,
            None => derived_dropout(
                &layer_structure,
                use_dropout,
                flag("last_layer_dropout", false),
            ),
        };
        // A1111's `HypernetworkModule` asserts each probability is 0 or in (0, 1).
        if dropout_structure
            .iter()
            .any(|p| !(p.is_finite() && (0.0..1.0).contains(p)))
        {
            return Err(format!(
                "dropout_structure {dropout_structure:?}: each probability must be in [0, 1)"
            ));
        }
        if dropout_structure.len() != layer_structure.len() {
            return Err(format!(
                "dropout_structure {dropout_structure:?} does not match layer_structure {layer_structure:?}"
            ));
        }
        let text_entry = |key: &str| {
            root.get(key)
                .and_then(PickleValue::as_str)
                .map(str::to_owned)
        };
        Ok(Self {
            name: text_entry("name"),
            step: root.get("step").and_then(PickleValue::as_int),
            layer_structure,
            activation_func,
            activation,
            layer_norm,
            activate_output,
            dropout_structure,
            weight_init: text_entry("weight_initialization"),
            use_dropout,
            sd_checkpoint: text_entry("sd_checkpoint"),
            sd_checkpoint_name: text_entry("sd_checkpoint_name"),
        })
    }

    /// The layout of the modules of `width`.
    pub(super) fn settings(&self, width: usize) -> Settings<'_> {
        Settings {
            width,
            layer_structure: &self.layer_structure,
            activation: self.activation,
            layer_norm: self.layer_norm,
            activate_output: self.activate_output,
            dropout_structure: &self.dropout_structure,
        }
    }

    /// The file at `path` with these settings and `modules` (at least one).
    ///
    /// # Errors
    /// When there are no modules.
    pub(super) fn into_file(
        self,
        path: &Path,
        modules: BTreeMap<usize, [Vec<LayerWeights>; 2]>,
    ) -> std::result::Result<HypernetworkFile, String> {
        if modules.is_empty() {
            return Err("no module for any width: not a hypernetwork".into());
        }
        let name = self
            .name
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Ok(HypernetworkFile {
            path: path.to_owned(),
            name,
            step: self.step,
            layer_structure: self.layer_structure,
            activation_func: self.activation_func,
            layer_norm: self.layer_norm,
            activate_output: self.activate_output,
            dropout_structure: self.dropout_structure,
            weight_init: self.weight_init,
            use_dropout: self.use_dropout,
            modules,
            sd_checkpoint: self.sd_checkpoint,
            sd_checkpoint_name: self.sd_checkpoint_name,
        })
    }
}

/// What decides a module's layout.
pub(super) struct Settings<'a> {
    width: usize,
    layer_structure: &'a [f64],
    activation: Option<HypernetworkActivation>,
    layer_norm: bool,
    activate_output: bool,
    dropout_structure: &'a [f64],
}

/// Where each linear layer's weights, and its LayerNorm's, sit in A1111's
/// `torch.nn.Sequential`: for each layer `(activated, normed)`, the indices `(linear,
/// norm)`. Activations and dropouts (after layer `i` when `dropout[i + 1] > 0`) take an
/// index but hold no weights. The one layout the reader, the writer and training use.
pub(super) fn sequential_indices(
    layers: &[(bool, bool)],
    dropout: &[f64],
) -> Vec<(usize, Option<usize>)> {
    let mut index = 0;
    let mut out = Vec::with_capacity(layers.len());
    for (i, &(activated, normed)) in layers.iter().enumerate() {
        let linear = index;
        index += 1 + usize::from(activated);
        let norm = normed.then(|| {
            index += 1;
            index - 1
        });
        if dropout.get(i + 1).is_some_and(|&p| p > 0.0) {
            index += 1;
        }
        out.push((linear, norm));
    }
    out
}

/// A1111's `parse_dropout_structure`, for files saved without `dropout_structure`.
fn derived_dropout(layers: &[f64], use_dropout: bool, last_layer_dropout: bool) -> Vec<f64> {
    if !use_dropout {
        return vec![0.0; layers.len()];
    }
    let mut values = vec![0.0];
    values.extend(std::iter::repeat_n(0.3, layers.len().saturating_sub(3)));
    values.push(if last_layer_dropout { 0.3 } else { 0.0 });
    values.push(0.0);
    values
}

/// A list of ints or floats as `f64`s.
fn numbers(value: &PickleValue) -> Option<Vec<f64>> {
    let items = match value {
        PickleValue::List(items) | PickleValue::Tuple(items) => items,
        _ => return None,
    };
    items
        .iter()
        .map(|v| match v {
            PickleValue::Int(i) => Some(*i as f64),
            PickleValue::Float(f) => Some(*f),
            _ => None,
        })
        .collect()
}

/// One module's layers from its state dict (the keys and shapes of its tensors, and how to
/// read one as f32), laid out as A1111's `HypernetworkModule`.
pub(super) fn module(
    entries: &[(&str, &[usize])],
    load: &dyn Fn(&str) -> std::result::Result<Vec<f32>, String>,
    s: &Settings<'_>,
) -> std::result::Result<Vec<LayerWeights>, String> {
    // The layout the settings describe, before any tensor is read: every key and shape, so a
    // file cannot make the reader hold more than the module it claims to be.
    let widths: Vec<usize> = s
        .layer_structure
        .iter()
        .map(|w| (s.width as f64 * w) as usize)
        .collect();
    // Every layer at least one wide, and the module within 2^28 weights (1 GiB), as
    // `HypernetworkSettings::validate` asks of new ones.
    let weights: usize = widths
        .windows(2)
        .map(|p| p[0].saturating_mul(p[1]))
        .fold(0, usize::saturating_add);
    if widths.contains(&0) || weights > 1 << 28 {
        return Err(format!(
            "layer_structure {:?} gives layers of widths {widths:?}: none may be 0, and 2^28 weights at most",
            s.layer_structure
        ));
    }
    let last = s.layer_structure.len() - 2;
    let activations: Vec<Option<HypernetworkActivation>> = (0..=last)
        .map(|i| s.activation.filter(|_| i < last || s.activate_output))
        .collect();
    let shape: Vec<(bool, bool)> = activations
        .iter()
        .map(|a| (a.is_some(), s.layer_norm))
        .collect();
    let indices = sequential_indices(&shape, s.dropout_structure);
    let mut expected: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, &(linear, norm)) in indices.iter().enumerate() {
        let (inputs, outputs) = (widths[i], widths[i + 1]);
        expected.insert(format!("linear.{linear}.weight"), vec![outputs, inputs]);
        expected.insert(format!("linear.{linear}.bias"), vec![outputs]);
        if let Some(norm) = norm {
            expected.insert(format!("linear.{norm}.weight"), vec![outputs]);
            expected.insert(format!("linear.{norm}.bias"), vec![outputs]);
        }
    }
    let mut tensors: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for &(stored, shape) in entries {
        // A1111's `fix_old_state_dict`: the first files named two layers `linear1`, `linear2`.
        let key = match stored {
            "linear1.weight" => "linear.0.weight",
            "linear1.bias" => "linear.0.bias",
            "linear2.weight" => "linear.1.weight",
            "linear2.bias" => "linear.1.bias",
            other => other,
        };
        match expected.get(key) {
            Some(want) if want.as_slice() == shape => {}
            Some(want) => {
                return Err(format!("`{key}` is {shape:?}, expected {want:?}"));
            }
            None => {
                return Err(format!(
                    "`{key}` does not belong to the layout the settings describe"
                ));
            }
        }
        let values = load(stored)?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(format!("`{key}` holds a value that is not finite"));
        }
        tensors.insert(key.to_owned(), values);
    }
    let mut take = |index: usize, part: &str| {
        let key = format!("linear.{index}.{part}");
        tensors
            .remove(&key)
            .ok_or_else(|| format!("`{key}` is missing"))
    };
    let mut layers = Vec::new();
    for (i, (&(linear, norm), &activation)) in indices.iter().zip(&activations).enumerate() {
        let linear = LinearWeights {
            weight: take(linear, "weight")?,
            bias: take(linear, "bias")?,
            inputs: widths[i],
            outputs: widths[i + 1],
        };
        let norm = match norm {
            Some(n) => Some((take(n, "weight")?, take(n, "bias")?)),
            None => None,
        };
        layers.push(LayerWeights {
            linear,
            activation,
            norm,
        });
    }
    Ok(layers)
}
